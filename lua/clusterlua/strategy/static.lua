-- A fixed list of nodes. The runtime keeps re-dialling any of them that is down, so a
-- node that comes back is re-joined without anyone doing anything.
local names = require "clusterlua.names"

local M = {}

function M.validate(config)
  if type(config.hosts) ~= "table" then return nil, "hosts: expected a list of node names" end
  for i, h in ipairs(config.hosts) do
    local _, err = names.parse(h)
    if err then return nil, ("hosts[%d]: %s"):format(i, err) end
  end
  for k in pairs(config) do
    if k ~= "hosts" then return nil, ("%s: unknown key (expected: hosts)"):format(tostring(k)) end
  end
  return true
end

function M.start(ctx, config)
  local set = {}
  for _, h in ipairs(config.hosts) do set[#set + 1] = names.full(h) end
  ctx.set_nodes(set)
end

function M.stop() return nil end

return M
