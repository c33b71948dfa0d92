-- The elected master and the cluster state, as Lua sees them: the last committed state
-- (patched from what each commit changed), write requests that return after commit, and
-- master-only duties that start on election and are cancelled on step-down. The
-- election's reports reach this module through M.reports, which start.lua hands to
-- node.start.
local cjson = require "cjson.safe"
local async = require "clusterlua.async"
local events = require "clusterlua.events"
local scheduler = require "clusterlua.scheduler"
local node = require "clusterlua.node"
local core = require "clusterlua.c.core"

local M = { voting = {} }

local state        -- last committed state (table, Elasticsearch layout)
local master       -- full name or nil
local requests = {} -- id -> coroutine
local next_req = 0
local duties = {}   -- name -> fn
local running = {}  -- name -> { co = , cancelled = }

local function null_to_nil(v)
  if v == cjson.null then return nil end
  return v
end

function M.master() return master end

function M.is_master()
  local me = node.self()
  return me ~= nil and master == me.name
end

function M.state()
  return state
end

-- green: a master and every voting node present; yellow: a master, some missing; red: no master
function M.health()
  if not master then return "red" end
  if not state then return "yellow" end
  local me = node.self()
  local up = {}
  for _, n in ipairs(node.nodes()) do up[n] = true end
  if me then up[me.name] = true end
  local coord = state.metadata and state.metadata.cluster_coordination or {}
  for _, id in ipairs(coord.last_committed_config or {}) do
    local nd = state.nodes and state.nodes[id]
    if not nd or not up[nd.name] then return "yellow" end
  end
  return "green"
end

local function need_co(fname)
  local co, main = coroutine.running()
  if not co or main then error(("bad argument: clusterlua.%s must be called from a coroutine"):format(fname), 3) end
  return co
end

local function request(send, ...)
  local co = coroutine.running()
  next_req = next_req + 1
  local id = next_req
  requests[id] = co
  send(id, ...)
  return coroutine.yield()
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return t
end

-- update(fn): fn gets a copy of the user metadata and returns the new one (or changes it
-- in place). Runs where it was called; the master accepts it only if the metadata has
-- not changed since, else it is run again on the newer metadata (optimistic concurrency).
function M.update(fn)
  if type(fn) ~= "function" then error("bad argument #1 (fn): expected a function", 2) end
  need_co "update"
  if not node.is_started() then error("clusterlua: this process is not a node (start it with --name)", 2) end
  for _ = 1, 10 do
    local md = state and state.metadata or {}
    local base = md.user_version or 0
    local user = deep_copy(md.user) or {}
    if user == cjson.null then user = {} end
    local ok, res = pcall(fn, user)
    if not ok then return nil, "EINVAL: update function failed: " .. tostring(res), "EINVAL" end
    if res == nil then res = user end
    local blob, err = cjson.encode(res)
    if not blob then return nil, "EINVAL: metadata must be JSON-serializable: " .. tostring(err), "EINVAL" end
    local code, msg, version = request(function(id) node.cnode().el_update(id, base, blob) end)
    if code == "" then return version end
    if code ~= "ECONFLICT" then return nil, code .. ": " .. msg, code end
    -- the master has newer metadata (version) than this node has applied yet (a node
    -- that just restarted, say): wait for it before running fn again
    for _ = 1, 400 do
      local md2 = state and state.metadata
      if md2 and (md2.user_version or 0) >= (version or 0) then break end
      async.sleep(5)
    end
  end
  return nil, "ECONFLICT: the metadata kept changing; gave up after 10 attempts", "ECONFLICT"
end

function M.voting.exclude(names)
  need_co "voting.exclude"
  if type(names) == "string" then names = { names } end
  if type(names) ~= "table" or #names == 0 then error("bad argument #1 (names): expected a list of node names", 2) end
  for i, n in ipairs(names) do
    if type(n) ~= "string" then error(("bad argument #1 (names): entry %d is a %s, not a node name"):format(i, type(n)), 2) end
  end
  -- joined as the admin API gets them: the control loop splits and checks both alike
  local code, msg, version = request(function(id) node.cnode().el_exclude(id, table.concat(names, ",")) end)
  if code == "" then return version end
  return nil, code .. ": " .. msg, code
