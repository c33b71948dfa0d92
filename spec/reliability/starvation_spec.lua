-- CPU starvation: every core saturated (stress-ng --cpu <nproc>, or busy Lua processes
-- when stress-ng is missing) for a bounded period; a healthy 3-node cluster with the
-- DEFAULT transport and election settings must see no node_down and no master change.
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"
local lib = require "reliability.lib"

local SECONDS = tonumber(os.getenv "RELI_STARVE_SECONDS" or "") or 20

local function ncpu()
  local n = #(uv.cpu_info() or {})
  return n > 0 and n or 2
end

describe("CPU starvation", function()
  it(("causes no node_down and no master change in %d s with every core busy"):format(SECONDS), function()
    local c = cluster.new { n = 3, hooks = lib.HOOKS, cluster = "starve" }
    finally(function() c:cleanup() end)
    c:start_all()
    local master, term = c:wait_master(15000)
    assert.truthy(master)
    assert.truthy(proc.wait_until(lib.settled(c), 15000), "the cluster did not settle after its bootstrap")
    local mark = {}
    for i = 1, 3 do mark[i] = #c.nodes[i].lines end
    local cpus = ncpu()
    local hogs = {}
    if uv.fs_access("/usr/bin/stress-ng", "x") then
      hogs[1] = proc.start("/usr/bin/stress-ng", { "--cpu", tostring(cpus), "--timeout", SECONDS .. "s", "--quiet" })
    else
      local busy = proc.write(c.dir .. "/busy.lua", "local t = os.time() + tonumber(arg[1]) while os.time() < t do end")
      for k = 1, cpus do hogs[k] = proc.start(proc.bin, { busy, tostring(SECONDS) }) end
    end
    local t0 = lib.now()
    local worst, polls = 0, 0
    proc.wait_until(function()
      local t = lib.now()
      local h = c:health(1)
      local took = lib.now() - t
      polls = polls + 1
      if took > worst then worst = took end
      assert.truthy(h, "node1 stopped answering its health endpoint")
      return lib.now() - t0 >= SECONDS * 1000
    end, SECONDS * 1000 + 15000)
    for _, h in ipairs(hogs) do h:stop(5000) end
    local bad = {}
    for i = 1, 3 do
      for j = mark[i] + 1, #c.nodes[i].lines do
        local l = c.nodes[i].lines[j].text
        if l:match "^EVENT node_down" or l:match "^EVENT master_changed" then bad[#bad + 1] = "node" .. i .. ": " .. l end
      end
    end
    local m2, t2 = c:wait_master(5000)
    io.stdout:write(("starvation: %d cpus busy for %d s, %d health polls (slowest %d ms), %d spurious events\n")
      :format(cpus, SECONDS, polls, worst, #bad))
    assert.equal(0, #bad, table.concat(bad, "\n"))
    assert.equal(master, m2)
    assert.equal(term, t2)
  end)
end)
