-- Discovery by UDP multicast (or broadcast) announcements: every node periodically
-- says "I am NAME of cluster CLUSTER", and declares every node it hears. A node joins
-- by just starting; no host list.
--
-- Nothing in a packet is trusted until its MAC checks: packets are authenticated with
-- HMAC-SHA256 under a key derived from the cookie (the same derivation as the C
-- transport's cl_transport_derive_key(cookie, "gossip"); with a keyring: sent under the
-- primary key's, accepted under any key's), carry a timestamp and a
-- nonce against replays, and name their sender inside: the source address of a
-- datagram is never used, so a forged or NATed source cannot redirect anyone.
--
-- Packet (version 1), all lengths one byte, integers big-endian:
--   u8 version | u8 len, cluster | u8 len, node name | u64 unix ms | 8-byte nonce
--   | 32-byte HMAC-SHA256(key, everything before)
--
-- Nodes not heard for `expire` ms (default 10 intervals) are dropped from the declared
-- set; until then a silent node stays declared and the runtime's own failure detection
-- (heartbeats, re-dialling) decides whether it is up. A lost packet or two therefore
-- never disconnects anyone.
local uv = require "uv"
local check = require "clusterlua.check"
local names = require "clusterlua.names"

local M = {}

M.VERSION = 1
M.defaults = {
  port = 45892, group = "233.252.1.32", broadcast_group = "255.255.255.255", ttl = 1,
  interval = 5000, multicast_loop = true, max_skew = 60000,
}
M.MAC_LEN, M.NONCE_LEN = 32, 8
local MAX_PACKET = 1 + 1 + 255 + 1 + 255 + 8 + 8 + 32

local KEYS = { port = true, group = true, ttl = true, interface = true, broadcast = true, interval = true,
  multicast_loop = true, expire = true, max_skew = true }

local function ipv4(s)
  if type(s) ~= "string" then return nil end
  local a, b, c, d = s:match "^(%d+)%.(%d+)%.(%d+)%.(%d+)$"
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return a, b, c, d
end

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

local int = check.config_int

function M.validate(config)
  local ok, err = check.config_keys(config, KEYS)
  if not ok then return nil, err end
  ok, err = int(config, "port", 1, 65535, "a port number 1..65535")
  if not ok then return nil, err end
  ok, err = int(config, "ttl", 0, 255, "an integer 0..255")
  if not ok then return nil, err end
  ok, err = int(config, "interval", 10, nil, "an integer >= 10 (milliseconds)")
  if not ok then return nil, err end
  ok, err = int(config, "max_skew", 1000, nil, "an integer >= 1000 (milliseconds)")
  if not ok then return nil, err end
  for _, k in ipairs { "broadcast", "multicast_loop" } do
    if config[k] ~= nil and type(config[k]) ~= "boolean" then
      return nil, ("%s: expected true or false, got %s"):format(k, show(config[k]))
    end
  end
  if config.interface ~= nil and not ipv4(config.interface) then
    return nil, ("interface: expected the IPv4 address of an interface (e.g. \"127.0.0.1\"), got %s"):format(
      show(config.interface))
  end
  if config.group ~= nil then
    local a = ipv4(config.group)
    if not a then
      return nil, ("group: expected an IPv4 %s address, got %s"):format(
        config.broadcast and "broadcast" or "multicast", show(config.group))
    end
    if not config.broadcast and (a < 224 or a > 239) then
      return nil, ("group: expected an IPv4 multicast address (224.0.0.0 .. 239.255.255.255), got %s"):format(
        show(config.group))
    end
  end
  local interval = config.interval or M.defaults.interval
  ok, err = int(config, "expire", interval * 2, nil,
    ("an integer >= 2 intervals (%d milliseconds)"):format(interval * 2))
  if not ok then return nil, err end
  return true
end

-- ---- packets ----

