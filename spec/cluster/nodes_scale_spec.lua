-- GET /_nodes, `clusterlua status` and /metrics with 1,000 peers (issue 18, item 8).
-- A real 2-node cluster; node1 also lists 1,000 synthetic peers added through
-- POST /_test/peers (CLUSTERLUA_FAULTS=1 only), which the admin views show as the
-- transport's own: the summary, filters, order, paging, the status command's row cap,
-- and metrics whose series do not grow with the peers. Timings: docs/benchmarks.md
-- (bench/admin_scale.lua); none is asserted here.
local cjson = require "cjson.safe"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"
local uv = require "uv"

-- "name{labels}" of every sample: what a Prometheus server would store as series
local function series(text)
  local s = {}
  for line in text:gmatch "[^\n]+" do
    if line:sub(1, 1) ~= "#" then
      local key = line:match "^(%S+)%s"
      if key then s[#s + 1] = key end
    end
  end
  table.sort(s)
  return s
end

local function metric(text, key)
  for line in text:gmatch "[^\n]+" do
    local k, v = line:match "^(%S+)%s+(%S+)$"
    if k == key then return tonumber(v) end
  end
end

local function node_rows(out)
  local rows = {}
  for line in out:gmatch "[^\n]+" do
    local name = line:match "^((%a+)%d+@%S+)"
    if name then rows[#rows + 1] = { name = name, line = line } end
  end
  return rows
end

describe("admin views with 1,000 peers", function()
  local c
  local function get(path)
    local code, j, text = c:http(1, "GET", path)
    return code, j, text
  end
  local function metrics_text()
    local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[1] .. "/metrics" })
    p:wait_exit(5000)
    return p.stdout
  end
  local before -- the series before the synthetic peers

  setup(function()
    c = cluster.new { n = 2, initial = 1 }
    c:start(1, nil, { CLUSTERLUA_FAULTS = "1" })
    c:start(2)
    assert.truthy(proc.wait_until(function()
      local h = c:health(1)
      return h and h.number_of_nodes == 2 and h.master ~= cjson.null
    end, 15000), "the 2-node cluster did not form")
    -- the keys' fingerprints are computed about 1 s after start (a worker thread): until
    -- then the per-key series say "pending", and the comparison would see that change
    assert.truthy(proc.wait_until(function() return not metrics_text():find('fingerprint="pending"', 1, true) end,
      15000), "the fingerprints were never computed")
    before = series(metrics_text())
    local code, j = c:http(1, "POST", "/_test/peers?count=1000&down=8&configured=2")
    assert.equal(200, code)
    assert.equal(1000, j.count)
  end)
  teardown(function()
    if c then c:cleanup() end
  end)

  it("answers every node with a summary by default, this node first, then by name", function()
    local code, j, text = get("/_nodes")
    assert.equal(200, code)
    assert.equal(1002, #j.nodes)
    local s = j.summary
    assert.equal(1002, s.total)
    assert.same({ up = 992, down = 8, configured = 2, disconnected = 0 }, s.by_status)
    assert.equal(10, s.unhealthy)
    assert.equal(2, s.number_of_nodes) -- the members of the committed state, as in health
    assert.equal(991, s.number_of_connections)
    assert.equal(c:health(1).master, s.master)
    assert.equal(1002, s.matched)
    assert.equal(1002, s.returned)
    assert.equal(c.names[1], j.nodes[1].name)
    assert.is_true(j.nodes[1].self)
    for i = 3, #j.nodes do assert.truthy(j.nodes[i - 1].name < j.nodes[i].name, "not by name at " .. i) end
    for _, k in ipairs { "name", "id", "address", "roles", "connected", "status", "since", "last_heartbeat_ms",
      "rtt_us" } do
      assert.is_not_nil(j.nodes[2][k], "missing " .. k)
    end
    assert.is_table(j.refused_nodes)
    assert.truthy(#text < 400 * 1024, #text .. " bytes")
  end)

  it("filters by status, name and role, and pages with from and size", function()
    local _, j = get("/_nodes?status=unhealthy")
    assert.equal(10, #j.nodes)
    for _, n in ipairs(j.nodes) do assert.are_not.equal("up", n.status) end
    assert.equal(1002, j.summary.total)
    _, j = get("/_nodes?status=down")
    assert.equal(8, #j.nodes)
    -- short names and patterns: the two real nodes
    _, j = get("/_nodes?name=node*")
    assert.equal(2, #j.nodes)
    _, j = get("/_nodes?name=node2,fake0000*")
    assert.equal(11, #j.nodes)
    _, j = get("/_nodes?name=" .. c.names[2]:gsub("@", "%%40"))
    assert.equal(c.names[2], j.nodes[1].name)
    _, j = get("/_nodes?role=master")
    assert.equal(102, #j.nodes) -- both real nodes and every tenth synthetic one
    _, j = get("/_nodes?from=995&size=10")
    assert.equal(7, #j.nodes)
    assert.equal(995, j.summary.from)
    assert.equal(7, j.summary.returned)
    -- sort=status: this node, the unhealthy, then the rest
    _, j = get("/_nodes?sort=status&size=12")
    assert.equal(12, #j.nodes)
    assert.is_true(j.nodes[1].self)
    for i = 2, 11 do assert.are_not.equal("up", j.nodes[i].status) end
    assert.equal("up", j.nodes[12].status)
    -- only the summary, for a monitor
    local code, s = get("/_nodes?size=0&filter_path=summary.by_status,summary.unhealthy")
    assert.equal(200, code)
    assert.same({ summary = { by_status = { up = 992, down = 8, configured = 2, disconnected = 0 }, unhealthy = 10 } }, s)
  end)

  it("refuses a bad query value with 400 naming the parameter", function()
    for q, want in pairs {
      ["size=ten"] = "size: expected a whole number from 0 to 100000, got 'ten'",
      ["from=-1"] = "from: expected a whole number",
      ["size=100001"] = "size: expected a whole number",
      ["status=dead"] = "status: unknown value 'dead'",
      ["sort=age"] = "sort: expected name or status",
      ["name="] = "name: entry 1 is empty",
      ["role=a,,b"] = "role: entry 2 is empty",
      ["name=%ZZ"] = "name: malformed percent-encoding",
      ["name=" .. ("x"):rep(1100)] = "name is longer than 1024 characters",
      ["filter_path=" .. ("a"):rep(5000)] = "filter_path is longer than",
    } do
      local code, j = get("/_nodes?" .. q)
      assert.equal(400, code, q)
      assert.truthy(j and j.error and j.error:find(want, 1, true), q .. ": " .. tostring(j and j.error))
    end
  end)

  it("`clusterlua status`: the summary, then this node, the unhealthy and the rest, at most 50 rows", function()
    local code, out, err = proc.run(proc.bin, { "status", "--admin", c.admin[1] }, { timeout = 10000 })
    assert.equal(0, code, err)
    local first, second = out:match "^([^\n]*)\n([^\n]*)\n"
    assert.matches("^cluster spec: green", first)
    assert.equal("nodes 1002 known: 992 up, 8 down, 2 configured  members 2  connections 991  lua lag",
      second:sub(1, #"nodes 1002 known: 992 up, 8 down, 2 configured  members 2  connections 991  lua lag"))
    local rows = node_rows(out)
    assert.equal(50, #rows, out)
    assert.truthy(rows[1].line:find("(this node)", 1, true), rows[1].line)
    for i = 2, 11 do assert.is_nil(rows[i].line:find(" up ", 1, true), rows[i].line) end
    assert.truthy(rows[12].line:find(" up ", 1, true), rows[12].line)
    assert.truthy(out:find("... and 952 more, all up (--all lists every node", 1, true), out)
  end)

  it("`clusterlua status --all` lists every node; --status and --json", function()
    local code, out, err = proc.run(proc.bin, { "status", "--admin", c.admin[1], "--all" }, { timeout = 10000 })
    assert.equal(0, code, err)
    assert.equal(1002, #node_rows(out))
    code, out, err = proc.run(proc.bin, { "status", "--admin", c.admin[1], "--status", "unhealthy" }, { timeout = 10000 })
    assert.equal(0, code, err)
    assert.equal(10, #node_rows(out))
    assert.truthy(out:find("\n10 matching (status unhealthy)\n", 1, true), out)
    code, out, err = proc.run(proc.bin, { "status", "--admin", c.admin[1], "--json" }, { timeout = 10000 })
    assert.equal(0, code, err)
    local doc = cjson.decode(out)
    assert.equal(1002, #doc.nodes.nodes)
    assert.equal(1002, doc.nodes.summary.total)
    assert.equal("green", doc.health.status)
  end)

  it("has the same metric series with 1,000 more peers, and promtool accepts them", function()
    local text = metrics_text()
    assert.same(before, series(text))
    assert.equal(992, metric(text, 'clusterlua_nodes{status="up"}'))
    assert.equal(8, metric(text, 'clusterlua_nodes{status="down"}'))
    assert.equal(2, metric(text, 'clusterlua_nodes{status="configured"}'))
    assert.equal(2, metric(text, "clusterlua_members"))
    assert.truthy(#before < 200, #before .. " series")
    if uv.fs_stat "/usr/bin/promtool" then
      local check = proc.start("/usr/bin/promtool", { "check", "metrics" }, { stdin = text })
      assert.equal(0, check:wait_exit(10000), check.stdout .. check.stderr)
    else
      pending "promtool is not installed (Debian package prometheus)"
    end
  end)

  it("forgets the synthetic peers with count=0, and refuses bad counts", function()
    local code, j = c:http(1, "POST", "/_test/peers?count=3&down=4")
    assert.equal(400, code)
    assert.truthy(j.error:find("exceeds count", 1, true), j.error)
    code, j = c:http(1, "POST", "/_test/peers?count=lots")
    assert.equal(400, code)
    assert.truthy(j.error:find("count: expected a whole number", 1, true), j.error)
    code = c:http(1, "POST", "/_test/peers?count=0")
    assert.equal(200, code)
    local _, n = get("/_nodes")
    assert.equal(2, #n.nodes)
    assert.equal(2, n.summary.total)
    -- without CLUSTERLUA_FAULTS=1 the route does not exist
    code = c:http(2, "POST", "/_test/peers?count=5")
    assert.equal(404, code)
  end)
end)
