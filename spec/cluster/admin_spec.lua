-- The admin endpoint of a real 3-node cluster, through real HTTP requests.
local cjson = require "cjson.safe"
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

describe("admin endpoint", function()
  local c
  setup(function()
    c = cluster.new { n = 3 }
    c:start_all()
    assert.truthy(c:wait_master(10000), "no master")
    -- and every node's committed state lists the three members (number_of_nodes)
    assert.truthy(proc.wait_until(function()
      for i = 1, 3 do
        local h = c:health(i)
        if not h or h.number_of_nodes ~= 3 then return false end
      end
      return true
    end, 10000), "the committed state never listed three members")
  end)
  teardown(function()
    if c then c:cleanup() end
  end)

  it("answers /_cluster/health with every documented field", function()
    local code, h = c:http(2, "GET", "/_cluster/health")
    assert.equal(200, code)
    for _, k in ipairs { "cluster_name", "status", "master", "term", "version", "number_of_nodes",
      "number_of_connections", "number_of_master_eligible_nodes", "voting_config", "quorum", "lua_lag_ms", "hook_aborts" } do
      assert.is_not_nil(h[k], "missing " .. k)
    end
    assert.equal("green", h.status)
    assert.equal(3, h.number_of_nodes)
    assert.equal(2, h.number_of_connections) -- the two peers (this node is not counted)
    assert.equal(3, h.number_of_master_eligible_nodes)
    assert.equal(2, h.quorum)
    assert.truthy(h.master:match "^node%d@127%.0%.0%.1:%d+$")
  end)

  it("answers /_nodes with name, address, roles, connected, since, last heartbeat and rtt", function()
    local code, j = c:http(1, "GET", "/_nodes")
    assert.equal(200, code)
    assert.equal(3, #j.nodes)
    local since = {}
    for _, n in ipairs(j.nodes) do
      for _, k in ipairs { "name", "address", "roles", "connected", "since", "last_heartbeat_ms", "rtt_us" } do
        assert.is_not_nil(n[k], "missing " .. k)
      end
      assert.is_true(n.connected)
      since[n.name] = n.since
    end
    -- this node first, and the summary every answer leads with (issue 18)
    assert.is_true(j.nodes[1].self)
    assert.same({ up = 3, down = 0, configured = 0, disconnected = 0 }, j.summary.by_status)
    assert.equal(3, j.summary.total)
    assert.equal(3, j.summary.number_of_nodes)
    assert.equal(2, j.summary.number_of_connections)
    assert.equal(0, j.summary.unhealthy)
    -- marker: a heartbeat from every peer received after the first answer, on the same
    -- connections (last_heartbeat_ms is its age)
    local t0, j2 = uv.hrtime(), nil
    assert.truthy(proc.wait_until(function()
      local _, j = c:http(1, "GET", "/_nodes")
      if type(j) ~= "table" or type(j.nodes) ~= "table" then return false end
      local age_max = (uv.hrtime() - t0) / 1e6
      for _, n in ipairs(j.nodes) do
        if n.self ~= true and not (type(n.last_heartbeat_ms) == "number" and n.last_heartbeat_ms < age_max) then
          return false
        end
      end
      j2 = j
      return true
    end, 10000), "no fresh heartbeat from every peer")
    for _, n in ipairs(j2.nodes) do assert.equal(since[n.name], n.since, "since moved without a reconnect") end
  end)

  it("serves the cluster state in Elasticsearch's layout, with filter_path", function()
    local code, s = c:http(1, "GET", "/_cluster/state")
    assert.equal(200, code)
    assert.equal("spec", s.cluster_name)
    assert.truthy(#s.cluster_uuid > 0)
    assert.truthy(s.nodes[s.master_node], "master_node is not a node id")
    local coord = s.metadata.cluster_coordination
    assert.equal(3, #coord.last_committed_config)
    code, s = c:http(1, "GET", "/_cluster/state?filter_path=metadata.cluster_coordination.voting_config_excluding_deferred")
    assert.equal(200, code)
    assert.same({ "metadata" }, (function() local k = {} for x in pairs(s) do k[#k + 1] = x end return k end)())
    assert.equal(3, #s.metadata.cluster_coordination.voting_config_excluding_deferred)
    code, s = c:http(1, "GET", "/_cluster/state?filter_path=nodes.*.name,version")
    assert.equal(200, code)
    assert.is_number(s.version)
    local names = 0
    for _, n in pairs(s.nodes) do
      assert.is_string(n.name)
      assert.is_nil(n.address)
      names = names + 1
    end
    assert.equal(3, names)
    code, s = c:http(1, "GET", "/_cluster/state?filter_path=no.such.path")
    assert.equal(200, code)
    assert.same({}, s)
  end)

  -- these used to answer 500, or be ignored and answer the whole state
  it("refuses a filter_path it cannot apply with a 400 that says why", function()
    local deep = "metadata" .. (".x"):rep(40)
    local cases = {
      { deep, "has more than 32 dotted parts" },
      { ("x"):rep(5000), "filter_path is longer than 4096 characters" },
      { ",,,", "names no path (only commas, spaces or '-')" },
      { "%2C%20%2C", "names no path" },
      { ("a,"):rep(65), "filter_path has more than 64 paths" },
      { "nodes%zz", "filter_path: malformed percent-encoding" },
    }
    for _, case in ipairs(cases) do
      local code, j = c:http(1, "GET", "/_cluster/state?filter_path=" .. case[1])
      assert.equal(400, code, case[1]:sub(1, 60))
      assert.truthy(j and j.error and j.error:find(case[2], 1, true), ("expected %q in %s"):format(case[2],
        j and j.error or "no JSON"))
    end
    -- a long filter under the bound is applied, not ignored
    local code, s = c:http(1, "GET", "/_cluster/state?filter_path=version," .. ("x"):rep(3000))
    assert.equal(200, code)
    assert.is_number(s.version)
    assert.is_nil(s.nodes)
  end)

  it("excludes by node_ids as by node_names (Elasticsearch's two forms)", function()
    local code, s = c:http(1, "GET", "/_cluster/state")
    assert.equal(200, code)
    local victim
    for id in pairs(s.nodes) do
      if id ~= s.master_node then victim = id break end
    end
    local j
    code, j = c:http(1, "POST", "/_cluster/voting_config_exclusions?node_ids=" .. victim .. "&node_names=node1")
    assert.equal(400, code)
    assert.truthy(j.error:find("not both", 1, true), j.error)
    code, j = c:http(1, "POST", "/_cluster/voting_config_exclusions?node_ids=0123456789abcdef")
    assert.equal(400, code)
    assert.truthy(j.error:find('ENOTFOUND: exclusion "0123456789abcdef" matches no node', 1, true), j.error)
    code, j = c:http(1, "POST", "/_cluster/voting_config_exclusions?node_ids=,")
    assert.equal(400, code)
    assert.truthy(j.error:find("node_names or node_ids is required", 1, true), j.error)
    code, j = c:http(1, "POST", "/_cluster/voting_config_exclusions?node_ids=" .. victim)
    assert.equal(200, code, cjson.encode(j))
    assert.is_true(j.acknowledged)
    code, s = c:http(1, "GET", "/_cluster/state?filter_path=metadata.cluster_coordination")
    local coord = s.metadata.cluster_coordination
    assert.equal(victim, coord.voting_config_exclusions[1].node_id)
    for _, id in ipairs(coord.last_committed_config) do assert.are_not.equal(victim, id) end
    code = c:http(1, "DELETE", "/_cluster/voting_config_exclusions")
    assert.equal(200, code)
    -- the configuration grows back to the three nodes before the next case
    assert.truthy(proc.wait_until(function()
      local h = c:health(1)
      return h and #h.voting_config == 3 and h.status == "green"
    end, 10000), "the voting configuration did not grow back to 3")
  end)

  it("refuses bad requests with JSON errors: 404, 405, 400, 413", function()
    local code, j = c:http(1, "GET", "/nope")
    assert.equal(404, code)
    assert.is_string(j.error)
    code, j = c:http(1, "PUT", "/_cluster/health")
    assert.equal(405, code)
    assert.is_string(j.error)
    code, j = c:http(1, "POST", "/_cluster/voting_config_exclusions")
    assert.equal(400, code)
    assert.truthy(j.error:find("node_names", 1, true))
    code, j = c:http(1, "DELETE", "/_cluster/voting_config_exclusions?wait_for_removal=maybe")
    assert.equal(400, code)
    code, j = c:http(1, "POST", "/_cluster/voting_config_exclusions?node_names=nosuchnode")
    assert.equal(400, code) -- the client's mistake, not the cluster's
    assert.truthy(j.error:find('ENOTFOUND: exclusion "nosuchnode" matches no node of the cluster', 1, true), j.error)
    local big = ("x"):rep(2 * 1024 * 1024)
    local path = c.dir .. "/big"
    cluster.write(path, big)
    local p = proc.start("curl", { "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
      "--data-binary", "@" .. path, "http://" .. c.admin[1] .. "/_reload" })
    p:wait_exit(8000)
    assert.equal("413", p.stdout)
  end)

  it("reloads through POST /_reload", function()
    local code, j = c:http(1, "POST", "/_reload")
    assert.equal(200, code, cjson.encode(j))
    assert.is_table(j.reloaded)
    local topo = io.open(c.topology):read "*a"
    cluster.write(c.topology, "return {")
    code, j = c:http(1, "POST", "/_reload")
    assert.equal(400, code)
    assert.truthy(j.error:find("topology.lua:1", 1, true), j.error)
    cluster.write(c.topology, topo)
  end)

  it("exports Prometheus metrics that promtool accepts", function()
    local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[1] .. "/metrics" })
    p:wait_exit(5000)
    local text = p.stdout
    for _, m in ipairs { "clusterlua_nodes_up", "clusterlua_term", "clusterlua_state_version", "clusterlua_is_master",
      "clusterlua_heartbeat_rtt_seconds_bucket", "clusterlua_persist_seconds_bucket",
      "clusterlua_frames_in_total", "clusterlua_bytes_out_total", "clusterlua_handshake_failures_total",
      "clusterlua_hook_aborts_total", "clusterlua_dropped_events_total", "clusterlua_lua_lag_seconds",
      'clusterlua_data_messages_total{direction="out"}', "clusterlua_data_connections_total" } do
      assert.truthy(text:find(m, 1, true), "missing metric " .. m)
    end
    if uv.fs_stat "/usr/bin/promtool" then
      local check = proc.start("/usr/bin/promtool", { "check", "metrics" }, { stdin = text })
      local code = check:wait_exit(10000)
      assert.equal(0, code, check.stdout .. check.stderr)
    else
      pending "promtool is not installed (Debian package prometheus)"
    end
  end)

  it("prints the cluster with `clusterlua status`, as a table and as JSON", function()
    local p = proc.start(proc.bin, { "status", "--admin", c.admin[1] })
    assert.equal(0, p:wait_exit(5000), p.stderr)
    for i = 1, 3 do assert.truthy(p.stdout:find(c.names[i], 1, true)) end
    assert.truthy(p.stdout:find("green", 1, true))
    p = proc.start(proc.bin, { "status", "--admin", c.admin[1], "--json" })
    assert.equal(0, p:wait_exit(5000))
    assert.is_table(cjson.decode(p.stdout))
    p = proc.start(proc.bin, { "status" }, { env = { CLUSTERLUA_ADMIN = "" } })
    assert.equal(2, p:wait_exit(5000))
  end)

  -- the docs promise both orders; after a failover the configuration keeps its order,
  -- so the old master used to stay first
  it("lists the master first in voting_config, and this node then down nodes first in `status`", function()
    local p = proc.start(proc.bin, { "status", "--admin", c.admin[3] })
    assert.equal(0, p:wait_exit(5000), p.stderr)
    local rows = {}
    for line in p.stdout:gmatch "[^\n]+" do
      local name = line:match "^(node%d@%S+)"
      if name then rows[#rows + 1] = name end
    end
    assert.same({ c.names[3], c.names[1], c.names[2] }, rows, p.stdout)
    local old = c:index_of((c:wait_master(10000)))
    c.nodes[old]:kill "sigkill"
    assert.truthy(c.nodes[old]:wait_exit(5000))
    local alive = {}
    for i = 1, 3 do if i ~= old then alive[i] = true end end
    local master = c:wait_master(15000, alive)
    assert.truthy(master, "no new master")
    for i in pairs(alive) do
      local h = c:health(i)
      assert.equal(3, #h.voting_config)
      assert.equal(master, h.voting_config[1], "node" .. i .. ": " .. cjson.encode(h.voting_config))
    end
    local ask = next(alive)
    p = proc.start(proc.bin, { "status", "--admin", c.admin[ask] })
    assert.equal(0, p:wait_exit(5000), p.stderr)
    rows = {}
    for line in p.stdout:gmatch "[^\n]+" do
      local name = line:match "^(node%d@%S+)"
      if name then rows[#rows + 1] = name .. " " .. (line:find(" down ", 1, true) and "down" or "up") end
    end
    local other
    for i in pairs(alive) do if i ~= ask then other = i end end
    assert.same({ c.names[ask] .. " up", c.names[old] .. " down", c.names[other] .. " up" }, rows, p.stdout)
    c:start(old)
    assert.truthy(proc.wait_until(function()
      local h = c:health(old)
      return h and h.status == "green" and h.number_of_nodes == 3
    end, 15000), "the restarted node did not rejoin")
  end)

  it("needs a token to bind off loopback", function()
    local p = proc.start(proc.bin, { "--name", "x@127.0.0.1:" .. cluster.free_port(), "--cookie", "c", "--admin",
      "0.0.0.0:" .. cluster.free_port(), "--data", c.dir .. "/datax", c.topology })
    assert.are_not.equal(0, p:wait_exit(5000))
    assert.truthy(p.stderr:find("token", 1, true), p.stderr)
  end)

  -- an empty token file used to turn authentication off; a readable one leaks the token
  it("refuses an empty, whitespace-only or group-readable --admin-token-file before creating anything", function()
    local cases = {
      { "", 384, "is empty or holds only whitespace" },
      { " \n\t\n", 384, "is empty or holds only whitespace" },
      { "s3cret\n", 416, "is readable by group or others (mode 640); chmod 600 it" },
      { "s3cret\n", 420, "is readable by group or others (mode 644); chmod 600 it" },
    }
    for i, case in ipairs(cases) do
      local path = c.dir .. "/token" .. i
      cluster.write(path, case[1])
      assert(uv.fs_chmod(path, case[2]))
      local data = c.dir .. "/data-token" .. i
      for _, admin in ipairs { "127.0.0.1:", "0.0.0.0:" } do
        local p = proc.start(proc.bin, { "--name", "x@127.0.0.1:" .. cluster.free_port(), "--cookie", "c", "--admin",
          admin .. cluster.free_port(), "--admin-token-file", path, "--data", data, c.topology })
        assert.equal(2, p:wait_exit(5000), p.stderr)
        local want = "--admin-token-file: " .. path .. " " .. case[3]
        assert.truthy(p.stderr:find(want, 1, true), ("expected %q in: %s"):format(want, p.stderr))
        assert.is_nil(p.stderr:find("requires a token", 1, true), p.stderr)
        assert.is_nil(uv.fs_stat(data), "the data directory was created before the refusal")
      end
    end
  end)
end)
