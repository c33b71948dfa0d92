-- Reads the stamp files that spec/fixtures/stamp_hooks.lua appends (one per node, named
-- by CL_STAMPS), for spec/helpers/scale.lua and bench/run.lua's scale rows: the one
-- parser of that format. Each call returns only what was appended since the last one, so
-- a harness polling hundreds of nodes reads each byte once; a line still being written
-- waits for its newline.
local M = {}
local R = {}
R.__index = R

-- a reader of dir/1 … dir/n
function M.reader(dir)
  return setmetatable({ dir = dir, off = {}, partial = {} }, R)
end

-- calls fn(t, event, a1, a2, a3) for each whole line node i appended since the last call:
-- t in µs (CLOCK_MONOTONIC, as uv.hrtime() / 1000), then the event and its arguments as
-- strings ("" when absent); a missing file is a node that has not stamped yet
function R:read(i, fn)
  local f = io.open(self.dir .. "/" .. i, "rb")
  if not f then return end
  f:seek("set", self.off[i] or 0)
  local data = f:read "*a" or ""
  f:close()
  self.off[i] = (self.off[i] or 0) + #data
  local buf, start = (self.partial[i] or "") .. data, 1
  while true do
    local nl = buf:find("\n", start, true)
    if not nl then break end
    local t, ev, a1, a2, a3 = buf:sub(start, nl - 1):match "^(%d+) (%S+) ?(%S*) ?(%S*) ?(%S*)$"
    start = nl + 1
    if t then fn(tonumber(t), ev, a1, a2, a3) end
  end
  self.partial[i] = buf:sub(start)
end

return M
