-- Who persists when (docs/design.md §3, RULE E14), with real processes: voting nodes
-- write the state durably before every acknowledgement; a node outside the voting
-- configuration (here a data node) writes it at most once a second, off its control
-- loop. Killed with kill -9 it may lose the last second; it comes back, asks for the
-- whole state, and holds the master's.
local cjson = require "cjson.safe"
local proc = require "helpers.proc"
local cluster = require "helpers.cluster"

-- writes of the state file so far (the persist histogram's count), from /metrics
local function writes(c, i)
  local code, _, text = c:http(i, "GET", "/metrics")
  if code ~= 200 or not text then return nil end
  return tonumber(text:match "\nclusterlua_persist_seconds_count[^\n]* (%d+)")
end

local function version(c, i)
  local code, j = c:http(i, "GET", "/_cluster/state?filter_path=version")
  if code == 200 and type(j) == "table" then return j.version end
end

describe("lazy persistence (E14)", function()
  it("a data node writes lazily, voters durably; after kill -9 it rejoins with the master's state", function()
    local c = cluster.new { n = 4, initial = 3 }
    finally(function() c:cleanup() end)
    for i = 1, 3 do c:start(i) end
    c:start(4, { "--roles", "data" })
    local master = c:wait_master(15000)
    assert(master, c:outputs())
    local mi = c:index_of(master)
    local voter = mi == 1 and 2 or 1 -- a master-eligible follower: in the configuration of 3
    -- node4 is in the master's state once an exclusion naming it is taken (a node may
    -- follow the master a publication before the master's state lists it)
    assert(proc.wait_until(function()
      return c:http(mi, "POST", "/_cluster/voting_config_exclusions?node_names=node4") == 200
    end, 10000), "node4 never joined the master's state\n" .. c:outputs())
    assert.equal(200, (c:http(mi, "DELETE", "/_cluster/voting_config_exclusions")))
    assert(proc.wait_until(function() return version(c, 4) == version(c, mi) end, 10000))
    local v0, d0 = writes(c, voter), writes(c, 4)
    assert(v0 and d0, "no persist count in /metrics")
    -- 16 publications in a burst: exclude the data node (no reconfiguration), clear
    for _ = 1, 8 do
      local code, _, text = c:http(mi, "POST", "/_cluster/voting_config_exclusions?node_names=node4")
      assert.equal(200, code, text)
      code, _, text = c:http(mi, "DELETE", "/_cluster/voting_config_exclusions")
      assert.equal(200, code, text)
    end
    local want = version(c, mi)
    assert(proc.wait_until(function()
      return version(c, voter) == want and version(c, 4) == want
    end, 10000), "followers did not reach version " .. tostring(want))
    local dv, dd = writes(c, voter) - v0, writes(c, 4) - d0
    print(("# writes during 16 publications: voter %d, data node %d"):format(dv, dd))
    -- the voter: an accept and a commit per publication, each durable before it is acted on
    assert.truthy(dv >= 16, ("voter wrote %d times for 16 publications"):format(dv))
    -- the data node: at most once a second (the burst plus the wait took a few seconds)
    assert.truthy(dd < dv / 2, ("data node wrote %d times, voter %d"):format(dd, dv))
    -- and it does write: the waiting state lands within about a second (the last lazy
    -- write may already be counted in dd when the node is slow, as under ASan, so wait
    -- for at least one since the burst began, not for one more after dd was read)
    assert(proc.wait_until(function() return (writes(c, 4) or 0) > d0 end, 5000), "the lazy write never came")
    -- kill -9 the data node right after a publication, then bring it back
    assert.equal(200, (c:http(mi, "POST", "/_cluster/voting_config_exclusions?node_names=node4")))
    c.nodes[4]:kill "sigkill"
    assert(proc.wait_until(function() return c.nodes[4].exited end, 5000))
    assert.equal(200, (c:http(mi, "DELETE", "/_cluster/voting_config_exclusions")))
    c:start(4, { "--roles", "data" })
    -- (its leaving and its return are publications too: compare with the master's latest)
    assert(proc.wait_until(function()
      local h, v = c:health(4), version(c, 4)
      return h and h.master == master and v and v == version(c, mi)
    end, 15000), "the restarted data node did not catch up\n" .. c:outputs())
    local _, a = c:http(mi, "GET", "/_cluster/state")
    local _, b = c:http(4, "GET", "/_cluster/state")
    assert.equal(a.cluster_uuid, b.cluster_uuid)
    assert.truthy(a.nodes and next(a.nodes))
    assert.equal(cjson.encode(a.nodes), cjson.encode(b.nodes))
  end)
end)
