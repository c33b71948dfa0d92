-- GET /_events (Server-Sent Events) and `clusterlua events`, against a real 3-node cluster:
-- order and ids, resuming with since / Last-Event-ID, the gap event, events born in Lua,
-- the stream cap, and a client that never reads: dropped, counted, with bounded memory,
-- while heartbeats and the other clients go on.
local cjson = require "cjson.safe"
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"
local sse = require "helpers.sse"

local function esc(s) return (s:gsub("%p", "%%%0")) end

local HOOKS = cluster.HOOKS_PRELUDE .. [[
return {
  node_down = function(n, r) out("node_down", n, r) end,
  master_changed = function(new, old, term) out("master_changed", new, old, term) end,
  reloaded = function() error("boom from the reloaded hook") end,
  -- runs past its budget (200 ms by default) once per peer at start: aborted
  node_up = function() while true do end end,
}
]]

local function rss_kb(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local s = f:read "*a"
  f:close()
  return tonumber(s:match "VmRSS:%s*(%d+)")
end

local function metric(c, i, name)
  local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[i] .. "/metrics" })
  p:wait_exit(5000)
  return tonumber(p.stdout:match("\n" .. name .. " ([%d%.e+]+)"))
end

describe("event stream", function()
  local c
  setup(function()
    c = cluster.new { n = 3, hooks = HOOKS, extra = "transport = { heartbeat_ms = 100, timeout_ms = 600 }," }
    -- under AddressSanitizer (make test-asan) freed memory waits in a quarantine: off,
    -- so that RSS shows what the node keeps
    local asan = os.getenv "ASAN_OPTIONS"
    c:start_all(nil, { CLUSTERLUA_FAULTS = "1", ASAN_OPTIONS = asan and (asan .. ":quarantine_size_mb=0") or nil })
    assert.truthy(c:wait_master(15000), "no master")
  end)
  teardown(function()
    if c then c:cleanup() end
  end)

  it("streams the node's events in order, with ids INCARNATION-SEQ, history first", function()
    local s = sse.open(c.admin[1])
    -- the history: this node saw its peers come up and a master elected
    assert.truthy(proc.wait_until(function() return s.find("master_changed") ~= nil end, 5000), "no master_changed")
    assert.equal(200, s.status)
    assert.truthy(s.head:lower():find("content-type: text/event-stream", 1, true))
    local mc = s.find("master_changed")
    assert.is_number(mc.data.term)
    assert.truthy(mc.data.master:match "^node%d@", "master names a node")
    assert.is_number(mc.data.time)
    assert.truthy(s.find("node_up", function(d) return d.node == c.names[2] end), "node_up of node2")
    assert.truthy(s.find("state_committed", function(d) return type(d.version) == "number" end))
    -- new events arrive live, in order, after the history
    local before = #s.events
    local code = c:http(1, "POST", "/_test/events?n=5")
    assert.equal(200, code)
    -- (events born in Lua, such as the hooks' aborts at start, may come in between)
    local tests = {}
    assert.truthy(proc.wait_until(function()
      tests = {}
      for k = before + 1, #s.events do
        if s.events[k].event == "test" then tests[#tests + 1] = s.events[k] end
      end
      return #tests >= 5
    end, 5000))
    s.close()
    local inc0, last = nil, 0
    for _, e in ipairs(s.events) do
      local inc, seq = sse.split(e.id)
      assert.truthy(inc, "id " .. tostring(e.id))
      inc0 = inc0 or inc
      assert.equal(inc0, inc, "one incarnation")
      assert.is_true(seq > last, "ids increase")
      last = seq
    end
    for k = 0, 4 do assert.equal(k, tests[k + 1].data.n) end
  end)

  it("resumes after ?since=ID or Last-Event-ID, and says `gap` when the history no longer reaches back", function()
    local code, j = c:http(1, "POST", "/_test/events?n=3")
    assert.equal(200, code)
    local inc = sse.split(select(1, (function()
      local s = sse.open(c.admin[1])
      assert.truthy(proc.wait_until(function() return #s.events > 0 end, 5000))
      s.close()
      return s.events[1].id
    end)()))
    local since = ("%s-%d"):format(inc, j.last - 2)
    for _, how in ipairs { "query", "header" } do
      local s = how == "query" and sse.open(c.admin[1], { path = "/_events?since=" .. since })
        or sse.open(c.admin[1], { headers = { ["Last-Event-ID"] = since } })
      assert.truthy(proc.wait_until(function() return #s.events >= 2 end, 5000), how)
      assert.equal(("%s-%d"):format(inc, j.last - 1), s.events[1].id, how)
      assert.equal(("%s-%d"):format(inc, j.last), s.events[2].id, how)
      s.close()
    end
    -- another incarnation (a restart): gap first, then the whole history
    local s = sse.open(c.admin[1], { path = "/_events?since=1-1" })
    assert.truthy(proc.wait_until(function() return #s.events >= 2 end, 5000))
    assert.equal("gap", s.events[1].event)
    assert.is_nil(s.events[1].id, "a gap has no id of its own")
    assert.truthy(s.events[1].data.reason:find("restarted", 1, true))
    s.close()
    -- older than the history (1024 events): gap, then the oldest kept
    code = c:http(1, "POST", "/_test/events?n=1100")
    assert.equal(200, code)
    s = sse.open(c.admin[1], { path = "/_events?since=" .. since })
    assert.truthy(proc.wait_until(function() return #s.events >= 2 end, 5000))
    assert.equal("gap", s.events[1].event)
    assert.truthy(s.events[1].data.reason:find("no longer", 1, true))
    assert.equal(s.events[1].data.oldest, s.events[2].id)
    s.close()
    -- a since that is no id is the client's mistake
    local code2, e = c:http(1, "GET", "/_events?since=yesterday")
    assert.equal(400, code2)
    assert.truthy(e.error:find("not an event id", 1, true))
  end)

  it("carries events born in Lua: reloads, hook errors and hook aborts", function()
    local s = sse.open(c.admin[2])
    assert.truthy(proc.wait_until(function() return s.status == 200 end, 5000))
    assert.truthy(proc.wait_until(function()
      return s.find("hook_abort", function(d) return tostring(d.error):find("EBUDGET", 1, true) end)
    end, 5000), "the node_up hook's abort, in the history")
    assert.truthy(s.find("hook_abort").data.hook:find("node_up", 1, true))
    local code = c:http(2, "POST", "/_reload")
    assert.equal(200, code)
    assert.truthy(proc.wait_until(function()
      return s.find("reloaded") and s.find("hook_error", function(d) return tostring(d.error):find("boom", 1, true) end)
    end, 5000), "reloaded and hook_error on the stream")
    local r = s.find("reloaded")
    assert.equal("admin", r.data.why)
    assert.is_table(r.data.changed)
    assert.truthy(s.find("hook_error").data.hook:find("reloaded", 1, true))
    s.close()
  end)

  it("caps the streams (16): the next one gets 429 at once, and a slot frees when a client goes", function()
    local open = {}
    for i = 1, 16 do
      open[i] = sse.open(c.admin[3])
    end
    assert.truthy(proc.wait_until(function()
      for _, s in ipairs(open) do if s.status ~= 200 then return false end end
      return true
    end, 5000), "16 streams open")
    local code, j = c:http(3, "GET", "/_events")
    assert.equal(429, code)
    assert.truthy(j.error:find("too many event streams", 1, true))
    open[1].close()
    assert.truthy(proc.wait_until(function()
      local s = sse.open(c.admin[3])
      local ok = proc.wait_until(function() return s.status ~= nil end, 2000) and s.status == 200
      s.close()
      return ok
    end, 5000), "a slot freed")
    for _, s in ipairs(open) do s.close() end
    -- the stream is not an ordinary response: the history alone with follow=false
    local code2, _, text = c:http(3, "GET", "/_events?follow=false")
    assert.equal(200, code2)
    assert.truthy(text:find("event: node_up", 1, true))
  end)

  it("keeps a quiet stream open past the request timers, with a `: ping` every 15 s", function()
    local s = sse.open(c.admin[2], { path = "/_events?since=1-1" })
    assert.truthy(proc.wait_until(function() return s.status == 200 end, 5000))
    local t0 = proc.now()
    -- header (2 s), handler and request (10 s) deadlines are long past at the first ping
    assert.truthy(proc.wait_until(function() return s.comments >= 1 end, 20000), "no ping within 20 s")
    local took = proc.now() - t0
    assert.is_true(took >= 14000, "ping after " .. took .. " ms")
    assert.is_false(s.closed)
    s.close()
  end)

  it("drops a client that never reads (counted, bounded memory) without slowing heartbeats or other clients", function()
    local dropped0 = metric(c, 1, "clusterlua_event_streams_dropped_total") or 0
    local open0 = metric(c, 1, "clusterlua_event_streams")
    local stuck = sse.open(c.admin[1], { paused = true, rcvbuf = 4096 })
    local reader = sse.open(c.admin[1])
    assert.truthy(proc.wait_until(function() return reader.status == 200 end, 5000))
    assert.truthy(proc.wait_until(function() return metric(c, 1, "clusterlua_event_streams") == open0 + 2 end, 5000))
    local marks = {}
    for i = 1, 3 do marks[i] = #c.nodes[i].lines end
    local rss0 = rss_kb(c.nodes[1].pid)
    -- 4 MB of events in batches the reading client keeps up with
    local last
    for _ = 1, 40 do
      local code, j = c:http(1, "POST", "/_test/events?n=100&bytes=1000")
      assert.equal(200, code)
      last = j.last
      assert.truthy(proc.wait_until(function()
        local e = reader.events[#reader.events]
        return e and select(2, sse.split(e.id)) == last
      end, 5000), "the reading client keeps up")
    end
    assert.truthy(proc.wait_until(function()
      return (metric(c, 1, "clusterlua_event_streams_dropped_total") or 0) >= dropped0 + 1
    end, 5000), "the stuck client was dropped")
    assert.equal(open0 + 1, metric(c, 1, "clusterlua_event_streams"))
    -- the reader saw every event, in order, none missing
    local prev
    for _, e in ipairs(reader.events) do
      local _, seq = sse.split(e.id)
      if prev then assert.equal(prev + 1, seq) end
      prev = seq
    end
    -- memory: the history and the stuck client's bound, not the 4 MB sent
    local grew = rss_kb(c.nodes[1].pid) - rss0
    assert.is_true(grew < 8 * 1024, ("RSS grew by %d KiB"):format(grew))
    -- heartbeats went on: every peer connected, no node_down anywhere (the marker: a
    -- fresh /_nodes answer after the flood, on the same connections)
    local code, nodes = c:http(1, "GET", "/_nodes")
    assert.equal(200, code)
    for _, n in ipairs(nodes.nodes) do
      assert.is_true(n.connected, n.name)
      if not n.self then assert.is_true(n.last_heartbeat_ms < 600, n.name .. " heartbeat " .. n.last_heartbeat_ms) end
    end
    for i = 1, 3 do assert.is_nil(c.nodes[i]:find_line("^EVENT node_down", nil, marks[i] + 1), "node_down on node" .. i) end
    stuck.close()
    reader.close()
  end)
end)

describe("clusterlua events", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("prints the history and exits; with --follow prints a failover's events as they happen", function()
    c = cluster.new { n = 3, extra = "transport = { heartbeat_ms = 100, timeout_ms = 600 }," }
    c:start_all()
    local master = c:wait_master(15000)
    assert.truthy(master, "no master")
    local mi = c:index_of(master)
    local watch = mi == 1 and 2 or 1
    local code, out, err = proc.run(proc.bin, { "events", "--admin", c.admin[watch] })
    assert.equal(0, code, err)
    assert.truthy(out:find("master_changed master=" .. master, 1, true), out)
    code, out = proc.run(proc.bin, { "events", "--admin", c.admin[watch], "--json" })
    assert.equal(0, code)
    local first = cjson.decode(out:match "^[^\n]+")
    assert.truthy(first and first.event and first.id and first.time, out:sub(1, 200))

    local f = proc.start(proc.bin, { "events", "--admin", c.admin[watch], "--follow" })
    assert.truthy(f:wait_for_line("master_changed master=" .. esc(master), 5000), "history first")
    local mark = #f.lines
    c.nodes[mi]:kill "sigkill"
    assert.truthy(f:wait_for_line("node_down node=" .. esc(master) .. " reason=", 10000, "stdout", mark + 1),
      "node_down printed:\n" .. f.stdout)
    assert.truthy(f:wait_for_line("master_changed master=node%d", 10000, "stdout", mark + 1), "new master printed")
    f:kill "sigint"
    assert.truthy(proc.wait_until(function() return f.exited end, 5000))
    assert.equal(0, f.code)
    -- a wrong endpoint is an error, not a hang
    assert.equal(1, (proc.run(proc.bin, { "events", "--admin", "127.0.0.1:1", "--follow" })))
  end)
end)
