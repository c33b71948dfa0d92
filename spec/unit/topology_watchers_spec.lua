-- transport.watchers (docs/design.md §4): how many peers each node watches. Bad values
-- are refused when the topology loads, the key named with what is expected.
local topology = require "clusterlua.topology"

describe("topology: transport.watchers", function()
  it("takes an integer from 1 to 64 and passes it on; absent means the transport's default (3)", function()
    local t = assert(topology.from_table { transport = { watchers = 5 } })
    assert.equal(5, t.transport.watchers)
    assert(topology.from_table { transport = { watchers = 1 } })
    assert(topology.from_table { transport = { watchers = 64 } })
    local d = assert(topology.from_table { transport = {} })
    assert.is_nil(d.transport.watchers)
  end)

  it("refuses zero, negatives, fractions, strings, booleans and more than 64", function()
    for _, v in ipairs { 0, -1, 2.5, "3", true, 65 } do
      local t, err, code = topology.from_table { transport = { watchers = v } }
      assert.is_nil(t, "accepted " .. tostring(v))
      assert.equal("EINVAL", code)
      assert.truthy(err:find("transport.watchers", 1, true), err)
      assert.truthy(err:find("expected an integer 1 .. 64", 1, true), err)
    end
  end)
end)

-- transport.heartbeat_ms against transport.timeout_ms (docs/design.md §4): an idle watched
-- peer beats every heartbeat, so past half a timeout healthy peers are called down between
-- beats (spec/c/test_transport.c shows it), or a watcher's DOWN is ignored by nodes that
-- heard the peer later.
describe("topology: transport.heartbeat_ms", function()
  it("takes at most half of timeout_ms, each given or by default (200 and 400)", function()
    assert(topology.from_table { transport = { heartbeat_ms = 200 } })
    assert(topology.from_table { transport = { heartbeat_ms = 300, timeout_ms = 600 } })
    -- a heartbeat not given follows a short timeout (at most half of it)
    assert(topology.from_table { transport = { timeout_ms = 200 } })
    assert(topology.from_table { transport = { timeout_ms = 99 } })
    local bad, err = topology.from_table { transport = { timeout_ms = 1 } }
    assert.is_nil(bad)
    assert.truthy(err:find("transport.timeout_ms", 1, true) and err:find("at least 2", 1, true), err)
    for _, tr in ipairs { { heartbeat_ms = 201 }, { heartbeat_ms = 1000, timeout_ms = 400 }, { heartbeat_ms = 100, timeout_ms = 199 } } do
      local t, err, code = topology.from_table { transport = tr }
      assert.is_nil(t, "accepted " .. tostring(tr.heartbeat_ms) .. " / " .. tostring(tr.timeout_ms))
      assert.equal("EINVAL", code)
      assert.truthy(err:find("transport.heartbeat_ms", 1, true), err)
      assert.truthy(err:find("at most half of transport.timeout_ms", 1, true), err)
    end
  end)
end)
