-- The election's reports (master_changed, state_committed) reach hooks in a script that
-- starts its node with clusterlua.start alone: the handlers are handed to node.start
-- by start.lua, not registered as a side effect of someone requiring clusterlua.cluster
-- (which a script like this one never did, and then lost every master event).
local proc = require "helpers.proc"

describe("a node started with require('clusterlua.start') alone", function()
  local dir, p

  after_each(function()
    proc.kill_all()
    if dir then proc.rmtree(dir) end
    dir, p = nil, nil
  end)

  it("hears master_changed and state_committed, and stops its strategies on SIGTERM", function()
    dir = proc.tmpdir()
    local port, peer = proc.free_port "tcp", proc.free_port "tcp"
    local script = proc.write(dir .. "/app.lua", ([[
local start = require "clusterlua.start"
local function out(...)
  print(...)
  io.stdout:flush()
end
local ok, err = start.start {
  name = "solo@127.0.0.1:%d", cookie = "start-reports-spec-cookie", data = %q,
  cluster = "start-reports",
  election = { initial_master_nodes = { "solo" } },
  -- a peer that never comes: the strategy keeps dialling until SIGTERM stops it
  topologies = { t = { strategy = "static", config = { hosts = { "other@127.0.0.1:%d" } } } },
  hooks = {
    master_changed = function(new, old, term) out("MASTER", new, term) end,
    state_committed = function(s) out("COMMITTED", s.version) end,
  },
}
out("START", ok, err, package.loaded["clusterlua"] == nil and "api-not-loaded" or "api-loaded")
]]):format(port, dir .. "/data", peer))
    p = proc.start(proc.bin, { script })
    assert.truthy(p:wait_for_line("^START\ttrue\tnil\tapi%-not%-loaded", 10000), p:output())
    local me = "solo@127.0.0.1:" .. port
    assert.truthy(p:wait_for_line("^MASTER\t" .. me:gsub("%p", "%%%0") .. "\t%d+", 10000), p:output())
    assert.truthy(p:wait_for_line("^COMMITTED\t%d+", 10000), p:output())
    p:kill()
    assert.equal(0, p:wait_exit(10000), p:output())
  end)
end)
