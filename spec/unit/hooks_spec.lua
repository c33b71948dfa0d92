-- Hooks: registration by name and order, reload without duplicates, error containment,
-- the time budget (a hook stuck in a loop is aborted), concurrency and cancellation.
-- Unit level: events are emitted by hand, no node runs.
local core = require "clusterlua.c.core"
local events = require "clusterlua.events"
local scheduler = require "clusterlua.scheduler"
local hooks = require "clusterlua.hooks"
local async = require "clusterlua.async"
local proc = require "helpers.proc"
local go = proc.go

local tmpdir, write = proc.tmpdir, proc.write

-- Captures core.report and core.count_hook_abort for the duration of a test.
local reports, aborts
local real_report, real_count = core.report, core.count_hook_abort
before_each(function()
  reports, aborts = {}, 0
  core.report = function(what, msg) reports[#reports + 1] = { what = what, msg = msg } end
  core.count_hook_abort = function() aborts = aborts + 1 end
end)
after_each(function()
  core.report, core.count_hook_abort = real_report, real_count
  for event in pairs(events.known) do
    for _, n in ipairs(events.list(event)) do events.off(event, n) end
  end
  hooks.apply {}
  events.set_budget(200)
end)

describe("events registration", function()
  it("runs hooks for one event in registration order, replacing by name in place", function()
    local seen = {}
    events.on("node_up", "a", function(n) seen[#seen + 1] = "a:" .. n end)
    events.on("node_up", "b", function(n) seen[#seen + 1] = "b:" .. n end)
    events.on("node_up", "c", function(n) seen[#seen + 1] = "c:" .. n end)
    events.on("node_up", "b", function(n) seen[#seen + 1] = "B:" .. n end)
    events.emit("node_up", "x@h:1")
    assert.same({ "a:x@h:1", "B:x@h:1", "c:x@h:1" }, seen)
    assert.same({ "a", "b", "c" }, events.list("node_up"))
    assert.is_true(events.off("node_up", "a"))
    assert.is_false(events.off("node_up", "a"))
    assert.same({ "b", "c" }, events.list("node_up"))
  end)

  it("refuses misuse with a bad argument error", function()
    assert.has_error(function() events.on("nope", "a", print) end)
    assert.has_error(function() events.on("node_up", 1, print) end)
    assert.has_error(function() events.on("node_up", "a", 1) end)
    assert.has_error(function() events.on("node_up", "a", function() end, { budget_ms = -1 }) end)
    assert.has_error(function() events.set_budget("x") end)
    local ok, err = pcall(events.on, "nope", "a", print)
    assert.is_false(ok)
    assert.matches("bad argument #1 %(event%)", err)
  end)

  it("passes every argument, nils included", function()
    local got
    events.on("master_changed", "m", function(...) got = { n = select("#", ...), ... } end)
    events.emit("master_changed", "n1@h:1", nil, 7)
    assert.same({ n = 3, "n1@h:1", nil, 7 }, got)
  end)
end)

describe("hooks from a topology", function()
  it("registers a file's hooks by name and a reload replaces them without duplicates", function()
    local d = tmpdir()
    local topo = { file = d .. "/topology.lua", hooks = "hooks.lua" }
    write(d .. "/hooks.lua", [[
_G.HOOK_CALLS = _G.HOOK_CALLS or {}
return {
  node_down = function(n, r) table.insert(_G.HOOK_CALLS, "v1 " .. n .. " " .. r) end,
  node_up = { one = function() table.insert(_G.HOOK_CALLS, "up1") end,
              two = function() table.insert(_G.HOOK_CALLS, "up2") end },
}]])
    assert(hooks.load(topo))
    assert(hooks.load(topo))
    assert.same({ "hooks:node_down" }, events.list("node_down"))
    assert.same({ "one", "two" }, events.list("node_up"))
    _G.HOOK_CALLS = {}
    events.emit("node_down", "n2@h:2", "timeout")
    events.emit("node_up", "n2@h:2", {})
    assert.same({ "v1 n2@h:2 timeout", "up1", "up2" }, _G.HOOK_CALLS)

    -- v2: node_down changes, node_up.two goes away, a hook from elsewhere stays
    events.on("node_up", "other", function() table.insert(_G.HOOK_CALLS, "other") end)
    write(d .. "/hooks.lua", [[
return {
  node_down = function(n, r) table.insert(_G.HOOK_CALLS, "v2 " .. n .. " " .. r) end,
  node_up = { one = function() table.insert(_G.HOOK_CALLS, "up1'") end },
}]])
    assert(hooks.load(topo))
    _G.HOOK_CALLS = {}
    events.emit("node_down", "n2@h:2", "closed")
    events.emit("node_up", "n2@h:2", {})
    assert.same({ "v2 n2@h:2 closed", "up1'", "other" }, _G.HOOK_CALLS)
    assert.same({ "hooks:node_down" }, events.list("node_down"))
    os.execute("rm -rf '" .. d .. "'")
    _G.HOOK_CALLS = nil
  end)

  it("keeps the old hooks when the new file is broken, and says why", function()
    local d = tmpdir()
    local topo = { file = d .. "/topology.lua", hooks = "hooks.lua" }
    write(d .. "/hooks.lua", "return { quorum_lost = function() _G.QL = (_G.QL or 0) + 1 end }")
    assert(hooks.load(topo))
    local broken = {
      { "return { quorum_lost = function() end", "expected" },             -- syntax
      { "error('boom at load')", "boom at load" },                         -- raises
      { "return { quorum_gone = function() end }", "unknown hook event" }, -- unknown event
      { "return { node_up = { x = 1 } }", "node_up.x" },                   -- bad entry
      { "return { budget_ms = 'soon', node_up = function() end }", "budget_ms" },
      { "return 42", "must be a table" },
    }
    for _, case in ipairs(broken) do
      write(d .. "/hooks.lua", case[1])
      local ok, err = hooks.load(topo)
      assert.is_nil(ok)
      assert.matches(case[2], err, 1, true)
      assert.matches("hooks.lua", err, 1, true)
      _G.QL = 0
      events.emit("quorum_lost")
      assert.equal(1, _G.QL)
      assert.same({ "hooks:quorum_lost" }, events.list("quorum_lost"))
    end
    os.execute("rm -rf '" .. d .. "'")
    _G.QL = nil
  end)

  it("accepts an inline table with per-hook options", function()
    local topo = { file = "/nowhere/topology.lua", hooks = {
      budget_ms = 50,
      node_up = { slow = { fn = function() end, budget_ms = 1000, serialize = true }, fast = function() end },
    } }
    assert(hooks.load(topo))
    local _, o1 = events.get("node_up", "slow")
    local _, o2 = events.get("node_up", "fast")
    assert.same({ budget_ms = 1000, serialize = true }, o1)
    assert.same({ budget_ms = 50, serialize = false }, o2)
  end)
end)

describe("hook isolation", function()
  it("reports an error with the hook's name and a traceback; the other hooks still run", function()
    local after = false
    events.on("node_down", "bad", function() local t = nil; return t.field end)
    events.on("node_down", "good", function() after = true end)
    events.emit("node_down", "n@h:1", "closed")
    assert.is_true(after)
    assert.equal(1, #reports)
    assert.matches("hook bad (node_down)", reports[1].what, 1, true)
    assert.matches("attempt to index", reports[1].msg)
    assert.matches("stack traceback", reports[1].msg)
    assert.equal(0, aborts)
  end)

  it("reports an error raised after a wait, with the hook's name", function()
    events.on("node_up", "late", function()
      async.sleep(5)
      error("late failure")
    end)
    events.emit("node_up", "n@h:1", {})
    assert(async.run_until(function() return #reports > 0 end, 2000))
    assert.equal(1, #reports)
    assert.matches("hook late (node_up)", reports[1].what, 1, true)
    assert.matches("late failure", reports[1].msg)
  end)

  it("aborts a hook stuck in `while true do end` within a bound, and the caller carries on", function()
    events.on("quorum_lost", "spin", function() while true do end end, { budget_ms = 100 })
    local ran_next = false
    events.on("quorum_lost", "next", function() ran_next = true end)
    local t0 = core.now()
    events.emit("quorum_lost")
    local took = core.now() - t0
    assert.is_true(took >= 100 and took < 600, "took " .. took .. " ms")
    assert.is_true(ran_next)
    assert.equal(1, aborts)
    assert.equal(1, #reports)
    assert.matches("hook spin (quorum_lost)", reports[1].what, 1, true)
    assert.matches("EBUDGET", reports[1].msg)
    assert.matches("budget 100 ms", reports[1].msg)
  end)

  it("uses the default budget, and aborts a loop that the JIT had compiled before", function()
    events.set_budget(80)
    -- hot and compiled first: registering it must flush its traces
    local function spin(n)
      local x = 0
      while n == nil or x < n do x = x + 1 end
      return x
    end
    assert.equal(3e7, spin(3e7))
    events.on("quorum_regained", "spin", spin)
    local t0 = core.now()
    events.emit("quorum_regained")
    local took = core.now() - t0
    assert.is_true(took >= 80 and took < 600, "took " .. took .. " ms")
    assert.equal(1, aborts)
  end)

  it("aborts a loop in a hooks file, in functions the hook defines, and after a wait", function()
    local d = tmpdir()
    write(d .. "/hooks.lua", [[
local async = require "clusterlua.async"
local function helper() local t = {} ; while true do t[1] = (t[1] or 0) + 1 end end
return {
  budget_ms = 60,
  node_up = function() helper() end,
  node_down = function()
    async.sleep(10)
    local inner = function() while true do end end
    inner()
  end,
}]])
    assert(hooks.load { file = d .. "/topology.lua", hooks = "hooks.lua" })
    events.emit("node_up", "n@h:1", {})
    assert.equal(1, aborts)
    events.emit("node_down", "n@h:1", "timeout")
    assert.equal(1, aborts) -- sleeping: not running yet
    local t0 = core.now()
    assert(async.run_until(function() return aborts == 2 end, 2000))
    assert.is_true(core.now() - t0 < 1000)
    assert.matches("hook hooks:node_down (node_down)", reports[2].what, 1, true)
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("keeps aborting a loop that catches the abort with pcall", function()
    events.on("quorum_lost", "stubborn", function()
      local caught = 0
      while true do
        pcall(function() while true do end end)
        caught = caught + 1
      end
    end, { budget_ms = 50 })
    local t0 = core.now()
    events.emit("quorum_lost")
    assert.is_true(core.now() - t0 < 600)
    assert.equal(1, aborts)
  end)

  it("does not abort a hook that yields often, however long it runs in total", function()
    local done = false
    events.on("node_up", "patient", function()
      local t0 = core.now()
      while core.now() - t0 < 250 do
        local t1 = core.now()
        while core.now() - t1 < 10 do end -- 10 ms of work, then a wait
        async.sleep(1)
      end
      done = true
    end, { budget_ms = 50 })
    events.emit("node_up", "n@h:1", {})
    assert(async.run_until(function() return done end, 3000))
    assert.equal(0, aborts)
    assert.equal(0, #reports)
  end)

  it("has no budget when budget_ms is 0", function()
    local done = false
    events.on("node_up", "long", function()
      local t0 = core.now()
      while core.now() - t0 < 150 do end
      done = true
    end, { budget_ms = 0 })
    events.emit("node_up", "n@h:1", {})
    assert.is_true(done)
    assert.equal(0, aborts)
  end)

  it("applies the hook's budget to coroutines the hook starts", function()
    events.on("node_up", "parent", function()
      async.spawn(function()
        async.sleep(5)
        while true do end
      end)
    end, { budget_ms = 50 })
    events.emit("node_up", "n@h:1", {})
    assert(async.run_until(function() return aborts == 1 end, 2000))
  end)

  it("restores a debug hook someone else had set, and removes its own", function()
    local calls = 0
    local function mine() calls = calls + 1 end
    debug.sethook(mine, "", 100000)
    local resumed = 0
    events.on("node_up", "x", function() async.sleep(1) resumed = resumed + 1 end)
    events.emit("node_up", "n@h:1", {})
    assert.equal(mine, (debug.gethook()))
    debug.sethook()
    events.emit("node_up", "n@h:1", {})
    assert.is_nil((debug.gethook()))
    -- and still none once both calls have resumed after their wait and finished
    assert(async.run_until(function() return resumed == 2 end, 2000))
    assert.is_nil((debug.gethook()))
  end)
end)

describe("hook concurrency", function()
  it("runs a call beside one still waiting, each in its own coroutine", function()
    local log = {}
    events.on("node_down", "w", function(n)
      log[#log + 1] = "start " .. n
      async.sleep(30)
      log[#log + 1] = "end " .. n
    end)
    events.emit("node_down", "a@h:1", "closed")
    events.emit("node_down", "b@h:1", "closed")
    assert.same({ "start a@h:1", "start b@h:1" }, log)
    assert(async.run_until(function() return #log == 4 end, 2000))
  end)

  it("queues calls of a serialized hook until the previous call has finished", function()
    local log = {}
    events.on("node_down", "s", function(n)
      log[#log + 1] = "start " .. n
      async.sleep(20)
      log[#log + 1] = "end " .. n
    end, { serialize = true })
    events.emit("node_down", "a@h:1", "closed")
    events.emit("node_down", "b@h:1", "closed")
    events.emit("node_down", "c@h:1", "closed")
    assert.same({ "start a@h:1" }, log)
    assert(async.run_until(function() return #log == 6 end, 2000))
    assert.same({ "start a@h:1", "end a@h:1", "start b@h:1", "end b@h:1", "start c@h:1", "end c@h:1" }, log)
  end)

  it("moves a serialized queue on after a call that failed", function()
    local log = {}
    events.on("node_down", "s", function(n)
      async.sleep(5)
      log[#log + 1] = n
      if n == "a@h:1" then error("first fails") end
    end, { serialize = true })
    events.emit("node_down", "a@h:1", "closed")
    events.emit("node_down", "b@h:1", "closed")
    assert(async.run_until(function() return #log == 2 end, 2000))
    assert.equal(1, #reports)
  end)
end)

describe("cancellation", function()
  it("never resumes a cancelled coroutine, nor one it started", function()
    local steps = {}
    local co = events.spawn_hook("duty", function()
      async.spawn(function()
        async.sleep(10)
        steps[#steps + 1] = "child"
      end)
      steps[#steps + 1] = "before"
      async.sleep(10)
      steps[#steps + 1] = "after"
    end)
    scheduler.cancel(co)
    -- marker: a coroutine that is not cancelled, waiting as long, started after both
    local marker = false
    async.spawn(function() async.sleep(10) marker = true end)
    assert(async.run_until(function() return marker end, 2000))
    assert.same({ "before" }, steps)
    assert.is_true(scheduler.is_cancelled(co))
    assert.equal(0, #reports)
  end)

  it("does not resume a cancelled coroutine waiting on exec", function()
    local resumed = false
    local co = events.spawn_hook("duty", function()
      async.exec("sleep", { "0.05" })
      resumed = true
    end)
    scheduler.cancel(co)
    -- marker: an exec that is not cancelled, started later and running longer
    local marker = false
    async.spawn(function() async.exec("sleep", { "0.1" }) marker = true end)
    assert(async.run_until(function() return marker end, 5000))
    assert.is_false(resumed)
  end)

  it("still resumes coroutines that were not cancelled", function()
    go(function()
      async.sleep(5)
    end, 2000)
  end)
end)
