-- One duration check (issue 16): clusterlua.check.ms is the only test of a
-- milliseconds argument; async, events, hooks and recovery used to carry a copy each.
-- Every path refuses the same values with the same words.
local check = require "clusterlua.check"
local async = require "clusterlua.async"
local events = require "clusterlua.events"
local hooks = require "clusterlua.hooks"
local recovery = require "clusterlua.recovery"

local BAD = { -1, 0 / 0, math.huge, "10", true, {} }
local GOOD = { 0, 0.5, 10, 2 ^ 40 }

local function why(v) return "milliseconds expected (a number >= 0), got " .. tostring(v) end

-- the message of an error raised by fn, without the position prefix
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "no error raised")
  return tostring(err)
end

describe("durations: one check for every milliseconds argument", function()
  it("accepts finite numbers >= 0 and refuses anything else, saying what it got", function()
    for _, v in ipairs(GOOD) do assert.equal(v, check.ms(v)) end
    for _, v in ipairs(BAD) do
      local ok, err = check.ms(v)
      assert.is_nil(ok)
      assert.equal(why(v), err)
    end
  end)

  it("gives the same words through async, events, hooks and recovery", function()
    for _, v in ipairs(BAD) do
      local w = why(v)
      assert.truthy(raised(function() async.sleep(v) end):find("bad argument #1 to 'sleep' (" .. w .. ")", 1, true))
      assert.truthy(raised(function() events.set_budget(v) end):find("bad argument (ms): " .. w, 1, true))
      local ok, err = hooks.collect({ budget_ms = v }, "hooks.lua")
      assert.is_nil(ok)
      assert.equal("hooks.lua: budget_ms: " .. w, err)
      assert.truthy(raised(function() recovery.exclude_after_grace { grace_ms = v } end)
        :find("bad argument #1 to 'exclude_after_grace' (grace_ms: " .. w .. ")", 1, true))
    end
  end)
end)
