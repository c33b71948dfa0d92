-- The gossip key follows a rotation (issue 20): four gossip nodes in a network namespace
-- rotate K1 -> K2 with `clusterlua keys install / use / remove` and no reload; a fifth
-- node that holds only K2 then finds them all by gossip, both ways (it hears their
-- announcements, so they sign under K2; they hear its, so they accept K2), while a node
-- that holds only K1 is heard by nobody.
local uv = require "uv"
local proc = require "helpers.proc"
local cluster = require "helpers.cluster"
local netns = require "helpers.netns"

local function esc(s) return (s:gsub("%p", "%%%0")) end


describe("gossip during a key rotation", function()
  it("announces under the primary, accepts every key of the ring, with no reload", function()
    math.randomseed(uv.hrtime())
    local ns = netns.scratch { multicast = true }
    local c
    finally(function()
      if c then c:cleanup() end
      proc.kill_all()
      netns.del(ns)
    end)
    local port = 40000 + math.random(20000)
    local K1, K2 = cluster.new_key(), cluster.new_key()
    c = cluster.new {
      n = 6, initial = 3, netns = ns, cluster = "keys-gossip", cookie = K1,
      topologies = ([[{ lan = { strategy = "gossip",
        config = { port = %d, group = "239.255.77.11", interface = "127.0.0.1", interval = 200 } } }]]):format(port),
    }
    for i = 1, 4 do c:start(i) end
    assert(proc.wait_until(c:all_connected({ 1, 2, 3, 4 }), 20000), "not all connected:\n" .. c:outputs())
    assert(c:wait_master(15000, { true, true, true, true }), "no master:\n" .. c:outputs())

    local function keys(args, stdin)
      local full = { "keys", "--admin", c.admin[1] }
      for _, a in ipairs(args) do full[#full + 1] = a end
      return proc.run(netns.ip, netns.exec_args(ns, proc.bin, full), { stdin = stdin, timeout = 15000 })
    end
    local code, out = keys({ "install", "-" }, K2)
    assert.equal(0, code, out)
    local fp2 = assert(out:match("(%x+): installed on 4 of 4 nodes"), out)
    code, out = keys({ "list" })
    assert.equal(0, code, out)
    local fp1 = assert(out:match("(%x+)%s+%[4/4%]%s+%[4/4%]"), out)
    code, out = keys({ "use", fp2 })
    assert.equal(0, code, out)
    code, out = keys({ "remove", fp1 })
    assert.equal(0, code, out)
    assert.matches(esc(fp1) .. ": removed from 4 of 4 nodes", out)

    -- a newcomer holding only K2 finds everyone by gossip, and everyone finds it
    c:start(5, { "--cookie", K2 })
    assert(proc.wait_until(c:all_connected({ 1, 2, 3, 4, 5 }), 20000), "node5 not connected:\n" .. c:outputs())
    for i = 1, 4 do
      assert.truthy(c.nodes[5]:wait_for_line("discovered " .. esc(c.names[i]), 10000), c.nodes[5]:output())
      assert.truthy(c.nodes[i]:wait_for_line("discovered " .. esc(c.names[5]), 10000), c.nodes[i]:output())
      local peers = c:connected(i)
      for name, n in pairs(peers) do assert.equal(fp2, n.fingerprint, name) end
    end
    -- one holding only K1 is heard by nobody: its announcements fail the MAC
    local marks = {}
    for i = 1, 5 do marks[i] = #c.nodes[i].lines end
    c:start(6, { "--cookie", K1 })
    -- the marker: each node has had one of its announcements and dropped it
    for i = 1, 5 do
      assert.truthy(c.nodes[i]:wait_for_line("dropped gossip packet %(bad_mac%)", 10000, nil, marks[i]), c.nodes[i]:output())
    end
    for i = 1, 5 do
      assert.is_nil(c.nodes[i]:find_line("discovered " .. esc(c.names[6])), c.nodes[i]:output())
      assert.is_nil(c.nodes[i]:find_line("EVENT node_down"), c.nodes[i]:output())
      assert.is_nil(c.nodes[i]:find_line("EVENT reloaded"), c.nodes[i]:output())
    end
    assert.is_nil(c:connected(1)[c.names[6]])
    -- no output names a key
    local all = {}
    for i = 1, 6 do all[#all + 1] = c.nodes[i]:output() end
    all = table.concat(all, "\n")
    assert.is_nil(all:find(K1, 1, true), "K1 appears in a log")
    assert.is_nil(all:find(K2, 1, true), "K2 appears in a log")
    c:cleanup()
    c = nil
    assert(netns.del(ns))
  end)
end)
