-- Chaos soak on loopback: 5 master-eligible nodes and one writer node (role "client",
-- RELI_WRITERS coroutines looping clusterlua.update). At random moments (at least one
-- fault every 10 s) one node is killed with SIGKILL (then restarted), SIGSTOPped (then
-- SIGCONTed), restarted cleanly, or cut off by the transport's fault layer (then healed).
-- Checked from every node's EVENT lines: never two masters in one term, never two
-- states at one (term, version), every acknowledged write in the final state, and one
-- master, term and version everywhere after the last fault.
--
--   make soak DURATION=300 [SEED=n]      (make test runs 30 s)
-- Ends with: "soak: F faults, E elections, W writes acknowledged, V violations".
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"
local lib = require "reliability.lib"

local DURATION = tonumber(os.getenv "SOAK_DURATION" or "") or 30
local N = 5

describe("chaos soak", function()
  it(("keeps its invariants for %d s of kills, pauses, restarts and partitions"):format(DURATION), function()
    local seed = lib.seed
    math.randomseed(seed)
    io.stdout:write(("soak: seed %d, %d s (replay: make soak DURATION=%d SEED=%d)\n"):format(seed, DURATION,
      DURATION, seed))
    local c = cluster.new { n = N + 1, initial = N, hooks = lib.HOOKS, cluster = "soak" }
    local old = {} -- processes replaced by restarts, still checked
    finally(function()
      if os.getenv "RELI_KEEP" then io.stderr:write("soak: logs kept in " .. c.dir .. "\n") c:stop_all() return end
      c:cleanup()
    end)
    local env = { CLUSTERLUA_FAULTS = "1" }
    for i = 1, N do c:start(i, nil, env) end
    c:start(N + 1, { "--roles", "client" }, { RELI_WRITERS = "2", RELI_WRITE_MS = "50" })
    assert.truthy(c:wait_master(15000), "no master at start")

    local faults, log = 0, {}
    local function note(fmt, ...)
      local l = ("%6.1fs "):format((lib.now() - log.t0) / 1000) .. fmt:format(...)
      log[#log + 1] = l
    end
    log.t0 = lib.now()
    local function restart(i)
      old[#old + 1] = c.nodes[i]
      c:start(i, nil, env)
    end
    local kinds = { "kill9", "stop", "restart", "partition" }
    local deadline = lib.now() + DURATION * 1000
    while lib.now() < deadline - 2000 do
      proc.sleep(math.random(500, 3000))
      local i = math.random(1, N)
      local kind = kinds[math.random(#kinds)]
      local hold = math.random(500, 4000)
      faults = faults + 1
      note("fault %d: %s node%d for %d ms", faults, kind, i, hold)
      if kind == "kill9" then
        c.nodes[i]:kill "sigkill"
        c.nodes[i]:wait_exit(3000)
        proc.sleep(hold)
        restart(i)
      elseif kind == "stop" then
        c.nodes[i]:kill "sigstop"
        proc.sleep(hold)
        c.nodes[i]:kill "sigcont"
      elseif kind == "restart" then
        c.nodes[i]:stop(5000)
        proc.sleep(hold)
        restart(i)
      else
        lib.http(c.admin[i], "POST", "/_test/fault?peer=*&spec=blackhole")
        for j = 1, N + 1 do
          if j ~= i then lib.http(c.admin[j], "POST", "/_test/fault?peer=" .. c.names[i] .. "&spec=blackhole") end
        end
        proc.sleep(hold)
        for j = 1, N + 1 do lib.http(c.admin[j], "POST", "/_test/fault?peer=*&spec=clear") end
      end
    end

    -- the writer stops (its last acknowledgements are in its output), then: one master,
    -- one term, one version on every node
    c.nodes[N + 1]:stop(3000)
    local snaps
    local converged = proc.wait_until(function()
      snaps = {}
      for i = 1, N do
        snaps[i] = lib.snapshot(c.admin[i])
        if not snaps[i] or not snaps[i].master then return false end
        local a = snaps[1]
        if snaps[i].master ~= a.master or snaps[i].term ~= a.term or snaps[i].version ~= a.version then
          return false
        end
      end
      return true
    end, 30000)
    local ck = lib.checker()
    for k, p in ipairs(old) do ck:feed("old" .. k, p) end
    for i = 1, N + 1 do ck:feed("node" .. i, c.nodes[i]) end
    if not converged then
      ck:violation("no convergence within 30 s after the last fault: %s",
        require("cjson").encode(snaps or {}))
    else
      for i = 1, N do
        local s = lib.snapshot(c.admin[i])
        if s then ck:check_acks(s.user, "node" .. i) else ck:violation("node%d unreachable at the end", i) end
      end
    end
    local line = ("soak: %d faults, %d elections, %d writes acknowledged, %d violations"):format(faults,
      ck.elections, ck.ack_count, #ck.violations)
    io.stdout:write(table.concat(log, "\n"), "\n")
    for _, v in ipairs(ck.violations) do io.stdout:write("VIOLATION ", v, "\n") end
    io.stdout:write(line, "\n")
    io.stdout:flush()
    assert.equal(0, #ck.violations, table.concat(ck.violations, "\n"))
    assert.truthy(ck.ack_count > 0, "the writer got no acknowledgement at all")
  end)
end)
