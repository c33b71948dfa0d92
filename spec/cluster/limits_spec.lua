-- election.max_voting_nodes and election.max_nodes (issue 18) reach the election core
-- from the topology file: a capped voting configuration among more master-eligible
-- nodes, and a node past max_nodes refused with the limit and its name in the log.
-- (More than 64 nodes are proven in the C tests, 300 in one process, and in the
-- simulator, up to 1,000; a multi-process spec that large needs the sparse detection
-- and on-demand connections still to come in issue 18.)
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

describe("election.max_voting_nodes from the topology", function()
  local c
  teardown(function()
    if c then c:cleanup() end
  end)

  it("keeps 3 voters among 5 master-eligible nodes, and the voters change one at a time when one dies", function()
    c = cluster.new { n = 5, initial = 3, election = "max_voting_nodes = 3" }
    c:start_all()
    local h
    assert.truthy(proc.wait_until(function()
      h = c:health(1)
      return h and h.number_of_nodes == 5 and h.voting_config and #h.voting_config == 3 and h.master ~= nil
    end, 15000), "no 5-node cluster with 3 voters: " .. require("cjson").encode(h or {}))
    assert.equal(2, h.quorum)
    -- stop a voter that is not the master: the configuration replaces it and stays at 3
    local master = h.master
    local victim
    for _, name in ipairs(h.voting_config) do
      if name ~= master then victim = c:index_of(name) break end
    end
    assert.truthy(victim, "no voter other than the master")
    c.nodes[victim]:kill(9)
    local gone = c.names[victim]
    local ok = proc.wait_until(function()
      h = c:health(c:index_of(master))
      if not (h and h.voting_config and #h.voting_config == 3) then return false end
      for _, name in ipairs(h.voting_config) do if name == gone then return false end end
      return h.number_of_nodes == 4
    end, 15000)
    assert.truthy(ok, "the dead voter was not replaced: " .. require("cjson").encode(h or {}))
  end)
end)

describe("election.max_nodes from the topology", function()
  local c
  teardown(function()
    if c then c:cleanup() end
  end)

  it("refuses the node past the limit, naming the limit and the node", function()
    c = cluster.new { n = 3, initial = 1, election = "max_nodes = 2" }
    c:start_all()
    -- each node admits one peer to its election and refuses the other
    local line
    for i = 1, 3 do
      line = c.nodes[i]:wait_for_line("refusing node (%S+): the cluster has reached election%.max_nodes %(2 nodes", 10000)
      if line then break end
    end
    assert.truthy(line, "no refusal logged: " .. c.nodes[1]:output():sub(-2000))
    local who = line:match "refusing node (%S+):"
    assert.truthy(c:index_of(who), "the refused node is not named: " .. line)
  end)
end)
