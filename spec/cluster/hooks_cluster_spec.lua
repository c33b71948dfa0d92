-- Hooks on real nodes (loopback): events reach the right nodes with the right arguments,
-- bad hooks leave their node healthy in the cluster's eyes, exec with a timeout, the
-- exclude-after-grace recipe, hot reload. Nodes print what hooks see as "EVENT ..." lines.
local cjson = require "cjson.safe"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"
local uv = require "uv"

local OUT = cluster.HOOKS_PRELUDE

-- hooks that print which version of the file they come from
local function hooks_v(v)
  return OUT .. ([[
return { reloaded = { r = function() out("reloaded_%s") end },
         strategy_error = { s = function(t) out("strategy_error_%s", t) end } }
]]):format(v, v)
end

local function count_lines(p, pattern)
  local n = 0
  for _, l in ipairs(p.lines) do if l.text:match(pattern) then n = n + 1 end end
  return n
end

local function others(c, i)
  local t = {}
  for j = 1, c.n do if j ~= i then t[#t + 1] = j end end
  return t
end

local function coord(c, i)
  local code, j = c:http(i, "GET", "/_cluster/state?filter_path=metadata.cluster_coordination")
  if code ~= 200 or not j or not j.metadata then return nil end
  return j.metadata.cluster_coordination
end

describe("hooks on real nodes", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("delivers node_up, master_changed, state_committed, node_down (with reason), quorum_lost/regained", function()
    c = cluster.new { n = 3 } -- the helper's hooks print every event
    c:start_all()
    local master, term = c:wait_master(10000)
    assert.truthy(master, "no master")
    for i = 1, 3 do
      local p = c.nodes[i]
      for _, j in ipairs(others(c, i)) do
        assert.truthy(p:wait_for_line("^EVENT node_up " .. c.names[j]:gsub("%.", "%%.") .. "$", 5000))
      end
      assert.truthy(p:wait_for_line(("^EVENT master_changed %s %%S+ %d$"):format(master:gsub("%.", "%%."), term), 5000))
      assert.truthy(p:wait_for_line("^EVENT state_committed %d+ %d+$", 5000))
    end
    local mi = c:index_of(master)
    local f = others(c, mi)
    -- a follower killed -9: the others see it go, closed or timed out
    c.nodes[f[1]]:kill "sigkill"
    c.nodes[f[1]]:wait_exit(3000)
    local gone = c.names[f[1]]:gsub("%.", "%%.")
    for _, i in ipairs { mi, f[2] } do
      local line = c.nodes[i]:wait_for_line("^EVENT node_down " .. gone .. " (%a+)$", 10000)
      assert.truthy(line, "node" .. i .. " did not see node_down")
      local reason = line:match "(%a+)$"
      assert.truthy(reason == "closed" or reason == "timeout", reason)
    end
    -- the second follower leaves politely: the master sees "left", then loses quorum
    c.nodes[f[2]]:stop(5000)
    local left = c.names[f[2]]:gsub("%.", "%%.")
    assert.truthy(c.nodes[mi]:wait_for_line("^EVENT node_down " .. left .. " left$", 10000))
    assert.truthy(c.nodes[mi]:wait_for_line("^EVENT quorum_lost$", 15000))
    -- one comes back: quorum again, and a master
    c:start(f[2])
    assert.truthy(c.nodes[mi]:wait_for_line("^EVENT node_up " .. left .. "$", 10000))
    assert.truthy(c.nodes[mi]:wait_for_line("^EVENT quorum_regained$", 15000))
    local alive = { [mi] = true, [f[2]] = true }
    assert.truthy(c:wait_master(15000, alive))
  end)

  it("contains a hook that errors and one that loops forever; the node stays healthy; exec times out", function()
    c = cluster.new { n = 3, hooks = OUT .. [[
local blocked = false
return {
  budget_ms = 150,
  node_up = {
    a_bad = function(n) if me(1) then error("boom from a hook for " .. n) end end,
    b_spin = function() if me(1) then while true do end end end,
    c_block = { budget_ms = 0, fn = function()
      -- no budget: Lua is stuck for 2.5 s, and the control loop must not care
      if me(1) and not blocked then
        blocked = true
        out("blocking")
        local t0 = os.clock()
        while os.clock() - t0 < 2.5 do end
        out("unblocked")
      end
    end },
    d_after = function(n) out("node_up", n) end,
  },
  node_down = function(n, r) out("node_down", n, r) end,
  master_changed = function(new)
    if not me(1) or not new then return end
    local t0 = cl.now()
    local st, err, code = cl.exec("sleep", { "5" }, { timeout = 300 })
    out("exec", tostring(st), tostring(code), math.floor(cl.now() - t0))
    local st2, so = cl.exec("echo", { "hi" }, { timeout = 2000 })
    out("exec_ok", st2, (so:gsub("%s+$", "")))
    -- a sleeping hook holds nothing up
    cl.sleep(2000)
    out("slept", math.floor(cl.now() - t0))
  end,
}
]] }
    c:start_all()
    local p1 = c.nodes[1]
    assert.truthy(p1:wait_for_line("^EVENT blocking$", 10000))
    -- Lua on node1 is busy for 2.5 s: the admin endpoint still answers, from the control loop
    local code, h = c:http(1, "GET", "/_cluster/health")
    assert.equal(200, code)
    assert.truthy(p1:wait_for_line("^EVENT unblocked$", 10000))
    assert.truthy(c:wait_master(15000), "no master")
    -- later hooks of the same event still ran, for both peers
    for _, j in ipairs { 2, 3 } do
      assert.truthy(p1:wait_for_line("^EVENT node_up " .. c.names[j]:gsub("%.", "%%.") .. "$", 5000))
    end
    -- exec with a timeout, then a normal one, then a sleep
    local line = p1:wait_for_line("^EVENT exec ", 10000)
    assert.truthy(line)
    local st, ecode, ms = line:match "^EVENT exec (%S+) (%S+) (%d+)$"
    assert.equal("nil", st)
    assert.equal("ETIMEDOUT", ecode)
    -- not >= 300: libuv counts timers from the loop time cached when this callback
    -- began, and the aborted hooks had used part of it
    assert.truthy(tonumber(ms) < 3000, ms)
    assert.truthy(p1:wait_for_line("^EVENT exec_ok 0 hi$", 5000))
    assert.truthy(p1:wait_for_line("^EVENT slept %d+$", 10000))
    -- reported: the error with the hook's name, the aborts counted in health
    assert.truthy(p1:wait_for_line("hook a_bad %(node_up%).*boom from a hook", 5000, "stderr"))
    assert.truthy(p1:wait_for_line("hook b_spin %(node_up%).*EBUDGET", 5000, "stderr"))
    code, h = c:http(1, "GET", "/_cluster/health")
    assert.equal(200, code)
    assert.truthy(h.hook_aborts >= 2, cjson.encode(h))
    -- and the peers never saw node1 go
    for _, j in ipairs { 2, 3 } do
      assert.equal(0, count_lines(c.nodes[j], "^EVENT node_down node1@"))
    end
    assert.equal(200, (c:http(2, "GET", "/_cluster/health")))
  end)

  it("exclude_after_grace excludes a node down past the grace period and restores it on return", function()
    c = cluster.new { n = 3, hooks = OUT .. [[
local r = require "clusterlua.recovery"
return r.merge(r.exclude_after_grace { grace_ms = 1500, retry_ms = 300 },
  { node_down = { print_down = function(n, why) out("node_down", n, why) end } })
]] }
    c:start_all()
    local master = c:wait_master(10000)
    assert.truthy(master)
    local mi = c:index_of(master)
    local victim = others(c, mi)[1]
    local survivor = others(c, mi)[2]
    c.nodes[victim]:kill "sigkill"
    c.nodes[victim]:wait_exit(3000)
    local excluded = proc.wait_until(function()
      local cc = coord(c, survivor)
      if not cc then return false end
      return #cc.voting_config_exclusions == 1
        and cc.voting_config_exclusions[1].node_name == c.names[victim]
        and #cc.last_committed_config == 2
    end, 15000)
    assert.truthy(excluded, "the down node was not excluded: " .. cjson.encode(coord(c, survivor))
      .. "\n--- master stderr:\n" .. c.nodes[mi].stderr:sub(-3000) .. "\n--- stdout:\n" .. c.nodes[mi].stdout:sub(-2000))
    c:start(victim)
    local restored = proc.wait_until(function()
      local cc = coord(c, survivor)
      return cc ~= nil and #cc.voting_config_exclusions == 0 and #cc.last_committed_config == 3
    end, 15000)
    assert.truthy(restored, "the exclusion was not cleared: " .. cjson.encode(coord(c, survivor)))
    -- the recipe clears the exclusion first, then forgets it in the metadata: wait for both
    local user
    proc.wait_until(function()
      local _, st = c:http(survivor, "GET", "/_cluster/state?filter_path=metadata.user")
      user = st and st.metadata and st.metadata.user or {}
      return user["recovery.excluded_after_grace"] == nil
    end, 10000)
    assert.is_nil(user["recovery.excluded_after_grace"])
  end)

  it("hot reload replaces hooks by name, without duplicates, and keeps them when the file is broken", function()
    c = cluster.new { n = 1, hooks = hooks_v "v1" }
    c:start(1)
    assert.truthy(c:wait_master(10000))
    local p = c.nodes[1]
    local code = c:http(1, "POST", "/_reload")
    assert.equal(200, code)
    assert.truthy(p:wait_for_line("^EVENT reloaded_v1$", 5000))
    -- rewritten: the file watch reloads it
    cluster.write(c.dir .. "/hooks.lua", hooks_v "v2")
    assert.truthy(p:wait_for_line("^EVENT reloaded_v2$", 5000))
    code = c:http(1, "POST", "/_reload")
    assert.equal(200, code)
    assert.truthy(proc.wait_until(function() return count_lines(p, "^EVENT reloaded_v2$") == 2 end, 5000))
    -- marker: v3 through the same file watch; any late duplicate of v2 comes before it
    cluster.write(c.dir .. "/hooks.lua", hooks_v "v3")
    assert.truthy(p:wait_for_line("^EVENT reloaded_v3$", 5000))
    assert.equal(2, count_lines(p, "^EVENT reloaded_v2$"))
    assert.equal(1, count_lines(p, "^EVENT reloaded_v1$"))
    -- broken: refused, and the v3 hooks stay: each failure reaches exactly one v3 hook
    -- (the file watch tries first, then the admin endpoint: two failures, two calls)
    cluster.write(c.dir .. "/hooks.lua", "return { reloaded = ")
    assert.truthy(p:wait_for_line("^EVENT strategy_error_v3 reload", 5000))
    local code2, j = c:http(1, "POST", "/_reload")
    assert.equal(400, code2)
    assert.truthy(j and tostring(j.error):match "hooks.lua", cjson.encode(j))
    -- marker: a good v4 through the file watch, after both failures
    cluster.write(c.dir .. "/hooks.lua", hooks_v "v4")
    assert.truthy(p:wait_for_line("^EVENT reloaded_v4$", 5000))
    assert.equal(2, count_lines(p, "^EVENT strategy_error_v3"))
    assert.equal(0, count_lines(p, "^EVENT strategy_error_v[12]"))
  end)

  local function ino(path) return assert(uv.fs_stat(path)).ino end

  it("the file watch follows the hooks file through renames, removal and return, and not its directory", function()
    c = cluster.new { n = 1, hooks = hooks_v "v1" }
    c:start(1)
    assert.truthy(c:wait_master(10000))
    local p, path = c.nodes[1], c.dir .. "/hooks.lua"
    -- the file itself: a watch on the directory woke the node for every write beside
    -- the file (logs, other nodes' files; issue 18)
    local function watches_file()
      local w = proc.inotify_inodes(p.pid)
      return w[ino(path)] and not w[ino(c.dir)]
    end
    assert.truthy(proc.wait_until(watches_file, 5000), "the hooks file is not what the node watches")
    -- replaced by rename (editors, deploy tools), twice: the watch moves to each new file
    for _, v in ipairs { "v2", "v3" } do
      cluster.write(path .. ".new", hooks_v(v))
      assert(os.rename(path .. ".new", path))
      assert.truthy(p:wait_for_line("^EVENT reloaded_" .. v .. "$", 5000))
      assert.truthy(proc.wait_until(watches_file, 5000), "the watch did not follow the new file")
    end
    -- removed: the reload fails and the v3 hooks stay; put back: it is watched again
    assert(os.remove(path))
    assert.truthy(p:wait_for_line("^EVENT strategy_error_v3 reload", 5000))
    cluster.write(path, hooks_v "v4")
    assert.truthy(p:wait_for_line("^EVENT reloaded_v4$", 5000))
    assert.truthy(proc.wait_until(watches_file, 5000), "the watch did not come back with the file")
    -- and an edit in place is still seen (marker: the reload it makes)
    local f = assert(io.open(path, "a"))
    f:write "\n-- edited in place\n"
    f:close()
    assert.truthy(proc.wait_until(function() return count_lines(p, "^EVENT reloaded_v4$") == 2 end, 5000))
    assert.equal(1, count_lines(p, "^EVENT reloaded_v3$"))
  end)
end)
