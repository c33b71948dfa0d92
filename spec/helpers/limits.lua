-- Raises the machine limits that many nodes on one machine run into, where this process
-- may (root); shared by spec/helpers/scale.lua and bench/run.lua's scale rows. Only ever
-- raises: a limit already high enough is left as it is.
local M = {}

local INOTIFY = "/proc/sys/fs/inotify/max_user_instances"

-- each node takes one inotify instance (it watches its topology and hooks files);
-- Debian's default of 128 per user is spent by about 120 nodes. Returns the limit in
-- force afterwards (nil if unreadable).
function M.inotify(nodes)
  local f = io.open(INOTIFY, "r")
  if not f then return nil end
  local cur = tonumber(f:read "*l")
  f:close()
  local want = nodes + 128 -- room for everything else the user runs
  if cur and cur < want then
    local w = io.open(INOTIFY, "w")
    if w then
      w:write(tostring(want), "\n")
      if w:close() then cur = want end
    end
  end
  return cur
end

return M
