-- Hot reload: editing the topology, a strategy or the hooks file, SIGHUP, or
-- POST /_reload loads and validates the new code first, then swaps it in; on any error the
-- old code keeps running and the error is reported. Connections the new configuration
-- still wants are never dropped.
local uv = require "uv"
local cjson = require "cjson.safe"
local core = require "clusterlua.c.core"
local events = require "clusterlua.events"
local file_watch = require "clusterlua.file_watch"
local report = require "clusterlua.report"
local scheduler = require "clusterlua.scheduler"
local topology = require "clusterlua.topology"
local hooks = require "clusterlua.hooks"
local node = require "clusterlua.node"

local M = { debounce_ms = 200 }

local in_flight = false
local waiters = {}
local watchers = {}
local current -- { topo=, supervisor= } of the running node, given to M.install

-- keys that need a restart: compare old and new, and refuse a live change
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function restart_only_change(old, new)
  if old.cluster ~= new.cluster then return "cluster" end
  if not same(old.nodes, new.nodes) then return "nodes (roles are read when the node starts)" end
  if not same(old.transport, new.transport) then return "transport" end
  local oe, ne = {}, {}
  for k, v in pairs(old.election) do if k ~= "initial_master_nodes" then oe[k] = v end end
  for k, v in pairs(new.election) do if k ~= "initial_master_nodes" then ne[k] = v end end
  if not same(oe, ne) then return "election" end
  local oi, ni = old.election.initial_master_nodes or {}, new.election.initial_master_nodes or {}
  if #ni > 0 and not same(oi, ni) then return "election.initial_master_nodes (it can only be removed live)" end
  return nil
end

-- the reload itself; returns what changed, or nil, err
local function do_reload(cur)
  -- strategy modules are re-read from disk: drop them from package.loaded first
  for _, t in pairs(cur.topo.topologies) do
    if t.source and t.source:match "^clusterlua%.strategy%." then package.loaded[t.source] = nil end
  end
  -- a topology given as a table (clusterlua.start{...}) has no file to re-read
  local new, err
  if cur.topo.inline then
    new = cur.topo
  else
    new, err = topology.load(cur.topo.file)
  end
  if not new then return nil, (err:gsub("^EINVAL: ", "")) end
  local bad = restart_only_change(cur.topo, new)
  if bad then
    return nil, ("%s: %s cannot change while the node runs; restart the node to apply it"):format(cur.topo.file, bad)
  end
  local hok, herr = hooks.load(new)
  if not hok then return nil, herr end
  local changed, errors = cur.supervisor:reload(new.topologies)
  if #errors > 0 then return nil, table.concat(errors, "; ") end
  cur.topo = new
  M.watch(cur)
  changed[#changed + 1] = "hooks"
  return changed
end

-- Reloads everything now (waiting for one already in flight). Returns the list of what
-- was reloaded, or nil, err.
function M.reload(why)
  local cur = current
  if not cur then return nil, "this process is not a node" end
  local co, main = coroutine.running()
  if in_flight and co and not main then
    waiters[#waiters + 1] = co
    coroutine.yield()
  end
  in_flight = true
  local ok, changed, err = pcall(do_reload, cur)
  in_flight = false
  local w = waiters
  waiters = {}
  -- through the scheduler: a waiter that is a hook keeps its budget and cancellation
  for _, c in ipairs(w) do scheduler.resume(c) end
  if not ok then changed, err = nil, tostring(changed) end
  if not changed then
    core.log("error", "reload", ("reload (%s) failed, the old configuration keeps running: %s"):format(why, err))
    report.event("reload_failed", { why = why, error = tostring(err) })
    events.emit("strategy_error", "reload", err)
    return nil, err
  end
  core.log("info", "reload", ("reloaded (%s): %s"):format(why, table.concat(changed, ", ")))
  report.event("reloaded", { why = why, changed = changed })
  events.emit("reloaded", changed)
  return changed
end

-- POST /_reload from the admin endpoint: start.lua hands this to node.start as the
-- handler of the "reload" report
function M.on_admin_request(_, id)
  scheduler.spawn("reload", function()
    local changed, err = M.reload "admin"
    local cnode = node.cnode()
    if changed then
      cnode.reload_done(id, 200, cjson.encode { reloaded = changed })
    else
      cnode.reload_done(id, 400, cjson.encode { error = err })
    end
  end)
end

-- File watches: a burst of writes (editors write, rename, chmod) becomes one reload.
local timer
local function schedule(why)
  if not timer then timer = uv.new_timer() end
  timer:stop()
  timer:start(M.debounce_ms, 0, function()
    scheduler.spawn("reload", function() M.reload(why) end)
  end)
end

-- Each file is watched itself, not its directory, and followed through renames
-- (clusterlua.file_watch says why).
local function watch_file(path)
  if watchers[path] then return end
  watchers[path] = file_watch.watch(path, function() schedule("changed: " .. path) end, {
    log = function(level, msg)
      -- the node runs on and SIGHUP still reloads, but an edit alone no longer does
      core.log(level, "reload", msg .. ": reload it with SIGHUP")
    end,
  })
end

function M.watch(cur)
  local files = { not cur.topo.inline and cur.topo.file or nil }
  if type(cur.topo.hooks) == "string" then files[#files + 1] = topology.resolve_path(cur.topo.file, cur.topo.hooks) end
  for _, t in pairs(cur.topo.topologies) do
    if t.source and t.source:match "%.lua$" then files[#files + 1] = t.source end
  end
  for _, f in ipairs(files) do watch_file(f) end
end

-- Called by start.lua once the node runs: from then on reloads apply to cur.
function M.install(cur)
  current = cur
  M.watch(cur)
  local sig = uv.new_signal()
  sig:start("sighup", function() scheduler.spawn("reload", function() M.reload "SIGHUP" end) end)
  sig:unref()
end

return M
