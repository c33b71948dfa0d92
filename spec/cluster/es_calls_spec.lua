-- The calls an Elasticsearch operator types every day, against a real 3-node cluster:
-- GET /, the _cat tables, /_cluster/state/{metrics} and /_cluster/health's waits
-- (wait_for_status, wait_for_nodes, timeout), with the waiting requests' cap.
local cjson = require "cjson.safe"
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

-- curl with headers: code, body, head
local function curl(c, i, path, headers)
  local args = { "-s", "-m", "70", "-D", "-", "http://" .. c.admin[i] .. path }
  for _, h in ipairs(headers or {}) do
    table.insert(args, 1, h)
    table.insert(args, 1, "-H")
  end
  local p = proc.start("curl", args)
  p:wait_exit(75000)
  local head, body = p.stdout:match "^(.-\r\n\r\n)(.*)$"
  return tonumber((head or ""):match "^HTTP/1%.%d (%d+)"), body, head
end

-- a request on a raw connection, answered later: .status, .body once it arrives
local function hold(hostport, path)
  local host, port = hostport:match "^(.+):(%d+)$"
  local t = uv.new_tcp()
  local r = { data = "", tcp = t }
  t:connect(host, tonumber(port), function(err)
    if err then r.err = err return end
    t:write(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"):format(path, hostport))
    t:read_start(function(e, d)
      if e or not d then
        if not t:is_closing() then t:close() end
        return
      end
      r.data = r.data .. d
      local h, b = r.data:match "^(.-\r\n\r\n)(.*)$"
      local len = h and tonumber(h:lower():match "content%-length: (%d+)")
      if len and #b >= len then
        r.status, r.body = tonumber(h:match "^HTTP/1%.%d (%d+)"), cjson.decode(b)
        t:close()
      end
    end)
  end)
  return r
end

describe("Elasticsearch's everyday calls", function()
  local c
  setup(function()
    c = cluster.new { n = 3, extra = "transport = { heartbeat_ms = 100, timeout_ms = 600 }," }
    c:start_all()
    assert.truthy(c:wait_master(15000), "no master")
    -- every node sees the three members in the committed state
    assert.truthy(proc.wait_until(function()
      for i = 1, 3 do
        local h = c:health(i)
        if not h or h.number_of_nodes ~= 3 then return false end
      end
      return true
    end, 10000))
  end)
  teardown(function()
    if c then c:cleanup() end
  end)

  it("GET / names the node, the cluster and the version; a browser is sent to the console", function()
    local code, j = c:http(2, "GET", "/")
    assert.equal(200, code)
    assert.equal(c.names[2], j.name)
    assert.equal("spec", j.cluster_name)
    assert.truthy(#j.cluster_uuid > 0)
    assert.is_string(j.version.number)
    local code2, body, head = curl(c, 2, "/", { "Accept: text/html,application/xhtml+xml" })
    assert.equal(302, code2, body)
    assert.truthy(head:find("Location: /_console", 1, true))
  end)

  it("/_cat/nodes: the members, the master marked *, ?v, ?h, ?format=json, ?help; rows = number_of_nodes", function()
    local h = c:health(1)
    local code, text = curl(c, 1, "/_cat/nodes?v")
    assert.equal(200, code)
    local lines = {}
    for l in text:gmatch "([^\n]+)\n" do lines[#lines + 1] = l end
    assert.truthy(lines[1]:match "^ip%s+port%s+node%.role%s+master%s+name$", lines[1])
    assert.equal(h.number_of_nodes + 1, #lines)
    local stars = 0
    for k = 2, #lines do
      if lines[k]:match "%s%*%s" then
        stars = stars + 1
        assert.truthy(lines[k]:find(h.master, 1, true), "the * row is the master's")
      end
    end
    assert.equal(1, stars)
    code, text = curl(c, 1, "/_cat/nodes")
    assert.equal(200, code)
    assert.is_nil(text:find("node.role", 1, true), "no header without ?v")
    code, text = curl(c, 1, "/_cat/nodes?h=name,m,voting&format=json")
    assert.equal(200, code)
    local rows = cjson.decode(text)
    assert.equal(h.number_of_nodes, #rows)
    for _, r in ipairs(rows) do
      assert.same({ "master", "name", "voting" }, (function() local k = {} for x in pairs(r) do k[#k + 1] = x end table.sort(k) return k end)())
      assert.equal(r.name == h.master and "*" or "-", r.master)
      assert.equal("yes", r.voting)
    end
    code, text = curl(c, 1, "/_cat/nodes?help")
    assert.equal(200, code)
    assert.truthy(text:find("node.role", 1, true) and text:find("rtt", 1, true))
    code, text = curl(c, 1, "/_cat/nodes?h=name,heap.percent")
    assert.equal(400, code)
    assert.truthy(text:find("unknown column [heap.percent]", 1, true), text)
    code = curl(c, 1, "/_cat/nodes?format=yaml")
    assert.equal(400, code)
  end)

  it("/_cat/master and /_cat/health", function()
    local h = c:health(3)
    local code, text = curl(c, 3, "/_cat/master?v")
    assert.equal(200, code)
    assert.truthy(text:match "^id%s+host%s+ip%s+node\n", text)
    assert.truthy(text:find(h.master, 1, true), text)
    code, text = curl(c, 3, "/_cat/health?v")
    assert.equal(200, code)
    local head, row = text:match "^([^\n]+)\n([^\n]+)\n$"
    assert.truthy(head:match "^epoch%s+timestamp%s+cluster%s+status%s+node%.total", head)
    assert.truthy(row:match "^%d+%s+%d%d:%d%d:%d%d%s+spec%s+green%s+3%s", row)
    code, text = curl(c, 3, "/_cat/health?format=json&h=status,node.total")
    assert.equal(200, code)
    assert.same({ { status = "green", ["node.total"] = "3" } }, cjson.decode(text))
  end)

  it("/_cluster/state/{metrics}, combinable with filter_path", function()
    local code, s = c:http(1, "GET", "/_cluster/state/master_node,version")
    assert.equal(200, code)
    local keys = {}
    for k in pairs(s) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "cluster_name", "cluster_uuid", "master_node", "term", "version" }, keys)
    code, s = c:http(1, "GET", "/_cluster/state/nodes")
    assert.equal(200, code)
    assert.is_table(s.nodes)
    assert.is_nil(s.metadata)
    code, s = c:http(1, "GET", "/_cluster/state/metadata,nodes?filter_path=metadata.cluster_coordination.last_committed_config")
    assert.equal(200, code)
    assert.same({ "metadata" }, (function() local k = {} for x in pairs(s) do k[#k + 1] = x end return k end)())
    assert.equal(3, #s.metadata.cluster_coordination.last_committed_config)
    code, s = c:http(1, "GET", "/_cluster/state/_all")
    assert.equal(200, code)
    assert.truthy(s.nodes and s.metadata and s.master_node and s.version)
    code, s = c:http(1, "GET", "/_cluster/state/routing_table")
    assert.equal(400, code)
    assert.truthy(s.error:find("unknown cluster state metric [routing_table]", 1, true))
    code = c:http(1, "GET", "/_cluster/state/version/someindex")
    assert.equal(400, code)
  end)

  it("/_cluster/health refuses bad waits with 400: a status, a node count, a timeout past 60 s", function()
    for _, q in ipairs { "wait_for_status=purple", "wait_for_nodes=abc", "wait_for_nodes=>=x", "timeout=5",
      "timeout=61s", "timeout=2m" } do
      local code, j = c:http(1, "GET", "/_cluster/health?" .. q)
      assert.equal(400, code, q)
      assert.is_string(j.error)
    end
    local code, j = c:http(1, "GET", "/_cluster/health?wait_for_status=green&timeout=2s")
    assert.equal(200, code)
    assert.is_false(j.timed_out)
    code, j = c:http(1, "GET", "/_cluster/health?wait_for_nodes=%3E%3D3&timeout=1s")
    assert.equal(200, code)
    assert.is_false(j.timed_out)
  end)

  it("waits: 408 with timed_out on timeout, and returns early when the status or node count is reached", function()
    local h = c:health(1)
    local mi = c:index_of(h.master)
    local victim = mi == 3 and 2 or 3
    local watch = 6 - mi - victim -- neither the master nor the victim
    c.nodes[victim]:kill "sigkill"
    assert.truthy(proc.wait_until(function()
      local x = c:health(watch)
      return x and x.number_of_nodes == 2
    end, 10000), "the master removed the dead node")
    local code, j = c:http(watch, "GET", "/_cluster/health")
    assert.equal("yellow", j.status)
    -- timeout: answered after the timeout, not at once, with 408 and timed_out
    local t0 = proc.now()
    local code2, body = curl(c, watch, "/_cluster/health?wait_for_status=green&timeout=1500ms")
    local took = proc.now() - t0
    assert.equal(408, code2, body)
    local jb = cjson.decode(body)
    assert.is_true(jb.timed_out)
    assert.equal("yellow", jb.status)
    assert.is_true(took >= 1400, "answered after " .. took .. " ms")
    code, j = c:http(watch, "GET", "/_cluster/health?wait_for_nodes=3&timeout=300ms")
    assert.equal(408, code)
    -- early return: both waits are parked, the node comes back, they answer 200 well
    -- before their timeout
    local g = hold(c.admin[watch], "/_cluster/health?wait_for_status=green&timeout=50s")
    local n3 = hold(c.admin[watch], "/_cluster/health?wait_for_nodes=%3E%3D3&timeout=50s")
    assert.truthy(proc.wait_until(function()
      local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[watch] .. "/metrics" })
      p:wait_exit(5000)
      return p.stdout:find("\nclusterlua_health_waiting 2\n", 1, true) ~= nil
    end, 5000), "both requests parked")
    assert.is_nil(g.status)
    t0 = proc.now()
    c:start(victim)
    assert.truthy(proc.wait_until(function() return g.status and n3.status end, 30000), "answered when the node came back")
    assert.equal(200, g.status)
    assert.is_false(g.body.timed_out)
    assert.equal("green", g.body.status)
    assert.equal(200, n3.status)
    assert.equal(3, n3.body.number_of_nodes)
    assert.is_true(proc.now() - t0 < 30000)
  end)

  it("caps waiting requests at half the connection table (429 past it), without slowing heartbeats", function()
    local held = {}
    for k = 1, 32 do held[k] = hold(c.admin[1], "/_cluster/health?wait_for_nodes=9&timeout=4s") end
    assert.truthy(proc.wait_until(function()
      local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[1] .. "/metrics" })
      p:wait_exit(5000)
      return p.stdout:find("\nclusterlua_health_waiting 32\n", 1, true) ~= nil
    end, 5000), "32 requests parked")
    local t0 = proc.now()
    local code, j = c:http(1, "GET", "/_cluster/health?wait_for_nodes=9&timeout=4s")
    assert.equal(429, code)
    assert.truthy(j.error:find("too many waiting", 1, true))
    assert.is_true(proc.now() - t0 < 2000, "429 at once")
    -- other requests answer, and the peers' heartbeats are fresh while they wait
    local marks = {}
    for i = 1, 3 do marks[i] = #c.nodes[i].lines end
    local code2, nodes = c:http(1, "GET", "/_nodes")
    assert.equal(200, code2)
    for _, n in ipairs(nodes.nodes) do
      if not n.self then
        assert.is_true(n.connected, n.name)
        assert.is_true(n.last_heartbeat_ms < 600, n.name .. ": last heartbeat " .. tostring(n.last_heartbeat_ms) .. " ms ago")
      end
    end
    assert.truthy(proc.wait_until(function()
      for _, r in ipairs(held) do if not r.status then return false end end
      return true
    end, 10000), "every waiting request answered")
    for _, r in ipairs(held) do
      assert.equal(408, r.status)
      assert.is_true(r.body.timed_out)
    end
    for i = 1, 3 do assert.is_nil(c.nodes[i]:find_line("node_down", nil, marks[i] + 1)) end
  end)

  it("a waiting request whose client hangs up gives its place back at once, not at its timeout", function()
    local function waiting()
      local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[1] .. "/metrics" })
      p:wait_exit(5000)
      return tonumber(p.stdout:match "\nclusterlua_health_waiting (%d+)\n")
    end
    local held = {}
    for k = 1, 32 do held[k] = hold(c.admin[1], "/_cluster/health?wait_for_nodes=9&timeout=50s") end
    assert.truthy(proc.wait_until(function() return waiting() == 32 end, 5000), "32 requests parked")
    for _, r in ipairs(held) do r.tcp:shutdown(function() end) end -- the clients give up
    assert.truthy(proc.wait_until(function() return waiting() == 0 end, 3000), "places still held")
    local code = c:http(1, "GET", "/_cluster/health?wait_for_nodes=%3E%3D1&timeout=1s")
    assert.equal(200, code)
    for _, r in ipairs(held) do if not r.tcp:is_closing() then r.tcp:close() end end
  end)
end)
