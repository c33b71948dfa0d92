-- Leaving: SIGTERM and clusterlua.leave() tell the peers ("left"), and the process exits
-- as soon as they have been told; errors name what the caller got wrong.
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("a leaving node", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("exits within 200 ms of SIGTERM when its peers are reachable, and they see it leave", function()
    c = cluster.new { n = 3 }
    c:start_all()
    local master = assert(c:wait_master(10000))
    -- the master last: every node leaves a cluster that still has peers to tell
    local order = {}
    for i = 1, 3 do if c.names[i] ~= master then order[#order + 1] = i end end
    order[#order + 1] = c:index_of(master)
    local watcher = c.nodes[order[3]]
    for k, i in ipairs(order) do
      local p = c.nodes[i]
      local mark = #watcher.lines
      local t0 = uv.hrtime()
      p:kill "sigterm"
      local code = p:wait_exit(5000)
      local ms = (uv.hrtime() - t0) / 1e6
      assert.equal(0, code, p:output())
      assert.is_true(ms < 200, ("node%d took %.0f ms to exit after SIGTERM"):format(i, ms))
      if k < 3 then
        assert.truthy(watcher:wait_for_line("EVENT node_down " .. esc(c.names[i]) .. " left", 5000, nil, mark))
      end
    end
  end)
end)

describe("clusterlua.leave()", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("from a script node: the peers see 'left', and the script exits with the status given", function()
    c = cluster.new { n = 1 }
    c:start(1)
    assert(c:wait_master(10000))
    local name = ("script@127.0.0.1:%d"):format(cluster.free_port())
    local script = proc.write(c.dir .. "/leaver.lua", ([[
local cl = require "clusterlua"
cl.on("node_up", "spec", function(n)
  io.stdout:write("UP ", n, "\n")
  io.stdout:flush()
  cl.leave(3)
  io.stdout:write("after leave\n") -- never reached
end)
assert(cl.start { name = %q, cookie = %q, data = %q, roles = { "data" }, cluster = "spec",
  topologies = { spec = { strategy = "static", config = { hosts = { %q } } } } })
]]):format(name, c.cookie, c.dir .. "/script-data", c.names[1]))
    local p = proc.start(proc.bin, { script }, { log = c.dir .. "/script.log" })
    assert.truthy(p:wait_for_line("^UP ", 10000))
    assert.equal(3, (p:wait_exit(5000)))
    assert.is_nil(p:find_line("after leave"))
    assert.truthy(c.nodes[1]:wait_for_line("EVENT node_down " .. esc(name) .. " left", 5000))
  end)

  it("refuses a bad status and is an error outside a node", function()
    local f = proc.write(os.tmpname(), [[
local ok, err = pcall(require("clusterlua").leave)
print(ok, err)
]])
    local code, out = proc.run(proc.bin, { f })
    os.remove(f)
    assert.equal(0, code)
    assert.matches("^false\t.*not a node", out)
  end)
end)

describe("errors that name the caller's mistake", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("a short name of a known node that is down is ENOTCONN, like its full name", function()
    c = cluster.new { n = 3, hooks = cluster.HOOKS_PRELUDE .. [[
local function try(label, node)
  local ok, err = cl.send(node, "x", 1)
  out(label, ok and "ok" or err)
end
return {
  node_up = function(n) out("node_up", n) end,
  node_down = function(n)
    if not cl.self().name:match "^node1@" then return end
    try("short", (n:match "^([^@]+)"))
    try("full", n)
    try("unknown", "node9")
    -- a value that cannot travel: the message names the value, not the runtime's files
    local peer = cl.nodes()[1]
    local _, e1 = cl.send(peer, "x", function() end)
    out("serialize_send", e1)
    local _, e2 = cl.call(peer, "x", coroutine.create(function() end))
    out("serialize_call", e2)
  end,
}
]] }
    c:start_all()
    local n1 = c.nodes[1]
    assert.truthy(n1:wait_for_line("EVENT node_up " .. esc(c.names[3]), 10000))
    assert.truthy(n1:wait_for_line("EVENT node_up " .. esc(c.names[2]), 10000))
    c.nodes[3]:kill "sigkill"
    local _, _, short = n1:wait_for_line("^EVENT short (.*)$", 10000)
    local _, _, full = n1:wait_for_line("^EVENT full (.*)$", 5000)
    local _, _, unknown = n1:wait_for_line("^EVENT unknown (.*)$", 5000)
    assert.equal("ENOTCONN: not connected to " .. c.names[3], full)
    assert.equal(full, short)
    assert.equal('ENOENT: no known node named "node9"', unknown)
    local _, _, e1 = n1:wait_for_line("^EVENT serialize_send (.*)$", 5000)
    local _, _, e2 = n1:wait_for_line("^EVENT serialize_call (.*)$", 5000)
    assert.equal("EINVAL: value cannot be serialized: cannot serialize 'function'", e1)
    assert.equal("EINVAL: value cannot be serialized: cannot serialize 'thread'", e2)
  end)
end)
