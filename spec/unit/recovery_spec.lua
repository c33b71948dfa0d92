-- Recovery recipes driven with made-up events and a fake cluster API: what each one
-- asks of the cluster (exclusions, metadata, commands) and when.
local core = require "clusterlua.c.core"
local async = require "clusterlua.async"
local events = require "clusterlua.events"
local hooks = require "clusterlua.hooks"
local recovery = require "clusterlua.recovery"
local proc = require "helpers.proc"

local N1, N2, N3 = "n1@127.0.0.1:1", "n2@127.0.0.1:2", "n3@127.0.0.1:3"
local IDS = { [N1] = "id1", [N2] = "id2", [N3] = "id3" }

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return t
end

-- A three-node cluster as the recipes see it from n1.
local function fake()
  -- slept: waits of the recipe that have ended (a marker: what would have followed a wait
  -- has happened by then); logs: what the recipe logged
  local f = { master = true, up = { [N2] = true, [N3] = true }, excl = {}, user = {}, calls = {}, execs = {},
    slept = 0, logs = {} }
  local function state()
    local nodes, config, ex = {}, {}, {}
    for name, id in pairs(IDS) do nodes[id] = { name = name, roles = { "master" } } end
    for _, name in ipairs { N1, N2, N3 } do
      if not f.excl[name] then config[#config + 1] = IDS[name] end
    end
    local names = {}
    for name in pairs(f.excl) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do ex[#ex + 1] = { node_id = IDS[name], node_name = name } end
    return { nodes = nodes, metadata = { user = deep_copy(f.user),
      cluster_coordination = { last_committed_config = config, voting_config_exclusions = ex } } }
  end
  local function call(s) f.calls[#f.calls + 1] = s end
  f.api = {
    is_master = function() return f.master end,
    nodes = function()
      local t = {}
      for n in pairs(f.up) do t[#t + 1] = n end
      table.sort(t)
      return t
    end,
    self = function() return { name = N1 } end,
    state = state,
    voting = {
      exclude = function(names)
        call("exclude " .. table.concat(names, ","))
        for _, n in ipairs(names) do f.excl[n] = true end
        return 1
      end,
      clear = function()
        call "clear"
        f.excl = {}
        return 1
      end,
    },
    update = function(fn)
      local u = deep_copy(f.user)
      f.user = fn(u) or u
      call "update"
      return 1
    end,
    sleep = function(ms)
      async.sleep(ms)
      f.slept = f.slept + 1
    end,
    now = core.now,
    log = function(_, msg) f.logs[#f.logs + 1] = msg end,
    exec = function(cmd, args, opts)
      local e = { cmd = cmd, args = args, start = core.now(), timeout = opts.timeout }
      f.execs[#f.execs + 1] = e
      if f.exec_ms then async.sleep(f.exec_ms) end
      e.finish = core.now()
      return 0, "", ""
    end,
  }
  return f
end

-- the loop's cached time goes stale while a spec body runs: a timer started from here
-- would count from the past, as it never does in a node, where events come from callbacks
local uv = require "uv"
local function emit(...)
  uv.update_time()
  events.emit(...)
end

local function install(h)
  local set = assert(hooks.collect(h, "(spec)"))
  hooks.apply(set)
end

local function wait(pred, ms)
  return async.run_until(pred, ms or 3000)
end

local real_report = core.report
local reports
before_each(function()
  reports = {}
  core.report = function(what, msg) reports[#reports + 1] = what .. ": " .. msg end
end)
after_each(function()
  core.report = real_report
  hooks.apply {}
end)

describe("recovery.exclude_after_grace", function()
  it("excludes a voting node down past the grace period, and clears it when it returns", function()
    local f = fake()
    -- a grace period far longer than a scheduling hiccup of a loaded machine
    install(recovery.exclude_after_grace { grace_ms = 2000, api = f.api })
    f.up[N3] = nil
    emit("node_down", N3, "timeout")
    assert.same({}, f.calls) -- still within the grace period (the hook waits in it)
    assert(wait(function() return f.excl[N3] end, 8000))
    assert.same({ "update", "exclude " .. N3 }, f.calls)
    assert.is_true(f.user["recovery.excluded_after_grace"][N3])

    f.up[N3] = true
    emit("node_up", N3, {})
    assert(wait(function() return not f.excl[N3] end))
    assert.same({ "update", "exclude " .. N3, "clear", "update" }, f.calls)
    assert.is_nil(f.user["recovery.excluded_after_grace"])
    assert.same({}, reports)
  end)

  it("does nothing for a node back within the grace period", function()
    local f = fake()
    install(recovery.exclude_after_grace { grace_ms = 2000, api = f.api })
    f.up[N2] = nil
    emit("node_down", N2, "closed")
    f.up[N2] = true
    emit("node_up", N2, {})
    -- until the grace period has ended and the hook has looked again
    assert(wait(function() return f.slept == 1 end, 5000))
    assert.same({}, f.calls)
  end)

  it("acts only on the master, and on a node that becomes master while the node is still down", function()
    local f = fake()
    f.master = false
    install(recovery.exclude_after_grace { grace_ms = 30, retry_ms = 20, api = f.api })
    f.up[N3] = nil
    emit("node_down", N3, "timeout")
    -- the grace period and two retries have passed, not being the master
    assert(wait(function() return f.slept >= 3 end, 2000))
    assert.same({}, f.calls)
    f.master = true
    assert(wait(function() return f.excl[N3] end, 1000))
  end)

  it("keeps an operator's exclusion when it clears its own", function()
    local f = fake()
    f.excl[N2] = true -- the operator's: decommissioning n2
    install(recovery.exclude_after_grace { grace_ms = 20, api = f.api })
    f.up[N3] = nil
    emit("node_down", N3, "timeout")
    assert(wait(function() return f.excl[N3] end))
    f.up[N3] = true
    emit("node_up", N3, {})
    assert(wait(function() return #f.calls == 5 end))
    assert.same({ "update", "exclude " .. N3, "clear", "exclude " .. N2, "update" }, f.calls)
    assert.is_true(f.excl[N2])
    assert.is_nil(f.excl[N3])
  end)

  it("lets a master elected later clear what an earlier one excluded", function()
    local f = fake()
    f.excl[N3] = true
    f.user["recovery.excluded_after_grace"] = { [N3] = true }
    f.master = false
    install(recovery.exclude_after_grace { grace_ms = 20, api = f.api })
    emit("state_committed", f.api.state())
    assert.same({}, f.calls) -- not the master (the hook never waits: it has run to its end)
    f.master = true
    emit("master_changed", N1, N2, 5)
    assert(wait(function() return not f.excl[N3] end))
    assert.same({ "clear", "update" }, f.calls)
  end)

  it("ignores nodes that are not in the voting configuration and peers not asked for", function()
    local f = fake()
    install(recovery.exclude_after_grace { grace_ms = 10, api = f.api, peer = { "n2" } })
    f.up[N3] = nil
    emit("node_down", N3, "timeout")
    emit("node_down", "n9@127.0.0.1:9", "timeout")
    -- marker: a node the recipe does watch, down then back; once its grace period has
    -- ended, so has any the two above would have started before it
    f.up[N2] = nil
    emit("node_down", N2, "timeout")
    f.up[N2] = true
    emit("node_up", N2, {})
    assert(wait(function() return f.slept == 1 end, 2000))
    assert.same({}, f.calls)
  end)

  it("refuses bad options", function()
    assert.has_error(function() recovery.exclude_after_grace() end)
    assert.has_error(function() recovery.exclude_after_grace {} end)
    assert.has_error(function() recovery.exclude_after_grace { grace_ms = -1 } end)
    assert.has_error(function() recovery.exclude_after_grace { grace_ms = 1, peer = { 1 } } end)
  end)
end)

describe("recovery.on_quorum", function()
  it("runs the lost and regained commands, one at a time in event order", function()
    local f = fake()
    f.exec_ms = 40
    install(recovery.on_quorum {
      lost = { "svc-mode", { "read-only" } },
      regained = { cmd = "svc-mode", args = { "read-write" } },
      timeout_ms = 500, api = f.api,
    })
    emit("quorum_lost")
    emit("quorum_regained")
    emit("quorum_lost")
    assert(wait(function() return #f.execs == 3 and f.execs[3].finish end))
    local modes = {}
    for i, e in ipairs(f.execs) do
      modes[i] = e.args[1]
      assert.equal("svc-mode", e.cmd)
      assert.equal(500, e.timeout)
      if i > 1 then assert.is_true(e.start >= f.execs[i - 1].finish) end
    end
    assert.same({ "read-only", "read-write", "read-only" }, modes)
  end)

  it("refuses bad options", function()
    assert.has_error(function() recovery.on_quorum {} end)
    assert.has_error(function() recovery.on_quorum { lost = { 1 } } end)
    assert.has_error(function() recovery.on_quorum { lost = { "x", "notalist" } } end)
  end)

  it("runs a real command through clusterlua.exec when no api is given", function()
    require "clusterlua" -- exec needs the runtime: a build where this fails fails here
    local out = os.tmpname()
    install(recovery.on_quorum { lost = { "sh", { "-c", "echo lost >> " .. out } } })
    emit("quorum_lost")
    assert(wait(function()
      local fh = io.open(out)
      local s = fh and fh:read "*a"
      if fh then fh:close() end
      return s == "lost\n"
    end))
    os.remove(out)
  end)
end)

describe("recovery.restart_on_down", function()
  it("restarts when the peer goes down, not for other peers or other reasons", function()
    local f = fake()
    install(recovery.restart_on_down {
      peer = "n2", cmd = "systemctl", args = { "restart", "proxy" }, reasons = { "timeout" }, api = f.api,
    })
    f.up[N2], f.up[N3] = nil, nil
    emit("node_down", N3, "timeout")
    emit("node_down", N2, "left")
    assert.equal(0, #f.execs)
    emit("node_down", N2, "timeout")
    assert.equal(1, #f.execs)
    assert.same({ "restart", "proxy" }, f.execs[1].args)
  end)

  it("backs off while the peer flaps, doubling up to the maximum, then starts over", function()
    local f = fake()
    install(recovery.restart_on_down { peer = N2, cmd = "restart-svc", backoff_ms = 40, max_backoff_ms = 80, api = f.api })
    f.up[N2] = nil
    local function down_and_wait(n)
      emit("node_down", N2, "closed")
      assert(wait(function() return #f.execs == n end))
    end
    down_and_wait(1)
    down_and_wait(2)
    down_and_wait(3)
    down_and_wait(4)
    local gaps = {}
    for i = 2, 4 do gaps[#gaps + 1] = f.execs[i].start - f.execs[i - 1].start end
    assert.is_true(gaps[1] >= 38 and gaps[1] < 160, "first gap " .. gaps[1]) -- upper bounds leave room for a loaded machine
    assert.is_true(gaps[2] >= 78 and gaps[2] < 240, "second gap " .. gaps[2])
    assert.is_true(gaps[3] >= 78 and gaps[3] < 240, "capped gap " .. gaps[3])
    -- the rule under test: once the peer has been quiet for longer than max_backoff_ms
    -- since the last restart, the backoff starts over (a condition on the clock, bounded)
    local last = f.execs[4].start
    assert(proc.wait_until(function() return core.now() - last > 80 + 10 end, 2000))
    local t0 = core.now()
    down_and_wait(5)
    assert.is_true(f.execs[5].start - t0 < 20)
  end)

  it("folds down events that come while a restart waits, and skips a peer that is back", function()
    local f = fake()
    -- a backoff long enough that a slow machine (sanitizers) cannot run past it between two
    -- steps: the peer must come back while the restart still waits
    install(recovery.restart_on_down { peer = N2, cmd = "restart-svc", backoff_ms = 1000, api = f.api })
    f.up[N2] = nil
    emit("node_down", N2, "closed")
    assert.equal(1, #f.execs)
    emit("node_down", N2, "closed") -- waits for the backoff
    emit("node_down", N2, "closed") -- folded
    emit("node_down", N2, "timeout") -- folded
    assert(wait(function() return #f.execs == 2 end))
    emit("node_down", N2, "closed") -- waits the backoff, but the peer comes back
    f.up[N2] = true
    -- once this one has decided, after its backoff, the folded ones would have run too
    assert(wait(function() return f.logs[#f.logs]:match "is back, no restart" end, 5000))
    assert.equal(2, #f.execs)
  end)

  it("by default leaves alone a peer that left on purpose, and restarts one that failed", function()
    local f = fake()
    local ran = {} -- the recipe logs each restart with the reason that caused it
    f.api.log = function(_, msg)
      local reason = msg:match "^restart_on_down %(%S+ (%a+)%): ran "
      if reason then ran[#ran + 1] = reason end
    end
    install(recovery.restart_on_down { peer = "n2", cmd = "restart-svc", backoff_ms = 1, api = f.api })
    f.up[N2] = nil
    emit("node_down", N2, "left")
    emit("node_down", N2, "closed") -- the marker: handled after the "left" one
    assert(wait(function() return #ran >= 1 end))
    emit("node_down", N2, "timeout")
    assert(wait(function() return #ran >= 2 end))
    assert.same({ "closed", "timeout" }, ran)
    assert.equal(2, #f.execs)
    -- asked for, "left" counts too
    local g = fake()
    install(recovery.restart_on_down { peer = "n2", cmd = "restart-svc", reasons = { "left" }, api = g.api })
    g.up[N2] = nil
    emit("node_down", N2, "left")
    assert(wait(function() return #g.execs == 1 end))
  end)

  it("refuses bad options", function()
    assert.has_error(function() recovery.restart_on_down { cmd = "x", reasons = { "lfet" } } end)
    assert.has_error(function() recovery.restart_on_down { peer = "n2" } end)
    assert.has_error(function() recovery.restart_on_down { cmd = "x", backoff_ms = 10, max_backoff_ms = 5 } end)
    assert.has_error(function() recovery.restart_on_down { cmd = "x", reasons = "timeout" } end)
  end)
end)

describe("recovery.merge and the examples", function()
  it("merges recipes into one hooks table and refuses a name given twice", function()
    local f = fake()
    local h = recovery.merge(
      recovery.exclude_after_grace { grace_ms = 10, api = f.api },
      recovery.on_quorum { lost = { "true" }, api = f.api },
      recovery.restart_on_down { peer = "n2", cmd = "true", api = f.api },
      { node_up = function() end })
    assert(hooks.collect(h, "(spec)"))
    assert.is_function(h.node_down["recovery.exclude_after_grace"])
    assert.is_function(h.node_down["recovery.restart_on_down:n2"])
    assert.is_function(h.node_up["hooks:node_up"])
    assert.has_error(function()
      recovery.merge(recovery.on_quorum { lost = { "a" }, api = f.api }, recovery.on_quorum { lost = { "b" }, api = f.api })
    end)
  end)

  it("every example's hooks file loads", function()
    require "clusterlua" -- the examples' hooks use it: a build where this fails fails here
    local p = io.popen("ls " .. proc.root .. "/examples/recovery/*/hooks.lua")
    local n = 0
    for file in p:lines() do
      local res, err = hooks.read(file)
      assert(res, err)
      assert(hooks.collect(res, file))
      n = n + 1
    end
    p:close()
    assert.is_true(n >= 3)
  end)
end)
