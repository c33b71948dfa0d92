-- The public API: everything a topology, strategy, hook or script uses.
local core = require "clusterlua.c.core"
local events = require "clusterlua.events"
local node = require "clusterlua.node"

local M = {
  version = core.version,
  now = core.now,
  on = events.on,
  off = events.off,
  self = node.self,
  nodes = node.nodes,
  connect = node.connect,
  disconnect = node.disconnect,
  handle = node.handle,
  send = node.send,
  call = node.call,
  info = node.info,
  leave = node.leave,
  log = function(level, msg) core.log(level, "lua", tostring(msg)) end,
}

local cluster = require "clusterlua.cluster"
M.master = cluster.master
M.is_master = cluster.is_master
M.state = cluster.state
M.health = cluster.health
M.update = cluster.update
M.voting = cluster.voting
M.on_master = cluster.on_master

function M.start(opts) return require("clusterlua.start").start(opts) end

-- Coroutine helpers join the top level; a name the node API already uses (connect)
-- stays the node's, and the TCP one is reachable as tcp_connect.
for k, v in pairs(require "clusterlua.async") do
  if M[k] == nil then M[k] = v end
end
M.tcp_connect = require("clusterlua.async").connect
M.dns = require "clusterlua.dns"

return M
