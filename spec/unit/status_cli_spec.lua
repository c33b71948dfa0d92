-- `clusterlua status` at 1,000 nodes (issue 18, item 8): a summary first, then this
-- node, the unhealthy nodes and the rest, at most --limit rows unless --all; what it
-- asks GET /_nodes for. Pure: render() and the query, no server (the real endpoint is
-- spec/cluster/nodes_scale_spec.lua).
local status_cli = require "clusterlua.cli.status"

-- n peers and this node, as a node without a summary (an older one) answers: every node
local function cluster(n, down, configured)
  local nodes = { { name = "self@10.9.9.9:4370", id = "selfid", address = "10.9.9.9:4370", roles = { "master" },
    connected = true, status = "up", self = true, last_heartbeat_ms = 0 } }
  for i = 1, n do
    local st = i <= down and "down" or i <= down + configured and "configured" or "up"
    nodes[#nodes + 1] = { name = ("edge%04d@10.0.%d.%d:4370"):format(i, math.floor(i / 256), i % 256), id = "id" .. i,
      address = ("10.0.%d.%d:4370"):format(math.floor(i / 256), i % 256), roles = { "data" }, connected = st == "up",
      status = st, last_heartbeat_ms = i % 90 }
  end
  -- shuffled: the order must come from render, not from the input
  for i = #nodes, 2, -1 do
    local j = (i * 7919) % i + 1
    nodes[i], nodes[j] = nodes[j], nodes[i]
  end
  return { cluster_name = "edge", nodes = nodes, refused_nodes = {} }
end

local HEALTH = { cluster_name = "edge", status = "green", master = "edge0500@10.0.1.244:4370", term = 3, version = 40,
  number_of_nodes = 1001, quorum = 2, voting_config = { "self@10.9.9.9:4370", "edge0500@10.0.1.244:4370", "x" },
  lua_lag_ms = 0, hook_aborts = 0 }

local function lines(s)
  local t = {}
  for l in (s .. "\n"):gmatch "(.-)\n" do t[#t + 1] = l end
  return t
end

local function node_rows(out)
  local rows = {}
  for l in out:gmatch "[^\n]+" do
    local name, st = l:match "^(%S+@%S+)%s.-%s(%a+)%s"
    if name then rows[#rows + 1] = { name = name, status = l:match "%s(up)%s" or l:match "%s(down)%s"
      or l:match "%s(configured)%s" or st } end
  end
  return rows
end

describe("clusterlua status at 1,000 nodes", function()
  it("prints the summary first, then this node, the unhealthy, the rest, at most 50 rows by default", function()
    local out = status_cli.render(cluster(1000, 8, 2), HEALTH, nil, { limit = 50 })
    local l = lines(out)
    assert.matches("^cluster edge: green%s+master edge0500@10%.0%.1%.244:4370%s+term 3", l[1])
    assert.matches("^nodes 1001 known: 991 up, 8 down, 2 configured%s+members 1001%s+connections 990", l[2])
    local rows = node_rows(out)
    assert.equal(50, #rows, out)
    assert.equal("self@10.9.9.9:4370", rows[1].name)
    for i = 2, 11 do assert.are_not.equal("up", rows[i].status, "row " .. i .. ": " .. rows[i].name) end
    assert.equal("edge0001@10.0.0.1:4370", rows[2].name)
    assert.equal("edge0009@10.0.0.9:4370", rows[10].name) -- configured, after the down ones by name
    for i = 12, 50 do assert.equal("up", rows[i].status) end
    assert.equal("edge0011@10.0.0.11:4370", rows[12].name)
    assert.matches("%.%.%. and 951 more, all up %(%-%-all lists every node", out)
  end)

  it("says how many hidden nodes are unhealthy when they do not fit", function()
    local out = status_cli.render(cluster(1000, 80, 0), HEALTH, nil, { limit = 50 })
    assert.equal(50, #node_rows(out))
    assert.matches("and 951 more, 31 of them unhealthy", out)
  end)

  it("lists every node without a limit (--all)", function()
    local out = status_cli.render(cluster(1000, 8, 2), HEALTH, nil, {})
    assert.equal(1001, #node_rows(out))
    assert.is_nil(out:find("more", 1, true))
  end)

  it("takes the counts from the server's summary when it sends one (a page of a larger list)", function()
    local doc = cluster(3, 1, 0)
    doc.summary = { total = 1001, number_of_nodes = 1000, number_of_connections = 990, master = "self@10.9.9.9:4370",
      by_status = { up = 991, down = 8, configured = 2, disconnected = 0 }, unhealthy = 10, matched = 1001,
      from = 0, returned = 4 }
    local out = status_cli.render(doc, nil, nil, { limit = 4 })
    assert.matches("^nodes 1001 known: 991 up, 8 down, 2 configured%s+members 1000%s+connections 990", out)
    assert.matches("and 997 more, 9 of them unhealthy", out)
    -- no health: the master comes from the summary
    assert.matches("self@10%.9%.9%.9:4370 %(this node%)%s+10%.9%.9%.9:4370%s+master%s+up%s+%*", out)
  end)

  it("says what a filter matched", function()
    local doc = cluster(5, 5, 0)
    doc.summary = { total = 1001, by_status = { up = 991, down = 10 }, unhealthy = 10, matched = 10, returned = 5 }
    doc.nodes = { unpack(doc.nodes, 1, 5) }
    local out = status_cli.render(doc, HEALTH, nil, { limit = 5, filtered = "status unhealthy" })
    assert.matches("\n10 matching %(status unhealthy%)\n", out)
    assert.matches("and 5 more %(%-%-all lists every node%)", out)
  end)

  it("asks /_nodes for one page, unhealthy first, with the filters encoded", function()
    local o = assert(status_cli.parse_args { "status", "--admin", "h:1" })
    assert.equal("/_nodes?sort=status&size=50", status_cli.nodes_path(o, true))
    assert.equal("/_nodes", status_cli.nodes_path(o, false)) -- --json: every node, as before
    o = assert(status_cli.parse_args { "status", "--all", "--status", "down,configured", "--name", "edge-*@10.0.0.*",
      "--role", "master" })
    assert.equal("/_nodes?status=down,configured&name=edge-*%4010.0.0.*&role=master&sort=status",
      status_cli.nodes_path(o, true))
    o = assert(status_cli.parse_args { "status", "--limit=7" })
    assert.equal("/_nodes?sort=status&size=7", status_cli.nodes_path(o, true))
  end)

  it("refuses bad options with what was wrong", function()
    for _, case in ipairs {
      { { "status", "--limit", "0" }, "--limit needs a whole number of rows, 1 or more" },
      { { "status", "--limit", "2.5" }, "--limit needs a whole number" },
      { { "status", "--limit" }, "--limit needs a value" },
      { { "status", "--all", "--limit", "3" }, "give --all or --limit, not both" },
      { { "status", "--status=" }, "--status needs a value" },
    } do
      local o, e = status_cli.parse_args(case[1])
      assert.is_nil(o)
      assert.truthy(e:find(case[2], 1, true), e)
    end
  end)
end)
