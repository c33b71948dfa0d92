-- The node's Lua face: membership, events, messages and RPC between Lua handlers.
-- The C side (clusterlua.c.node) owns connections on the control loop; this side keeps
-- the view Lua has seen, in the order events arrived.
local buffer = require "string.buffer"
local ffi = require "ffi"
local uv = require "uv"
local core = require "clusterlua.c.core"
local events = require "clusterlua.events"
local scheduler = require "clusterlua.scheduler"
local names = require "clusterlua.names"
local report = require "clusterlua.report"
local cjson = require "cjson.safe"

local M = {}

-- Messages travel on the data connection the Lua loop owns, written and read here with
-- no thread hop; the bytes go to C and come back through the FFI, so no Lua string is
-- made per message. A peer without one (transport.data_connection = false on either
-- side, or it could not be opened) is reached through the control loop instead.
-- A data connection opens on demand: the first message to a peer asks the control loop
-- to dial one and waits in `dwait` until it is handed over (or fails: then the control
-- connection); one the peer dialled first is taken as it comes. A peer's messages never
-- move from the control connection to a data connection, which could overtake them.
pcall(ffi.cdef, [[
typedef struct cl_dp_conn cl_dp_conn;
typedef struct { const uint8_t *p; size_t len; } cl_dp_rx;
int cl_dp_send(cl_dp_conn *c, const uint8_t *p, size_t len);
]])
local C = ffi.C

