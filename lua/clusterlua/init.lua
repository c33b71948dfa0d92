-- The public API: everything a topology, strategy, hook or script uses.
local core = require "clusterlua.core"

local M = {
  version = core.version,
  now = core.now,
}

-- Submodules add their functions here; loading them lazily keeps a plain script cheap.
for _, name in ipairs { "clusterlua.async" } do
  for k, v in pairs(require(name)) do
    M[k] = v
  end
end

return M