local function u64(n)
  local b = {}
  for i = 8, 1, -1 do
    b[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(b)
end

local function read_u64(s, pos)
  local n = 0
  for i = pos, pos + 7 do n = n * 256 + s:byte(i) end
  return n
end

local function wall_ms()
  local sec, usec = uv.gettimeofday()
  return sec * 1000 + math.floor(usec / 1000)
end

--- encode(key, cluster, name, ts_ms, nonce) -> packet
function M.encode(key, cluster, name, ts, nonce)
  local crypto = require "clusterlua.c.crypto"
  local body = string.char(M.VERSION, #cluster) .. cluster .. string.char(#name) .. name .. u64(ts) .. nonce
  return body .. crypto.hmac_sha256(key, body)
end

--- decode(key, cluster, packet) -> { name=, ts=, nonce= } | nil, reason
-- reason: "malformed", "version", "wrong_cluster", "bad_mac" (checked in that order:
-- the MAC, the only costly check, is computed last)
function M.decode(key, cluster, pkt)
  local crypto = require "clusterlua.c.crypto"
  if type(pkt) ~= "string" or #pkt < 1 + 1 + 1 + 1 + 8 + M.NONCE_LEN + M.MAC_LEN or #pkt > MAX_PACKET then
    return nil, "malformed"
  end
  if pkt:byte(1) ~= M.VERSION then return nil, "version" end
  local clen = pkt:byte(2)
  local pos = 3 + clen
  if pos > #pkt then return nil, "malformed" end
  local pcluster = pkt:sub(3, pos - 1)
  local nlen = pkt:byte(pos)
  local name = pkt:sub(pos + 1, pos + nlen)
  pos = pos + 1 + nlen
  if clen == 0 or nlen == 0 or pos + 8 + M.NONCE_LEN + M.MAC_LEN - 1 ~= #pkt then return nil, "malformed" end
  if pcluster ~= cluster then return nil, "wrong_cluster" end
  local body_end = #pkt - M.MAC_LEN
  if not crypto.verify(key, pkt:sub(1, body_end), pkt:sub(body_end + 1)) then return nil, "bad_mac" end
  if not names.parse(name) then return nil, "malformed" end
  return { name = name, ts = read_u64(pkt, pos), nonce = pkt:sub(pos + 8, pos + 8 + M.NONCE_LEN - 1) }
end

-- ---- the strategy ----

local instances = setmetatable({}, { __mode = "k" })

--- stats(ctx) -> { sent=, accepted=, dropped = { reason = count } } of a running instance
function M.stats(ctx)
  local inst = instances[ctx]
  return inst and inst.stats
end

local DROP_LOG_EVERY = 10000

function M.start(ctx, config, state)
  local crypto = require "clusterlua.c.crypto"
  local key, kerr = ctx.cookie_key("gossip")
  if not key then error("gossip needs the cluster cookie: " .. tostring(kerr), 0) end
  -- The keys follow the keyring (a rotation needs no reload): announcements go out under
  -- the primary's key, and a packet under any key of the ring is accepted. Deriving is
  -- one HMAC, so they are asked for on every packet rather than cached.
  local function send_key() return ctx.cookie_key("gossip") or key end
  local function accept_keys() return ctx.cookie_keys and ctx.cookie_keys("gossip") or { send_key() } end
  local broadcast = config.broadcast == true
  local port = config.port or M.defaults.port
  local group = config.group or (broadcast and M.defaults.broadcast_group or M.defaults.group)
  local interval = config.interval or M.defaults.interval
  local expire = config.expire or interval * 10
  local max_skew = config.max_skew or M.defaults.max_skew
  local cluster = ctx.cluster or "clusterlua"
  local self_name = ctx.self
  local guard = ctx.guard or function(f) return f end

  local inst = {
    -- name -> { heard = uv.now() of the last good packet, ts = its timestamp }
    peers = state and state.peers or {},
    stats = state and state.stats or { sent = 0, accepted = 0, dropped = {} },
    declared = {},
    stopped = false,
  }
  instances[ctx] = inst

  local started = uv.now()
  local function declare()
    local now = uv.now()
    local list = {}
    for n, p in pairs(inst.peers) do
      if now - p.heard <= expire then list[#list + 1] = n end
      -- the timestamp is kept past expiry so an old packet replayed later is still refused
      if now - p.heard > expire + 2 * max_skew then inst.peers[n] = nil end
    end
    table.sort(list)
    -- Hearing nobody yet is not an answer: whatever the previous instance declared
    -- stays until someone is heard or a whole expiry window has passed in silence.
    if #list == 0 and inst.declared_key == nil and now - started < expire then return end
    local key_now = table.concat(list, "\n")
    if key_now ~= inst.declared_key then
      inst.declared_key = key_now
      ctx.set_nodes(list)
    end
  end

  local drop_window_start = nil
  local function drop(reason)
    local d = inst.stats.dropped
    d[reason] = (d[reason] or 0) + 1
    local now = uv.now()
    -- one line when drops start, then at most a summary every 10 s
    if not drop_window_start or now - drop_window_start >= DROP_LOG_EVERY then
      local parts = {}
      for r, n in pairs(d) do parts[#parts + 1] = r .. "=" .. n end
      table.sort(parts)
      ctx.log("warn", ("dropped gossip packet (%s); dropped so far: %s"):format(reason, table.concat(parts, " ")))
      drop_window_start = now
    end
  end

  local u = ctx.udp()
  local ok, err = u:bind("0.0.0.0", port, { reuseaddr = true })
  if not ok then error(("cannot bind UDP port %d: %s"):format(port, tostring(err)), 0) end
  if broadcast then
    ok, err = u:set_broadcast(true)
    if not ok then error("cannot enable broadcast: " .. tostring(err), 0) end
  else
    if config.interface then
      ok, err = u:set_multicast_interface(config.interface)
      if not ok then error(("interface %s: %s"):format(config.interface, tostring(err)), 0) end
    end
    ok, err = u:set_membership(group, config.interface, "join")
    if not ok then error(("cannot join multicast group %s: %s"):format(group, tostring(err)), 0) end
    ok, err = u:set_multicast_loop(config.multicast_loop ~= false)
    if not ok then error("cannot set multicast loop: " .. tostring(err), 0) end
    ok, err = u:set_multicast_ttl(config.ttl or M.defaults.ttl)
    if not ok then error("cannot set multicast ttl: " .. tostring(err), 0) end
  end

  local last_send_error
  local last_ts = 0
  local function announce()
    if inst.stopped then return end
    -- strictly increasing, so peers never take two of our packets in one ms for a replay
    last_ts = math.max(wall_ms(), last_ts + 1)
    local pkt = M.encode(send_key(), cluster, self_name, last_ts, crypto.random(M.NONCE_LEN))
    u:send(pkt, group, port, guard(function(serr)
      if serr then
        if serr ~= last_send_error then
          last_send_error = serr
          ctx.log("warn", ("cannot send to %s:%d: %s"):format(group, port, tostring(serr)))
          ctx.error(("gossip: cannot send to %s:%d: %s"):format(group, port, tostring(serr)))
        end
      else
        last_send_error = nil
        inst.stats.sent = inst.stats.sent + 1
      end
    end))
  end

  -- a newcomer learns about us at once instead of waiting for our next interval;
  -- replies are coalesced so a burst of newcomers costs one packet
  local reply_pending = false
  local function reply_soon()
    if reply_pending then return end
    reply_pending = true
    ctx.timer(math.random(0, math.min(200, math.floor(interval / 4))), function()
      reply_pending = false
      announce()
    end)
  end

  u:recv_start(guard(function(rerr, data)
    if rerr or not data then return end
    local msg, why
    for _, k in ipairs(accept_keys()) do
      msg, why = M.decode(k, cluster, data)
      if msg or why ~= "bad_mac" then break end
    end
    if not msg then return drop(why) end
    local name = names.full(msg.name)
    if name == self_name then return end
    local now_wall = wall_ms()
    if math.abs(now_wall - msg.ts) > max_skew then return drop("stale") end
    local p = inst.peers[name]
    if p and msg.ts <= p.ts then return drop("replay") end
    inst.stats.accepted = inst.stats.accepted + 1
    local is_new = not p or uv.now() - p.heard > expire
    inst.peers[name] = { heard = uv.now(), ts = msg.ts }
    if is_new then
      ctx.log("info", "discovered " .. name)
      declare()
      reply_soon()
    end
  end))

  -- handed-over peers stay declared (their heard times are from this same process)
  declare()
  announce()
  -- a second early announcement covers a first one lost while peers were joining
  ctx.timer(math.random(50, math.max(50, math.min(500, math.floor(interval / 2)))), announce)
  ctx.every(interval, function()
    announce()
    declare()
  end, math.floor(interval / 5))
end

function M.stop(ctx)
  local inst = instances[ctx]
  instances[ctx] = nil
  if not inst then return nil end
  inst.stopped = true
  return { peers = inst.peers, stats = inst.stats }
end

return M