local cnode -- loaded on start: a plain script never needs it
local cdp
local rx     -- the message being delivered (cl_dp_rx *)
local self_info
local connected = {} -- full name -> info: the members up (node_up), connected or not (design.md §5)
-- the names of `connected`, sorted, built when asked for after a change: sorting on every
-- node_up/node_down cost O(N log N) per event, O(N^2 log N) per node while N nodes form
-- (the largest share of a node's CPU in a 200-node formation, issue 18)
local connected_order = nil
local seen = {}      -- full name -> true: every node ever up or asked for (names it for resolve)
local dconn = {}     -- full name -> cl_dp_conn * of the data connection messages go out on
local dconn_ud = {}  -- full name -> the same, as a light userdata (to close it)
local dextra = {}    -- full name -> {ud = true}: more data connections, read only (both
                     -- sides dialled at once: each sends on the first it had)
local dwait = {}     -- full name -> {q = {bytes...}, bytes = n, timer = t}: asked for one
local dcontrol = {}  -- full name -> true: its messages use the control connection
local DATA_WAIT_MS = 5000 -- a data connection asked for and not there by then: control
local wait_max = 64 * 1024 * 1024 -- bytes held while one opens (transport.send_queue_max)
local handlers = {}  -- message handler name -> fn
local pending = {}   -- call id -> {co=, node=, deadline=}
local next_id = 0
local started = false
local keyring -- the keys, primary first, once started (updated on rotation)
local before_exit    -- given to M.start: stops discovery before a leave or a shutdown
local max_frame = 16 * 1024 * 1024
local sbuf, rbuf = buffer.new(), buffer.new()
local traceback = debug.traceback

M.stats = { remote_errors = 0, dropped_replies = 0, handler_errors = 0, control_path_sends = 0 }

local function order_changed()
  connected_order = nil
end

local function order()
  if not connected_order then
    connected_order = {}
    for n in pairs(connected) do connected_order[#connected_order + 1] = n end
    table.sort(connected_order)
  end
  return connected_order
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
  for i, n in ipairs(order()) do out[i] = n end
  return out
end

-- Resolves a short or full name against the nodes this node knows about: connected ones
-- first, then those it has seen or been asked to connect to, which are named in full so
-- that a send or call says ENOTCONN for a short name as it does for the full one.
function M.resolve(name)
  if connected[name] then return name end
  local known = M.nodes()
  if self_info then known[#known + 1] = self_info.name end
  local full, err, code = names.resolve(name, known)
  if full or code ~= "ENOENT" then return full, err, code end
  local down = {}
  for n in pairs(seen) do
    if not connected[n] then down[#down + 1] = n end
  end
  table.sort(down)
  local f2, err2, code2 = names.resolve(name, down)
  if f2 or code2 ~= "ENOENT" then return f2, err2, code2 end
  return nil, err, code
end

--- want(full): keep connected to full (the supervisor and connect go through here)
function M.want(full)
  seen[full] = true
  cnode.want(full)
end

local function need_started(level)
  if not started then error("clusterlua: this process is not a node (start it with --name)", level + 1) end
end

function M.connect(name)
  need_started(2)
  local full, err, code = names.full(name)
  if not full then return nil, err, code end
  M.want(full)
  return true
end

function M.disconnect(name)
  need_started(2)
  local full, err, code = M.resolve(name)
  if not full then return nil, err, code end
  -- drops the connection and keeps it dropped (not dialled, not accepted) until a
  -- strategy or cl.connect asks for it again: a disconnect does not flap back
  cnode.disconnect(full)
  return true
end

function M.handle(name, fn)
  if type(name) ~= "string" then error("bad argument #1 (name): expected a string", 2) end
  if fn ~= nil and type(fn) ~= "function" then error("bad argument #2 (fn): expected a function or nil", 2) end
  handlers[name] = fn
end

-- A message is 3 or 4 objects in a row: "m" name value | "c" name value id |
-- "r" id ok value. No table is built around them on either side.
local function pack(kind, a, b, c, n)
  sbuf:reset()
  sbuf:encode(kind)
  sbuf:encode(a)
  sbuf:encode(b)
  if n == 4 then sbuf:encode(c) end
end

-- asks the control loop for a data connection to full, in the life node_up reported;
-- the "data" event answers (dispatch.data), or the wait ends after DATA_WAIT_MS. While
-- dwait[full] exists every message to full joins its queue, so nothing overtakes it:
-- q[i..] wait; settled once the wait is over and the queue drains (data_drain).
local data_settle
local function data_ask(full)
  local w = { q = {}, i = 1, bytes = 0, timer = uv.new_timer(), settled = false }
  dwait[full] = w
  local inc = connected[full].incarnation
  w.timer:start(DATA_WAIT_MS, 0, function()
    if dwait[full] == w and not w.settled then
      core.report("data connection", "none with " .. full .. " after " .. DATA_WAIT_MS
        .. " ms: its messages use the control connection")
      data_settle(full, nil)
    end
  end)
  cnode.data_open(full, inc)
  return w
end

local function deliver(full, kind, a, b, c, n)
  if not connected[full] then return nil, "ENOTCONN: not connected to " .. full, "ENOTCONN" end
  local ok, err = pcall(pack, kind, a, b, c, n)
  if not ok then
    sbuf:reset()
    -- string.buffer's message carries this file's path and line: the caller's value is
    -- what was wrong, not the runtime
    local why = tostring(err):gsub("^[^\n]-:%d+: ", "")
    return nil, "EINVAL: value cannot be serialized: " .. why, "EINVAL"
  end
  local len = #sbuf
  -- refused here, at once, not dropped later by the receiver
  if len > max_frame then
    return nil, ("E2BIG: message of %d bytes exceeds transport.max_frame (%d)"):format(len, max_frame), "E2BIG"
  end
  local dc, w = dconn[full], dwait[full]
  if not dc or w then
    if not w and not dcontrol[full] and connected[full].data_connection then w = data_ask(full) end
    if w then
      if w.bytes + len > wait_max then
        return nil, "ENOBUFS: the send queue to " .. full .. " is full", "ENOBUFS"
      end
      w.q[#w.q + 1] = sbuf:tostring()
      w.bytes = w.bytes + len
      return true
    end
    -- from now on this peer's messages take the control path (a data connection it
    -- dials is only read: a message sent on it could overtake these)
    dcontrol[full] = true
    M.stats.control_path_sends = M.stats.control_path_sends + 1
    return cnode.send(full, sbuf:tostring())
  end
  local rc = C.cl_dp_send(dc, (sbuf:ref()), len)
  if rc == 0 then return true end
  if rc == cdp.ENOBUFS then return nil, "ENOBUFS: the send queue to " .. full .. " is full", "ENOBUFS" end
  return nil, "ENOTCONN: the data connection to " .. full .. " is closing", "ENOTCONN"
end

function M.send(node, name, value)
  need_started(2)
  if type(name) ~= "string" then error("bad argument #2 (name): expected a string", 2) end
  local full, err, code = M.resolve(node)
  if not full then return nil, err, code end
  return deliver(full, "m", name, value)
end

-- ---- call timeouts: one timer for every outstanding call, armed for the earliest ----

local ctimer
local ctimer_at = math.huge

local on_ctimer
local function arm(deadline)
  if deadline >= ctimer_at then return end
  ctimer_at = deadline
  if not ctimer then ctimer = uv.new_timer() end
  local d = deadline - uv.now()
  ctimer:start(d > 0 and d or 0, 0, on_ctimer)
end

function on_ctimer()
  ctimer_at = math.huge
  local now, nextd, due = uv.now(), math.huge, nil
  for id, p in pairs(pending) do
    if p.deadline <= now then
      due = due or {}
      due[#due + 1] = id
    elseif p.deadline < nextd then
      nextd = p.deadline
    end
  end
  if due then
    table.sort(due)
    for _, id in ipairs(due) do
      local p = pending[id]
      if p then
        pending[id] = nil
        -- through the scheduler: a cancelled hook is not resumed, a budget applies
        scheduler.resume(p.co, nil, ("ETIMEDOUT: %s did not answer %s within %d ms"):format(p.node, p.name, p.timeout),
          "ETIMEDOUT")
      end
    end
    for _, p in pairs(pending) do
      if p.deadline < nextd then nextd = p.deadline end
    end
  end
  if nextd < math.huge then arm(nextd) end
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
  local ok, e2, c2 = deliver(full, "c", name, value, id, 4)
  if not ok then return nil, e2, c2 end
  local deadline = uv.now() + timeout
  pending[id] = { co = co, node = full, deadline = deadline, name = name, timeout = timeout }
  if deadline < ctimer_at then arm(deadline) end
  return coroutine.yield()
end

local function finish(id, ...)
  local p = pending[id]
  if not p then
    M.stats.dropped_replies = M.stats.dropped_replies + 1
    return
  end
  pending[id] = nil
  -- through the scheduler: a cancelled hook is not resumed, a budget applies, errors reported
  scheduler.resume(p.co, ...)
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
    version = core.version,
    nodes = M.nodes(),
  }
end

function M.info(node)
  return M.call(node, "$info", nil, { timeout = 2000 })
end

-- ---- running handlers ----
-- Each message runs its handler in a coroutine (it may wait: call, sleep), taken from a
-- pool of parked ones: creating a coroutine per message would cost more than the rest.
-- A handler that waits keeps its coroutine; the next message gets another.

local function reply(to, id, ok, value)
  local sok, err, code = deliver(to, "r", id, ok, value, 4)
  if not sok and code == "EINVAL" then sok = deliver(to, "r", id, false, err, 4) end
  if not sok then M.stats.dropped_replies = M.stats.dropped_replies + 1 end
end

local function serve(h, kind, name, value, from, id)
  if kind == "m" then
    local ok, err = xpcall(h, traceback, value, from)
    if not ok then
      if type(err) == "userdata" then error(err, 0) end -- os.exit
      M.stats.handler_errors = M.stats.handler_errors + 1
      core.report("handler " .. tostring(name), tostring(err))
    end
  else
    local ok, r = pcall(h, value, from)
    if not ok and type(r) == "userdata" then error(r, 0) end
    reply(from, id, ok, ok and r or tostring(r))
  end
end

local pool, npool, POOL_MAX = {}, 0, 64

local function worker(h, kind, name, value, from, id)
  local self = coroutine.running()
  while true do
    serve(h, kind, name, value, from, id)
    if npool >= POOL_MAX then return end
    npool = npool + 1
    pool[npool] = self
    h, kind, name, value, from, id = coroutine.yield()
  end
end

local function run_handler(h, kind, name, value, from, id)
  local co
  if npool > 0 then
    co = pool[npool]
    pool[npool] = nil
    npool = npool - 1
  else
    co = coroutine.create(worker)
  end
  local ok, err = coroutine.resume(co, h, kind, name, value, from, id)
  if not ok then
    if type(err) == "userdata" then error(err, 0) end
    core.report("handler " .. tostring(name), traceback(co, tostring(err)))
  end
end

local function decode()
  local kind, a, b = rbuf:decode(), rbuf:decode(), rbuf:decode()
  if #rbuf > 0 then return kind, a, b, rbuf:decode() end
  return kind, a, b
end

-- rbuf holds the message (a Lua string or the C buffer of the data connection)
local function on_message_in(from)
  local ok, kind, a, b, c = pcall(decode)
  rbuf:reset()
  if not ok then
    core.report("message from " .. from, "undecodable message dropped")
    return
  end
  if kind == "m" then
    local h = handlers[a]
    if h then run_handler(h, "m", a, b, from) end
  elseif kind == "c" then
    local h = handlers[a]
    if not h then
      reply(from, c, false, "no handler named " .. tostring(a))
      return
    end
    run_handler(h, "c", a, b, from, c)
  elseif kind == "r" then
    if b then
      finish(a, c)
    else
      M.stats.remote_errors = M.stats.remote_errors + 1
      finish(a, nil, "EREMOTE: " .. tostring(c), "EREMOTE")
    end
  else
    core.report("message from " .. from, "message of unknown kind dropped")
  end
end

local function on_message(from, data)
  rbuf:set(data)
  on_message_in(from)
end

local function on_dp_message(from)
  rbuf:set(rx.p, tonumber(rx.len))
  on_message_in(from)
end

-- the data connection failed while the control connection lives on: fall back to it
-- (for good in this life of the peer: see the top of this file)
local function on_dp_closed(from, conn)
  if dconn_ud[from] == conn then
    dconn[from], dconn_ud[from] = nil, nil
    dcontrol[from] = true
  elseif dextra[from] then
    dextra[from][conn] = nil
  end
end

-- sends what waits for full, in order, until a queue refuses (then again in 5 ms)
local function data_drain(full)
  local w = dwait[full]
  if not w then return end
  local q, i = w.q, w.i
  while i <= #q do
    local m = q[i]
    local dc, sent = dconn[full], false
    if dc then
      local rc = C.cl_dp_send(dc, ffi.cast("const uint8_t *", m), #m)
      if rc == cdp.ENOBUFS then break end
      if rc == 0 then
        sent = true
      else
        -- closing already (it failed as it was adopted, or the peer closed it): this
        -- message and the rest take the control connection (its close callback finds
        -- it gone)
        dconn[full], dconn_ud[full] = nil, nil
        dcontrol[full] = true
      end
    elseif cnode.send(full, m) then
      M.stats.control_path_sends = M.stats.control_path_sends + 1
      sent = true
    else
      break
    end
    if sent then
      q[i] = false
      w.bytes = w.bytes - #m
      i = i + 1
    end
  end
  w.i = i
  if i > #q then
    dwait[full] = nil
    w.timer:close()
  else
    w.timer:start(5, 0, function() data_drain(full) end)
  end
end

-- the wait for full's data connection ends: with ud (send on it) or without (control);
-- what waited goes out first, in order
function data_settle(full, ud)
  if ud then
    dconn_ud[full] = ud
    dconn[full] = ffi.cast("cl_dp_conn *", ud)
  else
    dcontrol[full] = true
  end
  local w = dwait[full]
  if w and not w.settled then
    w.settled = true
    w.timer:stop()
    data_drain(full)
  end
end

-- forgets every data connection with name (and a wait for one): it went down, came
-- back in another life, or a test drops it
local function drop_dconn(name)
  local ud = dconn_ud[name]
  if ud then
    dconn[name], dconn_ud[name] = nil, nil
    cdp.close(ud)
  end
  local ex = dextra[name]
  if ex then
    dextra[name] = nil
    for u in pairs(ex) do cdp.close(u) end
  end
  local w = dwait[name]
  if w then
    dwait[name] = nil
    w.timer:close()
  end
  dcontrol[name] = nil
end

local function on_node_down(name, reason)
  drop_dconn(name)
  local ids = {}
  for id, p in pairs(pending) do
    if p.node == name then ids[#ids + 1] = id end
  end
  table.sort(ids)
  for _, id in ipairs(ids) do
    finish(id, nil, ("ENOTCONN: %s went down (%s)"):format(name, reason), "ENOTCONN")
  end
end

--- drop_data_connection(node): closes the data connection to node, as a network fault
-- would; messages then travel on the control connection (tests use it)
function M.drop_data_connection(node)
  local full = M.resolve(node)
  if full then
    local ud = dconn_ud[full]
    if ud then
      dconn[full], dconn_ud[full] = nil, nil
      cdp.close(ud)
    end
    dcontrol[full] = true
  end
  return full ~= nil
end

--- data_stats() -> counters of the data connections (messages and bytes in and out)
function M.data_stats()
  return cdp and cdp.stats() or nil
end

--- has_data_connection(node) -> true when messages to node use its data connection
function M.has_data_connection(node)
  local full = M.resolve(node)
  return full ~= nil and dconn[full] ~= nil
end

-- strategies stop first, so nothing dials a peer again while the node leaves
local function stop_discovery()
  if before_exit then before_exit() end
end

-- Dispatch of what the control loop reports, by kind (a short string): membership and
-- messages here; the election's reports and the admin endpoint's reload request come
-- from the functions M.start's caller gives.
local dispatch = {
  up = function(name, info)
    drop_dconn(name)
    -- whether messages to it take a data connection (opened with the first of them)
    info.data_connection, info.data_ok = info.data_ok, nil
    connected[name] = info
    seen[name] = true
    order_changed()
    events.emit("node_up", name, info)
  end,
  down = function(name, reason)
    if connected[name] then
      connected[name] = nil
      order_changed()
    end
    on_node_down(name, reason)
    events.emit("node_down", name, reason)
  end,
  msg = on_message,
  -- a data connection with name (nil: the one asked for failed), in its life inc
  data = function(name, conn, inc)
    local info = connected[name]
    if conn and (not info or info.incarnation ~= inc) then
      cdp.close(conn)
    elseif conn and (dconn[name] or dcontrol[name]) then
      -- both sides dialled at once, or its messages already take the control connection:
      -- read what comes on it, send on the one in use
      dextra[name] = dextra[name] or {}
      dextra[name][conn] = true
    elseif info and info.incarnation == inc and (conn or (dwait[name] and not dwait[name].settled)) then
      data_settle(name, conn)
    end
  end,
  -- the keyring changed (a rotation): keys one a line, primary first
  keyring = function(_, text)
    local ring = {}
    for k in text:gmatch("[^\n]+") do ring[#ring + 1] = k end
    if #ring > 0 then keyring = ring end
  end,
  -- SIGTERM/SIGINT: the control loop has already told the peers; stop discovery and exit
  shutdown = function()
    stop_discovery()
    os.exit(0)
  end,
}

-- The kinds M.start must be given a handler for: the C side reports them whether or
-- not anyone listens, so a missing handler would lose them silently.
M.report_kinds = { "master", "quorum", "committed", "done", "reload" }

--- leave([code]): tells every peer this node leaves (they see node_down(name, "left"),
-- as after SIGTERM), then exits with code (default 0). It returns only if this process
-- is not a node. os.exit alone closes the connections, which peers see as "closed".
function M.leave(code)
  need_started(2)
  if code ~= nil and type(code) ~= "number" and type(code) ~= "boolean" then
    error("bad argument #1 (code): expected an exit status (a number or a boolean)", 2)
  end
  stop_discovery()
  cnode.leave() -- returns once the peers have been told (at most 1 s for one that does not read)
  os.exit(code == nil and 0 or code)
end

-- After a burst of membership (a cluster forming, a wave of departures) the heap holds
-- the garbage of every event's tables, which a node at rest never collects: the
-- collector steps as Lua allocates, and at rest Lua allocates almost nothing. At 300
-- nodes that was about 0.85 MiB of each node's heap (collectgarbage "count" 1.4 MiB,
-- 0.55 after a full collection; issue 18 sets 4 MiB of RssAnon). So one full collection
-- runs once membership and the committed state have been still for SETTLE_GC_MS; at
-- rest nothing runs. The Lua heap is the C allocator's (lua_host.c), so the collection
-- is followed by core.trim(), which hands the freed pages back to the kernel. (The
-- control loop hands its own free pages back the same way: node.c, trim_maybe.)
local SETTLE_GC_MS = 5000
local settles_gc = { up = true, down = true, committed = true }
local gc_timer
local function settle_gc()
  if not gc_timer then
    gc_timer = uv.new_timer()
    gc_timer:unref()
  end
  gc_timer:start(SETTLE_GC_MS, 0, function()
    collectgarbage "collect"
    core.trim()
  end)
end

-- Starts the node: config is the table start.lua builds (name, id, cluster, cookie...).
-- reports: kind -> fn(name, a, b, c) for every kind in M.report_kinds (cluster.lua's
-- election reports, reload.lua's admin request), given by whoever starts the node so
-- that no report depends on which modules happen to have been required.
-- opts.before_exit(): runs before cl.leave or a SIGTERM exit (start.lua stops the
-- strategies there).
function M.start(config, reports, opts)
  if type(config) ~= "table" then error("bad argument #1 (config): expected a table", 2) end
  if type(reports) ~= "table" then error("bad argument #2 (reports): expected a table", 2) end
  for _, kind in ipairs(M.report_kinds) do
    if type(reports[kind]) ~= "function" then
      error(("bad argument #2 (reports): expected a function for %q"):format(kind), 2)
    end
  end
  for kind in pairs(reports) do
    if dispatch[kind] then error(("bad argument #2 (reports): %q is handled by the node itself"):format(kind), 2) end
  end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #3 (opts): expected a table", 2) end
  if opts and opts.before_exit ~= nil and type(opts.before_exit) ~= "function" then
    error("bad argument #3 (opts.before_exit): expected a function", 2)
  end
  if started then return nil, "EALREADY: this process is already a node", "EALREADY" end
  cnode = require "clusterlua.c.node"
  cdp = require "clusterlua.c.dataplane"
  cdp.set_handlers(on_dp_message, on_dp_closed)
  if config.spin_us then cdp.set_spin_us(config.spin_us) end
  rx = ffi.cast("const cl_dp_rx *", cdp.rx())
  before_exit = opts and opts.before_exit
  local ok, err, code = cnode.start(config, function(kind, name, a, b, c)
    local f = dispatch[kind] or reports[kind]
    if f then f(name, a, b, c) end
    if settles_gc[kind] then settle_gc() end
  end)
  if not ok then
    before_exit = nil
    return nil, err, code
  end
  started = true
  -- events born here (reloads, hook and strategy errors) join the node's event stream
  local cn = cnode
  report.sink = function(kind, fields)
    local json = cjson.encode(fields)
    if json then cn.event(kind, json) end
  end
  keyring = config.keys or { config.cookie }
  max_frame = config.max_frame or max_frame
  wait_max = config.send_queue_max or wait_max
  self_info = {
    name = config.name, id = config.id, roles = config.roles, cluster = config.cluster, pid = uv.os_getpid(),
  }
  return true
end

function M.cnode() return cnode end

-- The node's keys, primary first (strategies reach them only through ctx.cookie_key and
-- ctx.cookie_keys, which derive; never log them). nil when this process is not a node.
function M.keyring() return keyring end

return M