end

function M.voting.clear(opts)
  need_co "voting.clear"
  local wait = type(opts) == "table" and opts.wait_for_removal or false
  local code, msg, version = request(function(id) node.cnode().el_clear(id, wait) end)
  if code == "" then return version end
  return nil, code .. ": " .. msg, code
end

-- on_master(name, fn): fn(cancelled) runs in a coroutine while this node is master. On
-- step-down the coroutine is cancelled: it is never resumed again (sleep, call, exec
-- never return to it), and cancelled() turns true for code that polls.
local function start_duty(name, fn)
  local d = { cancelled = false }
  running[name] = d
  -- a hook coroutine (budget, no JIT for fn) that scheduler.cancel stops for good
  scheduler.nojit(fn)
  d.co = events.spawn_hook("on_master " .. name, function()
    fn(function() return d.cancelled end)
  end)
end

local function cancel(d)
  d.cancelled = true
  if d.co then scheduler.cancel(d.co) end
end

local function stop_duties()
  for name, d in pairs(running) do
    cancel(d)
    running[name] = nil
  end
end

function M.on_master(name, fn)
  if type(name) ~= "string" then error("bad argument #1 (name): expected a string", 2) end
  if fn ~= nil and type(fn) ~= "function" then error("bad argument #2 (fn): expected a function or nil", 2) end
  if running[name] then cancel(running[name]); running[name] = nil end
  duties[name] = fn
  if fn and M.is_master() then start_duty(name, fn) end
end

-- ---- reports from the control loop (node.start dispatches them here) ----

M.reports = {}

function M.reports.master(new, old, t)
  local was_master = M.is_master()
  master = new
  if was_master and not M.is_master() then stop_duties() end
  if not was_master and M.is_master() then
    for name, fn in pairs(duties) do start_duty(name, fn) end
  end
  events.emit("master_changed", new, old, t)
end

function M.reports.quorum(_, regained)
  events.emit(regained and "quorum_regained" or "quorum_lost")
end

-- A commit comes whole the first time, then as what changed since the state before it
-- (runtime/node/node_election.c, emit_committed): the node entries that did not change
-- are shared with the previous state's table (the state is read-only), so a commit
-- costs Lua the changes and one table of N references, not N decoded entries.
local function patch(d)
  if not state or state.version ~= d.base_version or state.term ~= d.base_term then return nil end
  local nodes = {}
  for id, nd in pairs(state.nodes or {}) do nodes[id] = nd end
  for _, id in ipairs(d.nodes_removed or {}) do nodes[id] = nil end
  for id, nd in pairs(d.nodes_changed or {}) do nodes[id] = nd end
  d.nodes, d.delta, d.base_term, d.base_version, d.nodes_changed, d.nodes_removed = nodes, nil, nil, nil, nil, nil
  if d.metadata and d.metadata.user == nil then d.metadata.user = state.metadata and state.metadata.user end
  return d
end

function M.reports.committed(_, json)
  local s = cjson.decode(json)
  if type(s) == "table" and s.delta then s = patch(s) end
  if type(s) ~= "table" then
    core.report("state_committed", "undecodable cluster state, or a change to a state this node does not hold")
    return
  end
  s.master_node = null_to_nil(s.master_node)
  if s.metadata and s.metadata.user == cjson.null then s.metadata.user = {} end
  state = s
  events.emit("state_committed", s)
end

function M.reports.done(code, msg, id, version)
  local co = requests[id]
  if not co then return end
  requests[id] = nil
  -- through the scheduler: a cancelled duty is not resumed, a budget applies, errors reported
  scheduler.resume(co, code, msg, version)
end

return M
