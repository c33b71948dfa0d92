-- Crash consistency: a one-node cluster whose own writer loops clusterlua.update (every
-- update is a persisted publication and commit), killed with SIGKILL at a random moment,
-- again and again. After every kill the persisted file DATA/cluster_state must decode
-- (build/state_check), its term never goes back, its version never goes back and covers
-- every acknowledged write, and the next start (which refuses a corrupt file) succeeds.
--
-- RELI_CRASH_SECONDS (default 45) bounds the loop; RELI_CRASH_MAX (default 1000) caps the
-- iterations. RELI_SEED replays the random delays.
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"
local lib = require "reliability.lib"

local SECONDS = tonumber(os.getenv "RELI_CRASH_SECONDS" or "") or 45
local MAX = tonumber(os.getenv "RELI_CRASH_MAX" or "") or 1000
local CHECK = os.getenv "RELI_STATE_CHECK" or (proc.bin:match "^(.*)/[^/]*$" .. "/state_check")

local function decode(path)
  local code, out = proc.run(CHECK, { path }, { timeout = 5000 })
  local t, v, cm, mv = (out or ""):match "^term (%d+) version (%d+) committed (%d) meta_version (%d+)"
  return code, tonumber(t), tonumber(v), out
end

describe("crash consistency", function()
  it("every SIGKILL while persisting leaves a valid state; term and version never go back", function()
    assert.truthy(uv.fs_access(CHECK, "x"), CHECK .. " is missing: make " .. CHECK)
    local seed = lib.seed
    math.randomseed(seed)
    -- two independent one-node clusters side by side: twice the kills per second
    local cs = {}
    for w = 1, 2 do
      cs[w] = cluster.new { n = 1, hooks = lib.HOOKS, cluster = "crash" .. w }
    end
    finally(function() for _, c in ipairs(cs) do c:cleanup() end end)
    local file = {}
    local last = {}
    for w, c in ipairs(cs) do
      file[w] = c.dir .. "/data1/cluster_state"
      last[w] = { term = 0, version = 0, acked = 0 }
    end
    local kills, iterations, torn, startup_kills = 0, 0, 0, 0
    local deadline = lib.now() + SECONDS * 1000
    local env = { RELI_WRITERS = "1", RELI_WRITE_MS = "1" }
    -- start both, then loop: wait for a fresh ack, wait a random 0..40 ms, SIGKILL, check
    for _, c in ipairs(cs) do c:start(1, nil, env) end
    while lib.now() < deadline and iterations < MAX do
      for w, c in ipairs(cs) do
        local p = c.nodes[1]
        local early = math.random() < 0.2
        if early then
          -- sometimes kill during start-up: reading the file, the election, the first persist
          proc.sleep(math.random(0, 120))
          startup_kills = startup_kills + 1
        else
          local line = p:wait_for_line("^EVENT n?ack", 12000)
          assert.truthy(line and line:match "^EVENT ack", ("restart %d of cluster %d (seed %d) did not get to an "
            .. "acknowledged write (%s; a timeout here is the bug restart_dedup_spec shows):\n%s"):format(
            iterations, w, seed, tostring(line), p:output():sub(-1500)))
          proc.sleep(math.random(0, 40))
        end
        p:kill "sigkill"
        p:wait_exit(5000)
        kills = kills + 1
        -- the highest version acknowledged before the kill
        for _, l in ipairs(p.lines) do
          local v = l.text:match "^EVENT ack %S+ %S+ (%d+)"
          if v and tonumber(v) > last[w].acked then last[w].acked = tonumber(v) end
        end
        if uv.fs_stat(file[w]) then
          local code, term, version, out = decode(file[w])
          assert.equal(0, code, ("after kill %d (cluster %d, seed %d): %s"):format(kills, w, seed, out))
          assert.truthy(term >= last[w].term, ("term went back: %d after %d"):format(term, last[w].term))
          assert.truthy(version >= last[w].version, ("version went back: %d after %d"):format(version, last[w].version))
          assert.truthy(version >= last[w].acked,
            ("acknowledged version %d is not in the persisted state (version %d)"):format(last[w].acked, version))
          last[w].term, last[w].version = term, version
        else
          assert.equal(0, last[w].version, "the state file disappeared")
        end
        c:start(1, nil, env)
      end
      iterations = iterations + 1
    end
    -- the last restart must come up with everything
    for w, c in ipairs(cs) do
      assert.truthy(c.nodes[1]:wait_for_line("^EVENT ack", 10000))
      c.nodes[1]:stop(3000)
      local code, term, version, out = decode(file[w])
      assert.equal(0, code, out)
      assert.truthy(term >= last[w].term and version >= last[w].acked)
    end
    io.stdout:write(("crash: %d kills (%d during start-up), %d torn files, terms reached %d/%d, versions %d/%d, seed %d\n")
      :format(kills, startup_kills, torn, last[1].term, last[2].term, last[1].version, last[2].version, seed))
  end)
end)
