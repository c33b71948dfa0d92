-- What the logs say, and how often: a failing DNS source is one rate-limited line per
-- failure, transport lines carry a tag that names the transport when several
-- topologies share it, and the even-number warning appears only when it is true.
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local function esc(s) return (s:gsub("%p", "%%%0")) end

local function count(p, pattern)
  local n = 0
  for _, l in ipairs(p.lines) do
    if l.text:find(pattern) then n = n + 1 end
  end
  return n
end

describe("logs", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("log a failing DNS lookup once per failure, rate-limited per topology; tag transport lines [transport]",
    function()
      -- nothing listens on this port: every lookup fails at once
      local dead = proc.free_port("udp")
      local function dns_topo(name)
        return ([[%s = { strategy = "dns", config = { query = "nodes.cluster.test", node_basename = "app",
          interval = 100, timeout = 50, resolver = "127.0.0.1:%d" } },]]):format(name, dead)
      end
      c = cluster.new {
        n = 2,
        topologies = "{ " .. dns_topo("dns_a") .. dns_topo("dns_b") ..
          "peers = { strategy = \"static\", config = { hosts = { NODES } } } }",
      }
      -- the static topology lists both nodes
      local f = assert(io.open(c.topology))
      local src = f:read "*a"
      f:close()
      proc.write(c.topology, (src:gsub("NODES", ("%q, %q"):format(c.names[1], c.names[2]))))
      c:start_all()
      local n1 = c.nodes[1]
      assert.truthy(n1:wait_for_line("EVENT node_up " .. esc(c.names[2]), 10000))
      -- 12 failures per DNS topology, reported to hooks every time
      assert.truthy(proc.wait_until(function()
        return count(n1, "^EVENT strategy_error dns_a ") >= 12 and count(n1, "^EVENT strategy_error dns_b ") >= 12
      end, 10000), n1:output())
      for _, t in ipairs { "dns_a", "dns_b" } do
        -- one line per failure, and no more than 5 in the first 10 s
        assert.equal(5, count(n1, "%[" .. t .. "%] strategy error: "), n1.stderr)
        assert.equal(0, count(n1, "%[" .. t .. "%] lookup of"), n1.stderr)
      end
      -- the transport belongs to no one topology
      assert.truthy(n1:find_line("%[transport%] connected to " .. esc(c.names[2]), "stderr"), n1.stderr)
      assert.is_nil(n1:find_line("%[peers%] connected to", "stderr"))
      assert.is_nil(n1:find_line("%[dns_.%] connected to", "stderr"))
    end)

  it("tag transport lines with the topology's name when there is only one", function()
    c = cluster.new { n = 2 }
    c:start_all()
    assert.truthy(c.nodes[1]:wait_for_line("%[spec%] connected to " .. esc(c.names[2]), 10000, "stderr"))
  end)

  it("do not warn of an even number of master-eligible nodes at a 3-node bootstrap or after a failover",
    function()
      c = cluster.new { n = 3, extra = "transport = { heartbeat_ms = 100, timeout_ms = 500 }," }
      c:start_all()
      local master = assert(c:wait_master(10000))
      local mi = c:index_of(master)
      -- the master logs the warning, if at all, when it applies a committed state: the
      -- line "master changed" comes out of the same step, after it
      assert.truthy(c.nodes[mi]:wait_for_line("master changed: none %-> " .. esc(master), 10000, "stderr"))
      -- every node has joined the state
      assert.truthy(proc.wait_until(function()
        local h = c:health(mi)
        return h and h.number_of_nodes == 3
      end, 10000))
      c.nodes[mi]:kill "sigkill"
      c.nodes[mi]:wait_exit(3000)
      local new = assert(c:wait_master(10000, nil, master))
      local ni = c:index_of(new)
      assert.truthy(c.nodes[ni]:wait_for_line("master changed: .* %-> " .. esc(new), 10000, "stderr"))
      for i = 1, 3 do
        assert.is_nil(c.nodes[i]:find_line("even number", "stderr"), c.nodes[i].stderr)
      end
    end)

  it("warn of an even number when two master-eligible nodes are configured", function()
    c = cluster.new { n = 2 }
    c:start_all()
    local master = assert(c:wait_master(10000))
    assert.truthy(c.nodes[c:index_of(master)]:wait_for_line(
      "the cluster has an even number %(2%) of master%-eligible nodes", 10000, "stderr"))
  end)
end)
