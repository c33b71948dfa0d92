-- Recovery recipes for hooks. Each returns a hooks table, so a hooks file can be just
--   return require("clusterlua.recovery").exclude_after_grace { grace_ms = 5000 }
-- or several merged:
--   local r = require "clusterlua.recovery"
--   return r.merge(r.exclude_after_grace { grace_ms = 5000 },
--                  r.on_quorum { lost = { "svc-mode", { "read-only" } }, regained = { "svc-mode", { "read-write" } } })
-- Hook names start with "recovery." so they replace themselves on reload and never clash
-- with a user's own hooks. Every recipe takes opts.api: the clusterlua table by default;
-- specs pass a fake one to drive a recipe with made-up events.
local names = require "clusterlua.names"
local check = require "clusterlua.check"

local M = {}

local function argerr(fname, msg)
  error(("bad argument #1 to '%s' (%s)"):format(fname, msg), 3)
end

local function check_ms(fname, opts, key, default, optional)
  local v = opts[key]
  if v == nil then
    if optional or default ~= nil then return default end
    argerr(fname, key .. ": milliseconds expected")
  end
  local ok, why = check.ms(v)
  if not ok then argerr(fname, ("%s: %s"):format(key, why)) end
  return v
end

local function api_of(opts)
  return opts.api or require "clusterlua"
end

local function log(api, level, msg)
  if api.log then api.log(level, msg) end
end

-- {cmd, args} or {cmd = , args = }: a command to run with exec (no shell)
local function command(fname, key, v)
  if v == nil then return nil end
  if type(v) == "string" then return { cmd = v, args = {} } end
  if type(v) ~= "table" then argerr(fname, key .. ": expected { cmd, args }") end
  local cmd, args = v.cmd or v[1], v.args or v[2] or {}
  if type(cmd) ~= "string" or cmd == "" then argerr(fname, key .. ": expected { cmd, args } with cmd a string") end
  if type(args) ~= "table" then argerr(fname, key .. ".args: expected a list of strings") end
  for i, a in ipairs(args) do
    if type(a) ~= "string" and type(a) ~= "number" then
      argerr(fname, ("%s.args[%d]: expected a string"):format(key, i))
    end
  end
  return { cmd = cmd, args = args, env = v.env }
end

local function run(api, what, c, timeout_ms)
  local status, out, err = api.exec(c.cmd, c.args, { timeout = timeout_ms, env = c.env })
  if status == nil then
    log(api, "error", ("%s: %s %s failed: %s"):format(what, c.cmd, table.concat(c.args, " "), tostring(out)))
    return nil, out
  end
  if status ~= 0 then
    log(api, "warn", ("%s: %s exited with %d: %s"):format(what, c.cmd, status, tostring(err):sub(1, 200)))
  else
    log(api, "info", ("%s: ran %s %s"):format(what, c.cmd, table.concat(c.args, " ")))
  end
  return status, out, err
end

