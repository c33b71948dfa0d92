-- One strategy instance per topology. Strategies only discover: they declare the set of
-- nodes they want and the runtime owns connections. The supervisor deduplicates the
-- wanted sets across topologies, restarts a strategy that throws (with backoff), and
-- swaps in new code on reload without dropping connections the new code still wants.
local uv = require "uv"
local core = require "clusterlua.c.core"
local events = require "clusterlua.events"
local report = require "clusterlua.report"
local names = require "clusterlua.names"
local file_watch = require "clusterlua.file_watch"

local M = {}
M.__index = M

-- rt: { self_name = full name, want = fn(name), unwant = fn(name) [, disconnect = fn(name),
--       cluster =, cookie =, keys = fn() -> the keyring now, primary first] }
-- unwant only stops dialling (a live connection stays up: a node that discovery no
-- longer lists stays a member until it leaves or fails); disconnect drops it.
-- cluster and cookie are the node's (start.lua passes them); without a cookie,
-- ctx.cookie_key returns ENOTCONN, and the cluster name defaults to "clusterlua".
function M.new(rt)
  return setmetatable({ rt = rt, topos = {}, wanted = {}, err_rl = {} }, M)
end

function M:log(topology, level, msg)
  core.log(level, topology, msg)
end

-- refcounted across topologies: a node two topologies want is dialled once
function M:_apply(inst, new_set)
  local old = inst.set
  inst.set = new_set
  for n in pairs(new_set) do
    if not old[n] then
      local c = self.wanted[n] or 0
      self.wanted[n] = c + 1
      if c == 0 then self.rt.want(n) end
    end
  end
  for n in pairs(old) do
    if not new_set[n] then
      local c = (self.wanted[n] or 1) - 1
      self.wanted[n] = c > 0 and c or nil
      if c <= 0 then self.rt.unwant(n) end
    end
  end
end

-- A failing discovery source fails on every poll: its log lines are rate-limited per
-- topology as the transport's connection errors are (at most 5 in 10 s, the next line
-- that gets out counts the others). Hooks still hear of every error.
M.error_log_burst, M.error_log_window_ms = 5, 10000

local function report_error(sup, topology, err)
  local rl = sup.err_rl[topology]
  if not rl then
    rl = { start = -math.huge, n = 0, suppressed = 0 }
    sup.err_rl[topology] = rl
  end
  local now = core.now()
  if now - rl.start >= M.error_log_window_ms then rl.start, rl.n = now, 0 end
  if rl.n < M.error_log_burst then
    rl.n = rl.n + 1
    local more = rl.suppressed > 0 and (" (%d similar suppressed)"):format(rl.suppressed) or ""
    rl.suppressed = 0
    core.log("error", topology, "strategy error: " .. tostring(err) .. more)
  else
    rl.suppressed = rl.suppressed + 1
  end
  report.event("strategy_error", { topology = topology, error = tostring(err) })
  events.emit("strategy_error", topology, tostring(err))
end

