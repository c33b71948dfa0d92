-- A hostile client of a node's cluster port (run by hostile_spec with build/clusterlua):
--   hostile.lua HOST PORT MODE COUNT SECONDS
-- MODE silent:  COUNT connections that send nothing
--      slow:    COUNT connections that send one random byte a second
--      flood:   COUNT connections opened at once, each sending 64 random bytes
--      garbage: connect, send 1..512 random bytes, wait for the close, again, COUNT at a time
--      slowloris: COUNT connections to an HTTP port at once, then COUNT more a second
--               (a few every 5 ms), every other one sending nothing and the rest a
--               request's headers a byte every 500 ms, never finishing them. Prints
--               "hostile slowloris: ready" once the first COUNT have been opened.
-- Runs SECONDS, then prints "hostile MODE: opened N, closed_by_peer N, errors N,
-- max_open N, longest_open_ms N" and exits.
local uv = require "uv"
local host, port, mode = arg[1], tonumber(arg[2]), arg[3]
local count, seconds = tonumber(arg[4]), tonumber(arg[5])
math.randomseed(tonumber(os.getenv "RELI_SEED" or "") or uv.hrtime() % 1e9)

local st = { opened = 0, closed = 0, errors = 0, open = 0, max_open = 0, longest = 0 }
local stopping = false
local function rnd(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

local function one(on_closed)
  local tcp = uv.new_tcp()
  local t0 = uv.now()
  local timer
  local function finish(by_peer)
    if tcp:is_closing() then return end
    if by_peer then st.closed = st.closed + 1 end
    st.open = st.open - 1
    local life = uv.now() - t0
    if life > st.longest then st.longest = life end
    if timer and not timer:is_closing() then timer:close() end
    tcp:close()
    if on_closed and not stopping then on_closed() end
  end
  st.open = st.open + 1
  if st.open > st.max_open then st.max_open = st.open end
  tcp:connect(host, port, function(err)
    if err then
      st.errors = st.errors + 1
      return finish(false)
    end
    st.opened = st.opened + 1
    tcp:read_start(function(rerr, data)
      if rerr or not data then finish(true) end
    end)
    if mode == "slow" then
      timer = uv.new_timer()
      timer:start(0, 1000, function() if not tcp:is_closing() then tcp:write(rnd(1), function() end) end end)
    elseif mode == "flood" then
      tcp:write(rnd(64), function() end)
    elseif mode == "garbage" then
      tcp:write(rnd(math.random(1, 512)), function() end)
    elseif mode == "slowloris" then
      if st.opened == count then
        print "hostile slowloris: ready"
        io.stdout:flush()
      end
      if st.opened % 2 == 0 then
        tcp:write("GET /_cluster/health HTTP/1.1\r\nHost: x\r\nX-Slow: ", function() end)
        timer = uv.new_timer()
        timer:start(500, 500, function() if not tcp:is_closing() then tcp:write("a", function() end) end end)
      end
    end
  end)
  return tcp
end

for _ = 1, count do
  if mode == "garbage" then
    local function again() one(again) end
    one(again)
  else
    one()
  end
end

if mode == "slowloris" then
  -- spread evenly: a burst would turn the server's whole table over at once
  local per_tick = math.max(1, math.floor(count / 200))
  uv.new_timer():start(5, 5, function()
    if stopping then return end
    for _ = 1, per_tick do one() end
  end)
end

local t = uv.new_timer()
t:start(seconds * 1000, 0, function()
  stopping = true
  print(("hostile %s: opened %d, closed_by_peer %d, errors %d, max_open %d, longest_open_ms %d"):format(mode,
    st.opened, st.closed, st.errors, st.max_open, st.longest))
  io.stdout:flush()
  os.exit(0)
end)
