-- transport.full_mesh_max and transport.idle_close_ms (docs/design.md §5): up to how many
-- members the connections form a mesh, and how long an unneeded connection may stay
-- idle above it. Bad values are refused when the topology loads, the key named.
local topology = require "clusterlua.topology"

describe("topology: transport.full_mesh_max and idle_close_ms", function()
  it("take integers in range and pass them on; absent means the transport's defaults", function()
    local t = assert(topology.from_table { transport = { full_mesh_max = 8, idle_close_ms = 1000 } })
    assert.equal(8, t.transport.full_mesh_max)
    assert.equal(1000, t.transport.idle_close_ms)
    assert(topology.from_table { transport = { full_mesh_max = 2, idle_close_ms = 100 } })
    assert(topology.from_table { transport = { full_mesh_max = 100000, idle_close_ms = 86400000 } })
    local d = assert(topology.from_table { transport = {} })
    assert.is_nil(d.transport.full_mesh_max)
    assert.is_nil(d.transport.idle_close_ms)
  end)

  it("refuse what is out of range or not an integer", function()
    for _, v in ipairs { 0, 1, -1, 2.5, "8", true, 100001 } do
      local t, err, code = topology.from_table { transport = { full_mesh_max = v } }
      assert.is_nil(t, "accepted " .. tostring(v))
      assert.equal("EINVAL", code)
      assert.truthy(err:find("transport.full_mesh_max", 1, true), err)
      assert.truthy(err:find("expected an integer 2 .. 100000", 1, true), err)
    end
    for _, v in ipairs { 0, 99, 2.5, "1000", false, 86400001 } do
      local t, err, code = topology.from_table { transport = { idle_close_ms = v } }
      assert.is_nil(t, "accepted " .. tostring(v))
      assert.equal("EINVAL", code)
      assert.truthy(err:find("transport.idle_close_ms", 1, true), err)
    end
  end)
end)

-- transport.large_timeout_ms (docs/design.md §4): above full_mesh_max, the timeout toward
-- every peer and the election's checks; never below timeout_ms.
describe("topology: transport.large_timeout_ms", function()
  it("takes an integer from timeout_ms up and passes it on; absent means the default (2000)", function()
    local t = assert(topology.from_table { transport = { large_timeout_ms = 3000 } })
    assert.equal(3000, t.transport.large_timeout_ms)
    assert(topology.from_table { transport = { large_timeout_ms = 400 } })
    assert(topology.from_table { transport = { timeout_ms = 1000, large_timeout_ms = 1000 } })
    assert.is_nil(assert(topology.from_table { transport = {} }).transport.large_timeout_ms)
  end)

  it("refuses one below timeout_ms, out of range or not an integer, naming the key and the bound", function()
    for _, c in ipairs {
      { { large_timeout_ms = 399 }, "400 .. 600000" },
      { { timeout_ms = 1000, large_timeout_ms = 999 }, "1000 .. 600000" },
      { { large_timeout_ms = 600001 }, "400 .. 600000" },
      { { large_timeout_ms = 2000.5 }, "400 .. 600000" },
      { { large_timeout_ms = "2000" }, "400 .. 600000" },
    } do
      local t, err, code = topology.from_table { transport = c[1] }
      assert.is_nil(t, "accepted " .. tostring(c[1].large_timeout_ms))
      assert.equal("EINVAL", code)
      assert.truthy(err:find("transport.large_timeout_ms", 1, true), err)
      assert.truthy(err:find("expected an integer " .. c[2], 1, true), err)
    end
  end)
end)

-- transport.large_heartbeat_ms (docs/design.md §4): above full_mesh_max, the beat interval
-- a watcher asks for; at most half of large_timeout_ms (its default, 2000, when not given).
describe("topology: transport.large_heartbeat_ms", function()
  it("takes an integer up to half of large_timeout_ms and passes it on; absent means a quarter of it", function()
    local t = assert(topology.from_table { transport = { large_heartbeat_ms = 1000 } })
    assert.equal(1000, t.transport.large_heartbeat_ms)
    assert(topology.from_table { transport = { large_timeout_ms = 600, large_heartbeat_ms = 300 } })
    assert(topology.from_table { transport = { timeout_ms = 5000, large_heartbeat_ms = 2500 } })
    assert.is_nil(assert(topology.from_table { transport = {} }).transport.large_heartbeat_ms)
  end)

  it("refuses one past half of large_timeout_ms, under 5 or not an integer, naming the key and the bound", function()
    for _, c in ipairs {
      { { large_heartbeat_ms = 1001 }, "5 .. 1000" },
      { { large_timeout_ms = 600, large_heartbeat_ms = 301 }, "5 .. 300" },
      { { timeout_ms = 5000, large_heartbeat_ms = 2501 }, "5 .. 2500" },
      { { large_heartbeat_ms = 4 }, "5 .. 1000" },
      { { large_heartbeat_ms = 500.5 }, "5 .. 1000" },
      { { large_heartbeat_ms = "500" }, "5 .. 1000" },
    } do
      local t, err, code = topology.from_table { transport = c[1] }
      assert.is_nil(t, "accepted " .. tostring(c[1].large_heartbeat_ms))
      assert.equal("EINVAL", code)
      assert.truthy(err:find("transport.large_heartbeat_ms", 1, true), err)
      assert.truthy(err:find("expected an integer " .. c[2], 1, true), err)
    end
  end)
end)
