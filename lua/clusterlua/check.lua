-- Value checks that several modules make, written once so they accept the same values
-- and say the same thing about the rest. Each returns the value, or nil and what was
-- wrong; the caller decides whether that is misuse (error "bad argument ...") or a
-- returned error (a hooks file being loaded), and names the argument.
local M = {}

-- ms(v): a duration in milliseconds: a number >= 0, not NaN, not infinite
function M.ms(v)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
    return nil, "milliseconds expected (a number >= 0), got " .. tostring(v)
  end
  return v
end

return M
