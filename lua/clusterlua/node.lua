-- The node's Lua face: membership, events, messages and RPC between Lua handlers.
-- The C side (clusterlua.cnode) owns connections on the control loop; this side keeps
-- the view Lua has seen, in the order events arrived.
local buffer = require "string.buffer"
local uv = require "uv"
local events = require "clusterlua.events"
local names = require "clusterlua.names"

local M = {}

local cnode -- loaded on start: a plain script never needs it
local self_info
local connected = {} -- full name -> info
local connected_order = {}
local handlers = {}  -- message handler name -> fn
local pending = {}   -- call id -> {co=, node=, timer=}
local next_id = 0
local started = false
local max_frame = 16 * 1024 * 1024

M.stats = { remote_errors = 0, dropped_replies = 0 }

local function enc(t)
  local ok, s = pcall(buffer.encode, t)
  if not ok then return nil, "EINVAL: value cannot be serialized: " .. tostring(s), "EINVAL" end
  return s
end

local function rebuild_order()
  connected_order = {}
  for n in pairs(connected) do connected_order[#connected_order + 1] = n end
  table.sort(connected_order)
end

function M.is_started() return started end

function M.self()
  if not self_info then return nil end
  local t = {}
  for k, v in pairs(self_info) do t[k] = v end
  return t
end

function M.nodes()
  local out = {}
  for i, n in ipairs(connected_order) do out[i] = n end
  return out
end

-- Resolves a short or full name against the nodes this node knows about.
function M.resolve(name)
  local known = M.nodes()
  if self_info then known[#known + 1] = self_info.name end
  return names.resolve(name, known)
end

local function need_started(level)
  if not started then error("clusterlua: this process is not a node (start it with --name)", level + 1) end
end

function M.connect(name)
  need_started(2)
  local full, err, code = names.full(name)
  if not full then return nil, err, code end
  cnode.want(full)
  return true
end

function M.disconnect(name)
  need_started(2)
  local full, err, code = M.resolve(name)
  if not full then return nil, err, code end
  cnode.unwant(full)
  return true
end

function M.handle(name, fn)
  if type(name) ~= "string" then error("bad argument #1 (name): expected a string", 2) end
  if fn ~= nil and type(fn) ~= "function" then error("bad argument #2 (fn): expected a function or nil", 2) end
  handlers[name] = fn
end

local function send_raw(node, msg)
  local full, err, code = M.resolve(node)
  if not full then return nil, err, code end
  if not connected[full] then return nil, "ENOTCONN: not connected to " .. full, "ENOTCONN" end
  local s, e2, c2 = enc(msg)
  if not s then return nil, e2, c2 end
  -- refused here, at once: the transport would only drop it later on the control loop
  if #s > max_frame then
    return nil, ("E2BIG: message of %d bytes exceeds transport.max_frame (%d)"):format(#s, max_frame), "E2BIG"
  end
  return cnode.send(full, s)
end

function M.send(node, name, value)
  need_started(2)
  if type(name) ~= "string" then error("bad argument #2 (name): expected a string", 2) end
  return send_raw(node, { "m", name, value })
end

function M.call(node, name, value, opts)
  need_started(2)
  if type(name) ~= "string" then error("bad argument #2 (name): expected a string", 2) end
  local co, main = coroutine.running()
  if not co or main then error("bad argument: clusterlua.call must be called from a coroutine", 2) end
  local timeout = opts and opts.timeout or 5000
  local full, err, code = M.resolve(node)
  if not full then return nil, err, code end
  next_id = next_id + 1
  local id = next_id
  local ok, e2, c2 = send_raw(full, { "c", name, value, id })
  if not ok then return nil, e2, c2 end
  local timer = uv.new_timer()
  local p = { co = co, node = full, timer = timer }
  pending[id] = p
  timer:start(timeout, 0, function()
    if pending[id] then
      pending[id] = nil
      timer:close()
      -- through events.resume: a cancelled hook is not resumed, a budget applies
      events.resume(co, nil, ("ETIMEDOUT: %s did not answer %s within %d ms"):format(full, name, timeout),
        "ETIMEDOUT")
    end
  end)
  return coroutine.yield()
end

local function finish(id, ...)
  local p = pending[id]
  if not p then
    M.stats.dropped_replies = M.stats.dropped_replies + 1
    return
  end
  pending[id] = nil
  p.timer:stop()
  p.timer:close()
  -- through events.resume: a cancelled hook is not resumed, a budget applies, errors reported
  events.resume(p.co, ...)
end

-- Built-in handlers: runtime info of this node, as the seed article read Process.info.
local function meminfo()
  local f = io.open("/proc/self/status")
  if not f then return {} end
  local t = {}
  for line in f:lines() do
    local k, v = line:match "^(%w+):%s+(%d+) kB"
    if k == "VmRSS" or k == "RssAnon" or k == "VmHWM" then t[k] = tonumber(v) * 1024 end
  end
  f:close()
  return t
end

local start_time = uv.hrtime()
handlers["$info"] = function()
  local mem = meminfo()
  return {
    name = self_info and self_info.name,
    pid = uv.os_getpid(),
    uptime_ms = math.floor((uv.hrtime() - start_time) / 1e6),
    memory = { rss = mem.VmRSS, rss_anon = mem.RssAnon, lua = collectgarbage "count" * 1024 },
    version = require("clusterlua.core").version,
    nodes = M.nodes(),
  }
end

function M.info(node)
  return M.call(node, "$info", nil, { timeout = 2000 })
end

local function on_message(from, data)
  local ok, msg = pcall(buffer.decode, data)
  if not ok or type(msg) ~= "table" then
    require("clusterlua.core").report("message from " .. from, "undecodable message dropped")
    return
  end
  local kind = msg[1]
  if kind == "m" then
    local h = handlers[msg[2]]
    if h then events.spawn("handler " .. tostring(msg[2]), h, msg[3], from) end
  elseif kind == "c" then
    local name, value, id = msg[2], msg[3], msg[4]
    local h = handlers[name]
    if not h then
      send_raw(from, { "r", id, false, "no handler named " .. tostring(name) })
      return
    end
    events.spawn("handler " .. tostring(name), function()
      local res = { pcall(h, value, from) }
      if res[1] then
        local sok = send_raw(from, { "r", id, true, res[2] })
        if not sok then M.stats.dropped_replies = M.stats.dropped_replies + 1 end
      else
        send_raw(from, { "r", id, false, tostring(res[2]) })
      end
    end)
  elseif kind == "r" then
    if msg[3] then
      finish(msg[2], msg[4])
    else
      M.stats.remote_errors = M.stats.remote_errors + 1
      finish(msg[2], nil, "EREMOTE: " .. tostring(msg[4]), "EREMOTE")
    end
  end
end

local function on_node_down(name, reason)
  for id, p in pairs(pending) do
    if p.node == name then
      finish(id, nil, ("ENOTCONN: %s went down (%s)"):format(name, reason), "ENOTCONN")
    end
  end
end

-- Dispatch of everything the control loop reports. kind is a short string.
local dispatch = {
  up = function(name, info)
    connected[name] = info
    rebuild_order()
    events.emit("node_up", name, info)
  end,
  down = function(name, reason)
    if connected[name] then
      connected[name] = nil
      rebuild_order()
    end
    on_node_down(name, reason)
    events.emit("node_down", name, reason)
  end,
  msg = on_message,
  -- SIGTERM/SIGINT: the control loop has already told the peers; stop discovery and exit
  shutdown = function()
    local ok, start = pcall(require, "clusterlua.start")
    if ok and start.current then start.current.supervisor:stop_all() end
    os.exit(0)
  end,
}
M.dispatch = dispatch

-- Starts the node: config is the table node_main builds (name, id, cluster, cookie...).
function M.start(config)
  if started then return nil, "EALREADY: this process is already a node", "EALREADY" end
  cnode = require "clusterlua.cnode"
  local ok, err, code = cnode.start(config, function(kind, name, a, b, c)
    local f = dispatch[kind]
    if f then f(name, a, b, c) end
  end)
  if not ok then return nil, err, code end
  started = true
  max_frame = config.max_frame or max_frame
  self_info = {
    name = config.name, id = config.id, roles = config.roles, cluster = config.cluster, pid = uv.os_getpid(),
  }
  return true
end

function M.cnode() return cnode end

return M