function M:_ctx(inst)
  local sup = self
  local ctx = { topology = inst.name, self = self.rt.self_name, handles = {} }
  local function alive() return sup.topos[inst.name] == inst and not inst.stopped end
  local function guard(fn)
    return function(...)
      if not alive() then return end
      local ok, err = pcall(fn, ...)
      if not ok then sup:_crashed(inst, err) end
    end
  end
  function ctx.set_nodes(list)
    if not alive() then return end
    local set = {}
    for i, n in ipairs(list) do
      local full, err = names.full(n)
      if not full then error(("bad argument #1 (nodes[%d]): %s"):format(i, err), 2) end
      if full ~= sup.rt.self_name then set[full] = true end
    end
    sup:_apply(inst, set)
  end
  function ctx.nodes()
    local out = {}
    for n in pairs(inst.set) do out[#out + 1] = n end
    table.sort(out)
    return out
  end
  function ctx.connect(name)
    local full, err, code = names.full(name)
    if not full then return nil, err, code end
    if full ~= sup.rt.self_name then
      local set = {}
      for n in pairs(inst.set) do set[n] = true end
      set[full] = true
      sup:_apply(inst, set)
    end
    return true
  end
  function ctx.disconnect(name)
    local full, err, code = names.full(name)
    if not full then return nil, err, code end
    local set = {}
    for n in pairs(inst.set) do set[n] = true end
    set[full] = nil
    sup:_apply(inst, set)
    -- drop the connection too, unless another topology still wants the node
    if full ~= sup.rt.self_name and not sup.wanted[full] and sup.rt.disconnect then sup.rt.disconnect(full) end
    return true
  end
  function ctx.log(level, msg)
    if msg == nil then level, msg = "info", level end
    core.log(level, inst.name, tostring(msg))
  end
  -- A failed discovery keeps the last known set: it is reported, never taken as "no nodes".
  function ctx.error(err)
    report_error(sup, inst.name, err)
  end
  local function track(h)
    ctx.handles[h] = true
    return h
  end
  function ctx.timer(ms, fn)
    local t = track(uv.new_timer())
    t:start(ms, 0, guard(function()
      ctx.handles[t] = nil
      if not t:is_closing() then t:close() end
      fn()
    end))
    return t
  end
  function ctx.every(ms, fn, jitter)
    local t = track(uv.new_timer())
    local function arm()
      local d = ms
      if jitter and jitter > 0 then d = ms + math.random(0, jitter) end
      t:start(d, 0, guard(function()
        fn()
        if alive() and not t:is_closing() then arm() end
      end))
    end
    arm()
    return t
  end
  function ctx.udp() return track(uv.new_udp()) end
  function ctx.fs_event() return track(uv.new_fs_event()) end
  -- A watch of one file itself (not its directory), followed through renames; fn on
  -- each change. `fallback` says, in the warning when the file cannot be watched, what
  -- still notices changes. Its handles are the strategy's, closed with it.
  function ctx.watch_file(path, fn, fallback)
    if type(path) ~= "string" or path == "" then error("bad argument #1 (path): expected a file's path", 2) end
    if type(fn) ~= "function" then error("bad argument #2 (fn): expected a function", 2) end
    return file_watch.watch(path, fn, {
      fs_event = ctx.fs_event,
      after = ctx.timer,
      close = function(h)
        ctx.handles[h] = nil
        if not h:is_closing() then h:close() end
      end,
      guard = guard,
      log = function(level, msg) ctx.log(level, fallback and msg .. "; " .. fallback or msg) end,
    })
  end
  function ctx.spawn(fn, ...)
    local co = coroutine.create(fn)
    local ok, err = coroutine.resume(co, ...)
    if not ok then sup:_crashed(inst, debug.traceback(co, err)) end
  end
  ctx.guard = guard
  ctx.dns = require "clusterlua.dns"
  -- The cluster name and a key derived from the cookie let a strategy authenticate its
  -- own traffic (gossip). The cookie itself never reaches strategy code.
  ctx.cluster = sup.rt.cluster or "clusterlua"
  -- Both follow the keyring: call them when the key is needed (each call is one HMAC),
  -- not once at start, and a rotation needs no reload.
  local function ring()
    local keys = sup.rt.keys and sup.rt.keys()
    if keys and #keys > 0 then return keys end
    return sup.rt.cookie and { sup.rt.cookie } or nil
  end
  -- the primary key's derivation: for what this node sends
  function ctx.cookie_key(purpose)
    if type(purpose) ~= "string" or purpose == "" then error("bad argument #1 (purpose): expected a string", 2) end
    local keys = ring()
    if not keys then return nil, "ENOTCONN: this process is not a node (no cookie)", "ENOTCONN" end
    return require("clusterlua.c.crypto").derive_key(keys[1], purpose)
  end
  -- every key's derivation, primary first: what this node accepts
  function ctx.cookie_keys(purpose)
    if type(purpose) ~= "string" or purpose == "" then error("bad argument #1 (purpose): expected a string", 2) end
    local keys = ring()
    if not keys then return nil, "ENOTCONN: this process is not a node (no cookie)", "ENOTCONN" end
    local crypto, out = require "clusterlua.c.crypto", {}
    for i, k in ipairs(keys) do out[i] = crypto.derive_key(k, purpose) end
    return out
  end
  return ctx
end

function M:_close_handles(inst)
  for h in pairs(inst.ctx.handles) do
    if not h:is_closing() then h:close() end
  end
  inst.ctx.handles = {}
end

-- Starts a strategy; returns true or nil, err. prev_set keeps the old set declared until
-- the new instance replaces it, so a reload never drops a wanted connection.
function M:_start(name, topo, state, prev_set)
  local inst = { name = name, topo = topo, set = prev_set or {}, restarts = 0 }
  inst.ctx = self:_ctx(inst)
  self.topos[name] = inst
  local ok, err = pcall(topo.module.start, inst.ctx, topo.config, state)
  if not ok then
    self:_close_handles(inst)
    self.topos[name] = nil
    return nil, err
  end
  return inst
end

function M:_stop(inst)
  inst.stopped = true
  local ok, state = true, nil
  if inst.topo.module.stop then ok, state = pcall(inst.topo.module.stop, inst.ctx) end
  self:_close_handles(inst)
  if not ok then
    core.log("warn", inst.name, "strategy stop failed: " .. tostring(state))
    state = nil
  end
  return state
end

function M:_crashed(inst, err)
  if inst.stopped then return end
  report_error(self, inst.name, err)
  local state = self:_stop(inst)
  inst.restarts = inst.restarts + 1
  local delay = math.min(30000, 250 * 2 ^ math.min(inst.restarts - 1, 7))
  core.log("warn", inst.name, ("restarting strategy in %d ms"):format(delay))
  local t = uv.new_timer()
  t:start(delay, 0, function()
    t:close()
    if self.topos[inst.name] ~= inst then return end
    local new, e2 = self:_start(inst.name, inst.topo, state, inst.set)
    if new then
      new.restarts = inst.restarts
    else
      self.topos[inst.name] = inst
      self:_crashed(inst, e2)
    end
  end)
end

function M:start_all(topologies)
  for name, topo in pairs(topologies) do
    local inst, err = self:_start(name, topo, nil, nil)
    if not inst then return nil, ("%s: strategy %s failed to start: %s"):format(name, topo.strategy, tostring(err)) end
  end
  return true
end

-- Replaces running topologies with new ones (already validated). Each topology is swapped
-- on its own: a failure keeps that topology's old instance running. Returns a list of
-- what changed and a list of errors.
function M:reload(topologies)
  local changed, errors = {}, {}
  for name, topo in pairs(topologies) do
    local old = self.topos[name]
    local state = old and self:_stop(old) or nil
    local new, err = self:_start(name, topo, state, old and old.set)
    if new then
      changed[#changed + 1] = name
    else
      errors[#errors + 1] = ("%s: %s"):format(name, tostring(err))
      if old then
        local back = self:_start(name, old.topo, state, old.set)
        if not back then self.topos[name] = nil end
      end
    end
  end
  for name, inst in pairs(self.topos) do
    if not topologies[name] then
      self:_stop(inst)
      self:_apply(inst, {})
      self.topos[name] = nil
      changed[#changed + 1] = name
    end
  end
  table.sort(changed)
  return changed, errors
end

function M:stop_all()
  for name, inst in pairs(self.topos) do
    self:_stop(inst)
    self.topos[name] = nil
  end
end

return M
