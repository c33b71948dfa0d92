-- Master election with real processes on loopback.
local uv = require "uv"
local cjson = require "cjson.safe"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local HOOKS = cluster.HOOKS_PRELUDE .. [[
local asked = false
return {
  node_up = function(n) out("node_up", n) end,
  node_down = function(n, r) out("node_down", n, r) end,
  master_changed = function(new, old, term)
    out("master_changed", new, old, term)
    if new and not cl.is_master() and cl.self().name:match "^node2@" and not asked and os.getenv "DO_UPDATE" then
      asked = true
      local v, err = cl.update(function(md) md.from_node2 = (md.from_node2 or 0) + 1 return md end)
      out("updated", v or err)
    end
  end,
  quorum_lost = function() out("quorum_lost") end,
  quorum_regained = function() out("quorum_regained") end,
}
]]

-- every "master_changed NEW OLD TERM" line any node printed: no term may have two masters
local function check_one_master_per_term(c)
  local by_term = {}
  for i = 1, c.n do
    local p = c.nodes[i]
    if p then
      for _, l in ipairs(p.lines) do
        local new, term = l.text:match "^EVENT master_changed (%S+) %S+ (%d+)$"
        if new and new ~= "nil" then
          assert.is_true(by_term[term] == nil or by_term[term] == new,
            ("term %s had two masters: %s and %s"):format(term, tostring(by_term[term]), new))
          by_term[term] = new
        end
      end
    end
  end
end

