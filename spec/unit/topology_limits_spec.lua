-- election.max_nodes and election.max_voting_nodes (issue 18): no fixed node cap, a
-- small voting configuration. Bad values are refused when the topology loads, with the
-- key named and what is expected, not by the node at start.
local topology = require "clusterlua.topology"

local function refused(election, key, why)
  local t, err, code = topology.from_table { election = election }
  assert.is_nil(t, "accepted " .. key)
  assert.equal("EINVAL", code)
  assert.truthy(err:find(key, 1, true), err)
  if why then assert.truthy(err:find(why, 1, true), err) end
end

describe("topology: the election's limits", function()
  it("are the C core's (runtime/election/election.h), not a copy that drifted", function()
    local cnode = require "clusterlua.c.node"
    assert.equal(cnode.MAX_NODES_HARD, topology.MAX_NODES_HARD)
    assert.equal(cnode.MAX_NODES_DEFAULT, topology.MAX_NODES_DEFAULT)
    assert.equal(cnode.MAX_VOTING_DEFAULT, topology.MAX_VOTING_DEFAULT)
  end)
end)

describe("topology: election.max_nodes", function()
  it("takes an integer from 1 to the hard limit and passes it on", function()
    local t = assert(topology.from_table { election = { max_nodes = 1000 } })
    assert.equal(1000, t.election.max_nodes)
    assert(topology.from_table { election = { max_nodes = topology.MAX_NODES_HARD } })
    assert.is_nil((assert(topology.from_table { election = {} })).election.max_nodes) -- C's default: 10,000
    assert.is_true(topology.MAX_NODES_DEFAULT >= 10000)
  end)

  it("refuses zero, negatives, fractions, strings and values past the hard limit", function()
    for _, v in ipairs { 0, -5, 2.5, "100", topology.MAX_NODES_HARD + 1, true } do
      refused({ max_nodes = v }, "election.max_nodes", "expected an integer 1 .. " .. topology.MAX_NODES_HARD)
    end
  end)
end)

describe("topology: election.max_voting_nodes", function()
  it("takes an odd integer of at least 3", function()
    for _, v in ipairs { 3, 5, 7, 101 } do
      local t = assert(topology.from_table { election = { max_voting_nodes = v } })
      assert.equal(v, t.election.max_voting_nodes)
    end
    assert.equal(5, topology.MAX_VOTING_DEFAULT)
  end)

  it("refuses even numbers, fewer than 3, fractions and strings, saying why", function()
    for _, v in ipairs { 1, 2, 4, 6, 0, -3, 3.5, "5" } do
      refused({ max_voting_nodes = v }, "election.max_voting_nodes", "expected an odd integer, at least 3")
    end
  end)

  it("refuses a cap above max_nodes", function()
    refused({ max_nodes = 5, max_voting_nodes = 7 }, "election.max_voting_nodes", "7 is above election.max_nodes (5)")
  end)

  it("refuses an initial_master_nodes list longer than the cap (the bootstrap configuration is the list)", function()
    refused({ max_voting_nodes = 3, initial_master_nodes = { "a", "b", "c", "d" } }, "election.initial_master_nodes",
      "4 entries, but at most election.max_voting_nodes (3)")
    refused({ initial_master_nodes = { "a", "b", "c", "d", "e", "f" } }, "election.initial_master_nodes",
      "at most election.max_voting_nodes (5)")
    assert(topology.from_table { election = { max_voting_nodes = 7, initial_master_nodes = { "a", "b", "c", "d", "e", "f" } } })
  end)

  it("refuses an unknown election key, as before", function()
    refused({ max_voters = 3 }, "max_voters")
  end)
end)
