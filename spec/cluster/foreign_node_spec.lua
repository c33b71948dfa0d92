-- A node whose data directory belongs to another cluster (same cluster name and cookie)
-- must not disturb a healthy cluster: it is refused, listed under refused_nodes, counted,
-- and logged once; the cluster keeps its master, its term and its green status.
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local function metric(c, i, name)
  local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[i] .. "/metrics" })
  p:wait_exit(5000)
  return tonumber(p.stdout:match("\n" .. name .. " (%S+)"))
end

local function count_lines(p, pattern)
  local k = 0
  for _, l in ipairs(p.lines) do if l.text:match(pattern) then k = k + 1 end end
  return k
end

describe("a node with another cluster's data", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("is refused without costing the cluster its master or raising its term", function()
    c = cluster.new { n = 4, initial = 3 }
    -- node3 and node4 first form a cluster of their own, in a term above the one the
    -- others will start in (each restart is a new election); then node3's data is
    -- wiped, so node4's data names a voter it can never hear from: it campaigns for ever
    for _ = 1, 3 do
      for _, i in ipairs { 3, 4 } do c:start(i, { "--initial-master-nodes", "node3,node4" }) end
      assert.truthy(c:wait_master(10000, { [3] = true, [4] = true }), "node3 and node4 elected no master")
      for _, i in ipairs { 3, 4 } do c.nodes[i]:stop(5000) end
    end
    c.nodes[3], c.nodes[4] = nil, nil
    proc.rmtree(c.dir .. "/data3")
    for i = 1, 3 do c:start(i) end
    local master, term = c:wait_master(10000, { true, true, true })
    assert.truthy(master, "no master among node1-3")
    c:start(4)
    -- the marker: each of node1-3 has heard node4 and refused it
    for i = 1, 3 do
      assert.truthy(proc.wait_until(function()
        local code, j = c:http(i, "GET", "/_nodes")
        if code ~= 200 or #j.refused_nodes ~= 1 then return false end
        local r = j.refused_nodes[1]
        return r.name == c.names[4] and r.cluster_id ~= "" and r.reason:match "another cluster" == nil
          and r.reason:match "belongs to cluster" ~= nil
      end, 10000), "node" .. i .. " does not list node4 under refused_nodes")
    end
    -- node4's own view: the master, which greeted it, is refused the same way (the
    -- others have nothing to say to a node that is not in their cluster)
    assert.truthy(proc.wait_until(function()
      local code, j = c:http(4, "GET", "/_nodes")
      if code ~= 200 then return false end
      for _, r in ipairs(j.refused_nodes) do if r.name == master then return true end end
    end, 10000), "node4 does not list the master as refused")
    -- while node4 keeps talking (its refused messages keep being counted), the cluster
    -- stays green with the same master in the same term
    local mi = c:index_of(master)
    local before = metric(c, mi, "clusterlua_refused_messages_total") or 0
    local polls = 0
    assert.truthy(proc.wait_until(function()
      for i = 1, 3 do
        local h = c:health(i)
        assert.truthy(h, "node" .. i .. " did not answer")
        assert.equal("green", h.status)
        assert.equal(master, h.master)
        assert.equal(term, h.term)
      end
      polls = polls + 1
      return polls >= 10 and (metric(c, mi, "clusterlua_refused_messages_total") or 0) >= before + 5
    end, 20000), ("node4's messages were not refused again within 20 s (%s then %s; node4 log:\n%s)"):format(before, tostring(metric(c, mi, "clusterlua_refused_messages_total")), c.nodes[4]:output()))
    assert.equal(1, metric(c, mi, "clusterlua_refused_nodes"))
    -- logged once per peer, not once per term or per message
    for i = 1, 3 do
      assert.equal(1, count_lines(c.nodes[i], "refusing node4@"), "node" .. i .. " refusal log lines")
    end
  end)
end)
