-- Nodes from DNS: the headless-service pattern (A/AAAA records of one name, all nodes
-- on one port) and SRV records (host and port per node). Both poll; a failed lookup
-- (timeout, SERVFAIL, NXDOMAIN) keeps the last set and reports a strategy_error, and
-- only an answer that no longer lists a node removes it.
--
-- The resolver is the dnsmasq the README starts on 127.0.0.1:5353; leave `resolver`
-- out to use /etc/resolv.conf.
return {
  cluster = "dns-example",
  topologies = {
    headless = {
      strategy = "dns",
      config = {
        query = "nodes.cluster.test",
        node_basename = "node",
        port = 4391,
        interval = 2000,
        resolver = "127.0.0.1:5353",
      },
    },
    srv = {
      strategy = "dns_srv",
      config = {
        query = "_clusterlua._tcp.cluster.test",
        node_basename = "edge",
        interval = 2000,
        resolver = "127.0.0.1:5353",
      },
    },
  },
}
