-- Nodes that find each other by UDP multicast, with no host list. Announcements are
-- authenticated with a key derived from the cookie; nodes with another cookie or
-- another cluster name are ignored.
--
-- `interface` pins multicast to loopback: the default route of a machine usually
-- leads off it, and this example must not send multicast onto a real network.
-- Remove it (or set your LAN interface's address) only on a network you own.
return {
  cluster = "gossip-example",
  topologies = {
    lan = {
      strategy = "gossip",
      config = {
        port = 45892,
        group = "233.252.1.32",
        ttl = 1,
        interface = "127.0.0.1",
        interval = 1000,
      },
    },
  },
  election = { initial_master_nodes = { "node1", "node2", "node3" } },
}