-- peer matching: a full name, a short name (before "@"), "*" or a list of those, by
-- the one short-name rule (clusterlua.names, from C)
local function matcher(fname, peer)
  if peer == nil or peer == "*" then return function() return true end end
  local list = type(peer) == "table" and peer or { peer }
  local given = {}
  for i, p in ipairs(list) do
    if type(p) ~= "string" or p == "" then argerr(fname, ("peer[%d]: expected a node name"):format(i)) end
    given[#given + 1] = p
  end
  if #given == 0 then argerr(fname, "peer: expected a node name or a list of names") end
  return function(name)
    if type(name) ~= "string" then return false end
    for _, p in ipairs(given) do
      if names.matches(p, name) then return true end
    end
    return false
  end
end

--- merge(hooks, ...) -> one hooks table; the same hook name twice for one event is a mistake
function M.merge(...)
  local out = {}
  for i = 1, select("#", ...) do
    local h = select(i, ...)
    if type(h) ~= "table" then error(("bad argument #%d to 'merge' (hooks table expected)"):format(i), 2) end
    for event, v in pairs(h) do
      if event == "budget_ms" or event == "serialize" then
        out[event] = v
      else
        out[event] = out[event] or {}
        local fns = type(v) == "function" and { ["hooks:" .. event] = v } or v
        for name, fn in pairs(fns) do
          if out[event][name] then
            error(("bad argument #%d to 'merge' (hook %q for %s given twice)"):format(i, name, event), 2)
          end
          out[event][name] = fn
        end
      end
    end
  end
  return out
end

-- ---- exclude_after_grace ----

local function coord(api)
  local s = api.state and api.state()
  return s, s and s.metadata and s.metadata.cluster_coordination or {}
end

local function name_of(state, id)
  local n = state and state.nodes and state.nodes[id]
  return n and n.name
end

-- ids: name -> node id, remembered from earlier states: the master drops a node that
-- went away from state.nodes while its id stays in the voting configuration
local function is_voting(api, name, ids)
  if type(name) ~= "string" then return false end
  local state, c = coord(api)
  for _, id in ipairs(c.last_committed_config or {}) do
    local n = name_of(state, id)
    if (n and names.matches(name, n)) or (ids and ids[name] == id) then return true end
  end
  return false
end

local function remember_ids(api, ids)
  local state = api.state and api.state()
  for id, nd in pairs(state and state.nodes or {}) do
    if type(nd) == "table" and nd.name then ids[nd.name] = id end
  end
end

local function exclusions(api)
  local _, c = coord(api)
  local out = {}
  for _, e in ipairs(c.voting_config_exclusions or {}) do out[#out + 1] = e.node_name end
  return out
end

local function is_up(api, name)
  for _, n in ipairs(api.nodes()) do if n == name then return true end end
  local me = api.self and api.self()
  return me ~= nil and me.name == name
end

--- exclude_after_grace{ grace_ms = 5000 [, retry_ms = 1000, key = "recovery.excluded_after_grace", peer = ...] }
-- When a voting node has been down for grace_ms, the master excludes it from voting, and
-- clears the exclusion once the node is back. The nodes it excluded are remembered in the
-- cluster's user metadata (under `key`), so a master elected later can still clear them
-- and an operator's own exclusions are never cleared.
function M.exclude_after_grace(opts)
  local fname = "exclude_after_grace"
  if type(opts) ~= "table" then argerr(fname, "table expected") end
  local grace = check_ms(fname, opts, "grace_ms")
  local retry = check_ms(fname, opts, "retry_ms", 1000)
  local key = opts.key or "recovery.excluded_after_grace"
  if type(key) ~= "string" then argerr(fname, "key: expected a string") end
  local wanted = matcher(fname, opts.peer)
  local api = api_of(opts)
  local down = {} -- name -> token of the current outage (a table, compared by identity)
  local ids = {}
  local reconciling = false

  local function marked()
    local s = api.state and api.state()
    local u = s and s.metadata and s.metadata.user
    return type(u) == "table" and type(u[key]) == "table" and u[key] or {}
  end

  local function contains(list, x)
    if type(x) ~= "string" then return false end
    for _, v in ipairs(list) do
      if type(v) == "string" and names.matches(x, v) then return true end
    end
    return false
  end

  -- On the master: clear the exclusions this recipe made for nodes that are back.
  -- The API can only clear every exclusion, so the others are put back right after.
  local function reconcile()
    if reconciling or not api.is_master() then return end
    reconciling = true
    local ok, err = pcall(function()
      local back = {}
      for name in pairs(marked()) do
        if is_up(api, name) then back[#back + 1] = name end
      end
      if #back == 0 then return end
      table.sort(back)
      local excl = exclusions(api)
      local keep, clear_needed = {}, false
      for _, e in ipairs(excl) do
        if contains(back, e) then clear_needed = true else keep[#keep + 1] = e end
      end
      if clear_needed then
        local v, cerr = api.voting.clear { wait_for_removal = false }
        if not v then
          log(api, "warn", "exclude_after_grace: clearing exclusions failed: " .. tostring(cerr))
          return
        end
        if #keep > 0 then
          local v2, eerr = api.voting.exclude(keep)
          if not v2 then log(api, "error", "exclude_after_grace: restoring exclusions failed: " .. tostring(eerr)) end
        end
        log(api, "info", "exclude_after_grace: back in the voting configuration: " .. table.concat(back, ", "))
      end
      api.update(function(u)
        if type(u[key]) == "table" then
          for _, name in ipairs(back) do u[key][name] = nil end
          if next(u[key]) == nil then u[key] = nil end
        end
        return u
      end)
    end)
    reconciling = false
    if not ok then log(api, "error", "exclude_after_grace: " .. tostring(err)) end
  end

  local function on_down(name)
    if not wanted(name) then return end
    local token = {}
    down[name] = token
    remember_ids(api, ids)
    api.sleep(grace)
    local complained = false
    -- is_up as well as the token: hooks replaced by a reload never see the node_up
    while down[name] == token and not is_up(api, name) do
      if contains(exclusions(api), name) then return end -- done (by this master or another)
      if api.is_master() then
        if not is_voting(api, name, ids) then return end
        -- remembered first: a mark without an exclusion is harmless, the reverse would
        -- leave the node out of voting for good
        local _, uerr = api.update(function(u)
          u[key] = type(u[key]) == "table" and u[key] or {}
          u[key][name] = true
          return u
        end)
        local v, err
        if uerr then
          err = "cannot remember the exclusion: " .. tostring(uerr)
        else
          v, err = api.voting.exclude { name }
        end
        if v then
          log(api, "warn", ("exclude_after_grace: %s down for %d ms, excluded from voting"):format(name, grace))
          -- it may have come back while we excluded it
          if down[name] ~= token or is_up(api, name) then reconcile() end
          return
        end
        -- retried quietly: a master without quorum fails the same way every time
        if not complained then
          complained = true
          log(api, "warn", ("exclude_after_grace: excluding %s failed (retrying every %d ms): %s"):format(
            name, retry, tostring(err)))
        end
      end
      api.sleep(retry)
    end
  end

  local function on_up(name)
    down[name] = nil
    reconcile()
  end

  local n = "recovery.exclude_after_grace"
  return {
    node_down = { [n] = function(name) on_down(name) end },
    node_up = { [n] = function(name) on_up(name) end },
    -- a new master picks up what an earlier one left to clear
    master_changed = { [n] = function() reconcile() end },
    state_committed = { [n] = function()
      remember_ids(api, ids)
      if next(marked()) then reconcile() end
    end },
  }
end

-- ---- on_quorum ----

--- on_quorum{ lost = { cmd, args }, regained = { cmd, args } [, timeout_ms = 10000] }
-- Runs a local command when this node loses or regains quorum. Commands run one at a
-- time in the order the events came, so the last command run matches the last event.
function M.on_quorum(opts)
  local fname = "on_quorum"
  if type(opts) ~= "table" then argerr(fname, "table expected") end
  local lost, regained = command(fname, "lost", opts.lost), command(fname, "regained", opts.regained)
  if not lost and not regained then argerr(fname, "give lost and/or regained") end
  local timeout = check_ms(fname, opts, "timeout_ms", 10000)
  local api = api_of(opts)
  local queue, working = {}, false

  local function enqueue(job)
    queue[#queue + 1] = job
    if working then return end -- the hook already draining the queue will run it
    working = true
    local ok, err = pcall(function()
      while #queue > 0 do
        local j = table.remove(queue, 1)
        run(api, "on_quorum " .. j.what, j.c, timeout)
      end
    end)
    working = false
    if not ok then error(err, 0) end
  end

  local n = "recovery.on_quorum"
  local out = {}
  if lost then out.quorum_lost = { [n] = function() enqueue { what = "lost", c = lost } end } end
  if regained then out.quorum_regained = { [n] = function() enqueue { what = "regained", c = regained } end } end
  return out
end

-- ---- restart_on_down ----

--- restart_on_down{ peer = "node2", cmd = "systemctl", args = { "restart", "proxy" }
--                   [, backoff_ms = 1000, max_backoff_ms = 60000, timeout_ms = 30000,
--                      reasons = { "timeout", "closed" }, skip_if_up = true, name = ] }
-- Restarts a local service when a peer goes down. By default only a failure counts
-- (timeout, closed): a peer that left on purpose (SIGTERM, clusterlua.leave) is being
-- stopped by someone, and restarting behind their back would fight them; add "left"
-- to reasons to restart then too. Restarts are at least backoff_ms apart,
-- the spacing doubling up to max_backoff_ms while the peer keeps flapping and going back
-- to backoff_ms once it has been quiet for max_backoff_ms. Down events while a restart
-- is waiting or running fold into it. A peer that is back by then is not acted on.
function M.restart_on_down(opts)
  local fname = "restart_on_down"
  if type(opts) ~= "table" then argerr(fname, "table expected") end
  local c = command(fname, "cmd", { cmd = opts.cmd, args = opts.args, env = opts.env })
  local base = check_ms(fname, opts, "backoff_ms", 1000)
  local max = check_ms(fname, opts, "max_backoff_ms", math.max(60000, base))
  if max < base then argerr(fname, "max_backoff_ms must be >= backoff_ms") end
  local timeout = check_ms(fname, opts, "timeout_ms", 30000)
  local wanted = matcher(fname, opts.peer)
  local reasons = { timeout = true, closed = true }
  if opts.reasons ~= nil then
    if type(opts.reasons) ~= "table" then argerr(fname, "reasons: expected a list such as { \"timeout\" }") end
    reasons = {}
    for i, r in ipairs(opts.reasons) do
      -- a misspelt reason would never match: refuse it
      if r ~= "timeout" and r ~= "closed" and r ~= "left" then
        argerr(fname, ("reasons[%d]: expected \"timeout\", \"closed\" or \"left\", got %s"):format(i, tostring(r)))
      end
      reasons[r] = true
    end
  end
  local skip_if_up = opts.skip_if_up ~= false
  local api = api_of(opts)
  local state = { last = nil, backoff = base, pending = false, restarts = 0 }

  local function on_down(name, reason)
    if not wanted(name) or not reasons[reason] then return end
    if state.pending then return end -- folded into the restart already on its way
    state.pending = true
    local ok, err = pcall(function()
      local now = api.now()
      if state.last then
        local since = now - state.last
        if since >= max then
          state.backoff = base -- quiet long enough: start over
        else
          local wait = state.last + state.backoff - now
          if wait > 0 then
            log(api, "info", ("restart_on_down: %s down, restart in %d ms (backoff)"):format(name, math.ceil(wait)))
            api.sleep(wait)
          end
          state.backoff = math.min(max, state.backoff * 2)
        end
      end
      if skip_if_up and is_up(api, name) then
        log(api, "info", ("restart_on_down: %s is back, no restart"):format(name))
        return
      end
      state.last = api.now()
      state.restarts = state.restarts + 1
      run(api, ("restart_on_down (%s %s)"):format(name, tostring(reason)), c, timeout)
    end)
    state.pending = false
    if not ok then error(err, 0) end
  end

  local n = opts.name or ("recovery.restart_on_down:" .. (type(opts.peer) == "string" and opts.peer or "*"))
  return { node_down = { [n] = on_down } }
end

return M
