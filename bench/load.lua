-- Message benchmark of `make bench`, loaded by bench/hooks.lua as a module (so the JIT
-- stays on, as for a user's application code). Every node serves:
--   "echo"  returns its argument            (clusterlua.call round trip)
--   "sink"  counts one-way messages          (clusterlua.send throughput)
--   "count" returns that count
-- The node started with BENCH_LOAD=run and BENCH_PEER=<short name> waits for the peer,
-- then prints "RESULT rtt_us median=.. min=.. max=.. n=.." and "RESULT send_rate per_s=..".
local uv = require "uv"
local cl = require "clusterlua"
local scheduler = require "clusterlua.scheduler"

local count, last_t = 0, 0
cl.handle("echo", function(v) return v end)
-- uv.hrtime is CLOCK_MONOTONIC: the same clock in both processes on one machine
cl.handle("sink", function() count = count + 1; last_t = uv.hrtime() end)
cl.handle("count", function() return { count, last_t } end)

local function say(s)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

local function peer_full(short)
  for _, n in ipairs(cl.nodes()) do
    if n:match("^([^@]+)") == short then return n end
  end
end

local function run(peer)
  local rpc_n = tonumber(os.getenv "BENCH_RPC_N") or 20000
  local send_n = tonumber(os.getenv "BENCH_SEND_N") or 200000
  local msg = { op = "ping", n = 1 }
  for _ = 1, 1000 do assert(cl.call(peer, "echo", msg)) end
  local t = {}
  for i = 1, rpc_n do
    local t0 = uv.hrtime()
    local r, err = cl.call(peer, "echo", msg)
    if not r then say("RESULT error rpc " .. tostring(err)) return end
    t[i] = (uv.hrtime() - t0) / 1000
  end
  table.sort(t)
  say(("RESULT rtt_us median=%.1f min=%.1f max=%.1f n=%d"):format(t[math.floor(rpc_n / 2) + 1], t[1], t[rpc_n], rpc_n))

  local c0 = assert(cl.call(peer, "count"))[1]
  local value = { op = "put", key = "k", value = 42 }
  local t0 = uv.hrtime()
  local i, waits = 0, 0
  while i < send_n do
    local ok, err, code = cl.send(peer, "sink", value)
    if ok then
      i = i + 1
    elseif code == "ENOBUFS" then
      waits = waits + 1
      cl.sleep(1)
    else
      say("RESULT error send " .. tostring(err))
      return
    end
  end
  -- counted on receipt: until all arrived, or the count has not moved for 500 ms (the
  -- receiver's event queue is bounded: what overflows it is dropped, and reported here)
  local deadline = uv.hrtime() + 60e9
  local got, t_last, last = 0, uv.hrtime(), -1
  while true do
    -- a count request can itself be dropped by a flooded receiver (it times out): ask again
    local c = cl.call(peer, "count", nil, { timeout = 1000 })
    if c then
      got = c[1] - c0
      -- the clock stops at the receipt of the last message (stamped by the receiver), so
      -- a late poll does not count
      if got ~= last then last, t_last = got, c[2] end
    end
    if got >= send_n or (c and got > 0 and uv.hrtime() - t_last > 500e6) or uv.hrtime() > deadline then break end
    cl.sleep(1)
  end
  local dt = (t_last - t0) / 1e9
  say(("RESULT send_rate per_s=%d n=%d received=%d dropped=%d enobufs_waits=%d"):format(
    math.floor(got / dt), send_n, got, send_n - got, waits))
end

if os.getenv "BENCH_LOAD" == "run" then
  local short = assert(os.getenv "BENCH_PEER", "BENCH_PEER")
  local timer = uv.new_timer()
  timer:start(10, 10, function()
    local peer = peer_full(short)
    if not peer then return end
    timer:stop()
    timer:close()
    scheduler.spawn("bench load", function()
      local ok, err = pcall(run, peer)
      if not ok then say("RESULT error " .. tostring(err)) end
      say "RESULT done"
    end)
  end)
end
