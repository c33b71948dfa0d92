-- A rehearsal scenario (docs/rehearsal.md) for examples/dns: the DNS answers come from
-- here, not from a resolver, so no dnsmasq is needed:
--   build/clusterlua sim examples/dns/topology.lua --scenario examples/rehearsal/dns.lua
-- Three nodes behind one A name (headless) and two behind SRV records; DNS fails for 10 s
-- and the cluster must not come apart (a failed lookup keeps the last set).
return {
  duration = "1m",
  nodes = { "node@127.0.0.1:4391", "node@127.0.0.2:4391", "node@127.0.0.3:4391", "edge1@10.0.0.1:4400", "edge2@10.0.0.2:4400" },
  initial_master_nodes = { "node@127.0.0.1:4391", "node@127.0.0.2:4391", "node@127.0.0.3:4391" },
  dns = {
    ["nodes.cluster.test"] = { "127.0.0.1", "127.0.0.2", "127.0.0.3" },
    ["_clusterlua._tcp.cluster.test"] = { { target = "10.0.0.1", port = 4400, priority = 0, weight = 0 },
                                           { target = "10.0.0.2", port = 4400, priority = 0, weight = 0 } },
  },
  faults = { { at = "20s", dns = "fail", heal = "30s" } },
  expect = {
    all_five_joined = function(h)
      local n = #h.filter { kind = "node_up", node = "node@127.0.0.1:4391", before = h.time "20s" }
      return n == 4, ("node@127.0.0.1:4391 saw %d peers"):format(n)
    end,
    a_dns_outage_drops_nobody = function(h)
      local downs = h.filter { kind = "node_down", after = h.time "20s" }
      if #downs > 0 then return false, ("%s saw %s go down"):format(downs[1].node, downs[1].peer), downs[1].t end
      return true
    end,
  },
}