describe("election", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("bootstraps one master that all three agree on, and survives kill -9 of it", function()
    c = cluster.new { n = 3, hooks = HOOKS }
    c:start_all()
    local master, term = c:wait_master(10000)
    assert.truthy(master, "no master elected")
    local h = c:health(1)
    assert.equal(2, h.quorum)
    assert.equal(3, #h.voting_config)
    assert.equal("green", h.status)
    local mi = c:index_of(master)
    c.nodes[mi]:kill "sigkill"
    c.nodes[mi]:wait_exit(3000)
    local alive = {}
    for i = 1, 3 do alive[i] = i ~= mi end
    local m2, t2 = c:wait_master(10000, alive, master)
    assert.truthy(m2, "no new master after kill -9")
    assert.are_not.equal(master, m2)
    assert.truthy(t2 > term)
    assert.equal("yellow", c:health(alive[1] and 1 or 2).status)
    check_one_master_per_term(c)
    -- a failover is not a lost quorum: each survivor's hooks saw the new master (the
    -- marker, on the same event queue) and no quorum_lost before it
    for i = 1, 3 do
      if alive[i] then
        local p = c.nodes[i]
        local at = p:wait_for_line(("^EVENT master_changed %s "):format(m2:gsub("%p", "%%%0")), 5000)
        assert.truthy(at, "node" .. i .. " did not see the new master")
        assert.is_nil(p:find_line "^EVENT quorum_lost$", "node" .. i .. " got quorum_lost in a failover")
        assert.is_nil(p:find_line "quorum lost", "node" .. i .. " logged quorum lost in a failover")
      end
    end
  end)

  it("replaces a SIGSTOPped master; after SIGCONT the old one follows the new term", function()
    c = cluster.new { n = 3, hooks = HOOKS }
    c:start_all()
    local master, term = c:wait_master(10000)
    assert.truthy(master)
    local mi = c:index_of(master)
    c.nodes[mi]:kill "sigstop"
    local alive = {}
    for i = 1, 3 do alive[i] = i ~= mi end
    local m2, t2 = c:wait_master(10000, alive, master)
    assert.truthy(m2)
    assert.are_not.equal(master, m2)
    c.nodes[mi]:kill "sigcont"
    local m3, t3 = c:wait_master(10000)
    assert.equal(m2, m3)
    assert.truthy(t3 >= t2 and t2 > term)
    check_one_master_per_term(c)
  end)

  it("keeps cluster id, term and user metadata across a restart of every node; update works from a follower", function()
    c = cluster.new { n = 3, hooks = HOOKS }
    c:start_all(nil, { DO_UPDATE = "1" })
    assert.truthy(c:wait_master(10000))
    -- node2 updates from wherever it is; if it is the master it did not ask, so ask for it
    local ok = proc.wait_until(function()
      local code, j = c:http(1, "GET", "/_cluster/state?filter_path=metadata.user")
      return code == 200 and j.metadata and j.metadata.user and j.metadata.user.from_node2 == 1
    end, 10000)
    if not ok then
      -- node2 was elected master: nothing to forward; the spec still checks persistence below
      assert.truthy(c.nodes[2]:find_line "EVENT master_changed node2@")
    end
    local _, before = c:http(1, "GET", "/_cluster/state")
    for i = 1, 3 do c.nodes[i]:stop(5000) end
    c:start_all()
    assert.truthy(c:wait_master(10000))
    local _, after = c:http(1, "GET", "/_cluster/state")
    assert.equal(before.cluster_uuid, after.cluster_uuid)
    assert.truthy(after.term > before.term)
    assert.truthy(after.version > before.version)
    assert.same(before.metadata.user, after.metadata.user)
  end)

  it("a minority never has a master (fault layer isolates one node)", function()
    c = cluster.new { n = 3, hooks = HOOKS }
    c:start_all(nil, { CLUSTERLUA_FAULTS = "1" })
    local master = c:wait_master(10000)
    assert.truthy(master)
    -- isolate a follower from everyone, both ways
    local fi = c:index_of(master) == 3 and 2 or 3
    for i = 1, 3 do
      if i ~= fi then
        assert.equal(200, (c:http(i, "POST", "/_test/fault?peer=" .. c.names[fi] .. "&spec=blackhole")))
        assert.equal(200, (c:http(fi, "POST", "/_test/fault?peer=" .. c.names[i] .. "&spec=blackhole")))
      end
    end
    -- for two seconds the isolated node must never claim a master of its own
    local t_end = require("uv").now() + 2000
    local saw_own = false
    proc.wait_until(function()
      local h = c:health(fi)
      if h and h.master ~= cjson.null and h.master == c.names[fi] then saw_own = true end
      return require("uv").now() >= t_end
    end, 5000)
    assert.is_false(saw_own)
    local h = c:health(fi)
    assert.truthy(h.master == cjson.null or h.master == master)
    local others = {}
    for i = 1, 3 do others[i] = i ~= fi end
    assert.equal(master, (c:wait_master(5000, others)))
    for i = 1, 3 do c:http(i, "POST", "/_test/fault?peer=*&spec=clear") end
    assert.truthy(c:wait_master(10000))
    check_one_master_per_term(c)
  end)

  it("voting exclusions round trip from a follower via the admin API", function()
    c = cluster.new { n = 3, hooks = HOOKS }
    c:start_all()
    local master = c:wait_master(10000)
    local fi = c:index_of(master) == 1 and 2 or 1
    local victim = c:index_of(master) == 3 and 2 or 3
    if victim == fi then victim = 6 - fi - c:index_of(master) end
    local code, j = c:http(fi, "POST", "/_cluster/voting_config_exclusions?node_names=node" .. victim)
    assert.equal(200, code, cjson.encode(j))
    code, j = c:http(fi, "GET", "/_cluster/state?filter_path=metadata.cluster_coordination")
    local coord = j.metadata.cluster_coordination
    assert.equal(1, #coord.voting_config_exclusions)
    assert.equal(2, #coord.voting_config_excluding_deferred)
    assert.equal(2, #coord.last_committed_config)
    code = c:http(fi, "DELETE", "/_cluster/voting_config_exclusions?wait_for_removal=false")
    assert.equal(200, code)
    local ok = proc.wait_until(function()
      local _, s = c:http(fi, "GET", "/_cluster/state?filter_path=metadata.cluster_coordination")
      local cc = s and s.metadata and s.metadata.cluster_coordination
      return cc and #cc.voting_config_exclusions == 0 and #cc.last_committed_config == 3
    end, 10000)
    assert.truthy(ok, "the configuration did not grow back to 3 after clearing exclusions")
  end)

  it("unsafe-bootstrap restarts a cluster from one survivor after permanent quorum loss", function()
    c = cluster.new { n = 3, hooks = HOOKS }
    c:start_all()
    assert.truthy(c:wait_master(10000))
    local _, before = c:http(1, "GET", "/_cluster/state")
    for i = 1, 3 do c.nodes[i]:stop(5000) end
    -- node1 alone cannot elect itself: quorum is 2 of 3
    c:start(1)
    proc.sleep(1500)
    local h = c:health(1)
    assert.truthy(h.master == cjson.null or h.master == nil)
    c.nodes[1]:stop(5000)
    -- without --yes it asks, and "no" changes nothing
    local p = proc.start(proc.bin, { "unsafe-bootstrap", "--data", c.dir .. "/data1" }, { stdin = "no\n" })
    assert.are_not.equal(0, p:wait_exit(5000))
    assert.truthy(p.stdout:find("UNSAFE", 1, true))
    -- a leftover temporary file of mode 0644 must not pass its mode on
    proc.write(c.dir .. "/data1/cluster_state.tmp", "")
    assert(uv.fs_chmod(c.dir .. "/data1/cluster_state.tmp", 420))
    p = proc.start(proc.bin, { "unsafe-bootstrap", "--data", c.dir .. "/data1", "--yes" })
    assert.equal(0, p:wait_exit(5000), p.stderr)
    -- a new cluster, and the tool says so
    assert.truthy(p.stdout:find("NEW cluster", 1, true), p.stdout)
    local new_id, old_id = p.stdout:match "New cluster id (%x+) %(was (%x+)%)"
    assert.equal(before.cluster_uuid, old_id, p.stdout)
    assert.truthy(new_id and new_id ~= old_id, p.stdout)
    for _, f in ipairs { "cluster_state", "cluster_state.before-unsafe-bootstrap" } do
      assert.equal(384, uv.fs_stat(c.dir .. "/data1/" .. f).mode % 512, f) -- 0600
    end
    c:start(1)
    local alone = { true, false, false }
    local m = c:wait_master(10000, alone)
    assert.equal(c.names[1], m)
    local _, after = c:http(1, "GET", "/_cluster/state")
    assert.equal(new_id, after.cluster_uuid)
    assert.same(before.metadata.user, after.metadata.user)
    assert.equal(1, #after.metadata.cluster_coordination.last_committed_config)
    -- a node still holding the old cluster's state is refused, not merged
    c:start(2)
    assert.truthy(proc.wait_until(function()
      return c.nodes[1]:find_line("belongs to cluster", "stderr") or c.nodes[2]:find_line("belongs to cluster", "stderr")
    end, 10000), c.nodes[2]:output())
    p = proc.start(proc.bin, { "unsafe-bootstrap", "--data", c.dir .. "/nonexistent", "--yes" })
    assert.are_not.equal(0, p:wait_exit(5000))
    assert.truthy(p.stderr:find("node_id", 1, true))
  end)
end)
