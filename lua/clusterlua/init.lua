-- The public API: everything a topology, strategy, hook or script uses, and nothing
-- else. The list is explicit and is exactly docs/lua-api.md's (spec/unit/modules_spec.lua
-- checks both ways): a helper added to a module is not public until it is added here
-- and documented.
local core = require "clusterlua.c.core"
local events = require "clusterlua.events"
local node = require "clusterlua.node"
local cluster = require "clusterlua.cluster"
local async = require "clusterlua.async"
local dns = require "clusterlua.dns"

return {
  -- the node
  version = core.version,
  now = core.now,
  log = function(level, msg) core.log(level, "lua", tostring(msg)) end,
  self = node.self,
  nodes = node.nodes,
  connect = node.connect,
  disconnect = node.disconnect,
  leave = node.leave,

  -- events
  on = events.on,
  off = events.off,

  -- messages and RPC
  handle = node.handle,
  send = node.send,
  call = node.call,
  info = node.info,

  -- the cluster: master, state, metadata, voting
  master = cluster.master,
  is_master = cluster.is_master,
  health = cluster.health,
  state = cluster.state,
  update = cluster.update,
  voting = cluster.voting,
  on_master = cluster.on_master,

  -- starting a node from a script; loaded on first use, so that a plain script does
  -- not load the topology, supervisor and reload machinery
  start = function(opts) return require("clusterlua.start").start(opts) end,

  -- coroutine helpers; connect is the node's, so the TCP one is tcp_connect
  spawn = async.spawn,
  sleep = async.sleep,
  exec = async.exec,
  wait = async.wait,
  readfile = async.readfile,
  tcp_connect = async.connect,
  read = async.read,
  write = async.write,
  run_until = async.run_until,
  in_coroutine = async.in_coroutine,
  resume = async.resume,
  ignore_sigpipe = async.ignore_sigpipe,

  -- DNS
  dns = dns,
}
