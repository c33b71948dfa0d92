-- The admin views at 1,000 nodes (issue 18, item 8): how long GET /_nodes (every node,
-- one page, the summary alone), GET /metrics and `clusterlua status` take when a node
-- knows N peers. One real node started with CLUSTERLUA_FAULTS=1 lists N synthetic
-- peers (POST /_test/peers: 1% down, 2 configured), as the transport would list real
-- ones; the requests go over loopback HTTP from this process (a raw socket, so the
-- time is the node's and the wire's, not curl's start-up). `clusterlua status` is timed
-- as a whole process, start-up included, which is what an operator waits for.
--
--   build/clusterlua bench/admin_scale.lua [N ...]     (default 1000 10000; 7 trials)
local uv = require "uv"

local SCRIPT = debug.getinfo(1, "S").source:sub(2)
local ROOT = SCRIPT:match("^(.*)/bench/admin_scale%.lua$") or "."
package.path = ROOT .. "/spec/?.lua;" .. package.path
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local SIZES = {}
for i = 1, #arg do SIZES[#SIZES + 1] = assert(tonumber(arg[i]), "usage: admin_scale.lua [N ...]") end
if #SIZES == 0 then SIZES = { 1000, 10000 } end
local TRIALS = 7

-- one GET over a fresh connection: ms from connect to the last byte, and the body size
local function get(addr, path)
  local host, port = addr:match "^(.*):(%d+)$"
  local done, t0, bytes, buf = false, uv.hrtime(), 0, {}
  local tcp = uv.new_tcp()
  tcp:connect(host, tonumber(port), function(err)
    assert(not err, err)
    tcp:write(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"):format(path, addr))
    tcp:read_start(function(rerr, data)
      assert(not rerr, rerr)
      if data then
        bytes = bytes + #data
        if #buf < 1 then buf[1] = data:sub(1, 12) end
      else
        done = true
        tcp:close()
      end
    end)
  end)
  assert(proc.wait_until(function() return done end, 30000), "no answer to " .. path)
  assert(buf[1]:match "^HTTP/1%.1 200", path .. ": " .. tostring(buf[1]))
  return (uv.hrtime() - t0) / 1e6, bytes
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)], t[1], t[#t]
end

local function row(what, n, times, bytes)
  local med, lo, hi = median(times)
  print(("| %s | %d | %.2f ms | %.2f – %.2f ms | %s |"):format(what, n, med, lo, hi,
    not bytes and "—" or bytes < 10240 and ("%d B"):format(bytes) or ("%.0f KB"):format(bytes / 1024)))
end

do
  local c = cluster.new { n = 1 }
  c:start(1, nil, { CLUSTERLUA_FAULTS = "1" })
  assert(proc.wait_until(function()
    local h = c:health(1)
    return h and h.status == "green"
  end, 15000), "the node did not elect itself")
  print("| request | peers | median | range (min – max) | answer |")
  print("|---|---|---|---|---|")
  for _, n in ipairs(SIZES) do
    local code = c:http(1, "POST", ("/_test/peers?count=%d&down=%d&configured=2"):format(n, math.floor(n / 100)))
    assert(code == 200, "POST /_test/peers answered " .. tostring(code))
    for _, q in ipairs {
      { "GET /_nodes (every node)", "/_nodes" },
      { "GET /_nodes?sort=status&size=50 (what status asks)", "/_nodes?sort=status&size=50" },
      { "GET /_nodes?size=0&filter_path=summary", "/_nodes?size=0&filter_path=summary" },
      { "GET /_nodes?status=unhealthy", "/_nodes?status=unhealthy" },
      { "GET /metrics", "/metrics" },
    } do
      local times, bytes = {}, nil
      get(c.admin[1], q[2]) -- warm-up
      for i = 1, TRIALS do times[i], bytes = get(c.admin[1], q[2]) end
      row(q[1], n, times, bytes)
    end
    for _, args in ipairs { {}, { "--all" } } do
      local times = {}
      for i = 1, TRIALS do
        local t0 = uv.hrtime()
        local rc = proc.run(proc.bin, { "status", "--admin", c.admin[1], unpack(args) }, { timeout = 30000 })
        times[i] = (uv.hrtime() - t0) / 1e6
        assert(rc == 0, "clusterlua status exited " .. tostring(rc))
      end
      row("`clusterlua status" .. (args[1] and " " .. args[1] or "") .. "` (whole process)", n, times)
    end
  end
  c:cleanup()
end
