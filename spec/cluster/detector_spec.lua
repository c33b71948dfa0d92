-- Failure detection with real nodes: the bounds the configuration gives (design.md §4).
-- A stopped node (SIGSTOP: its connections stay open, nothing comes out) is reported down
-- with reason timeout no sooner than its silence allows and no later than
-- transport.timeout_ms after its last frame, when the machine is not overloaded; a
-- connection at rest stays up on beats alone.
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local HB, TIMEOUT = 100, 300
-- the hooks print from the Lua loop and this process reads the line: a loaded CI
-- machine may add this much between the detector's verdict and the line's arrival
local DELIVERY = 500

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("failure detection", function()
  local c
  after_each(function()
    if c then
      for _, p in pairs(c.nodes) do if not p.exited then p:kill "sigcont" end end
      c:cleanup()
    end
    c = nil
  end)

  -- a timeout shorter than twice the default heartbeat (200 ms), given alone: the
  -- heartbeat follows it (at most half of it) rather than the node refusing to start
  it("takes timeout_ms = 200 alone: the nodes start, form and stay up on beats of 100 ms", function()
    c = cluster.new { n = 3, extra = "transport = { timeout_ms = 200 }," }
    c:start_all()
    assert.truthy(c:wait_master(15000), "no master (a node refused the topology?)\n" .. c:outputs())
    -- beats of 100 ms keep a 200 ms timeout at rest: the marker is each node's beats
    -- counter moving on by more than 10 timeouts' worth with every peer still connected
    local function beats(i)
      local code, _, body = c:http(i, "GET", "/metrics")
      return code == 200 and tonumber((body or ""):match 'clusterlua_beats_total{direction="in"} (%d+)') or 0
    end
    local b0 = beats(1)
    assert.truthy(proc.wait_until(function()
      local code, j = c:http(1, "GET", "/_nodes")
      if code ~= 200 then return false end
      local up = 0
      for _, n in ipairs(j.nodes) do if n.connected and not n.self then up = up + 1 end end
      return up == 2 and beats(1) >= b0 + 20
    end, 10000), "node1 lost a peer, or heard no beats")
    for i = 1, 3 do assert.is_nil(c.nodes[i]:find_line "^EVENT node_down", "node_down on node" .. i) end
  end)

  it("reports a stopped node down between timeout_ms - heartbeat_ms and timeout_ms (+ delivery), and nobody else", function()
    c = cluster.new { n = 3, extra = ("transport = { heartbeat_ms = %d, timeout_ms = %d },"):format(HB, TIMEOUT) }
    c:start_all()
    local master = c:wait_master(15000)
    assert.truthy(master, "no master")
    -- at rest long enough that only beats (and election heartbeats) keep the
    -- connections up: several timeouts without a node_down
    local mark = {}
    for i = 1, 3 do mark[i] = #c.nodes[i].lines end
    local t_rest = proc.now()
    local victim = c:index_of(master) == 3 and 2 or 3
    -- the marker for "nothing happened at rest": the /_nodes view of node1 after 5
    -- timeouts still shows both peers connected, and no node_down line came before it
    assert.truthy(proc.wait_until(function()
      local code, j = c:http(1, "GET", "/_nodes")
      if code ~= 200 then return false end
      local up = 0
      for _, n in ipairs(j.nodes) do if n.connected and not n.self then up = up + 1 end end
      return up == 2 and proc.now() - t_rest >= 5 * TIMEOUT
    end, 10000))
    for i = 1, 3 do
      assert.is_nil(c.nodes[i]:find_line("^EVENT node_down", nil, mark[i] + 1), "node_down at rest on node" .. i)
    end
    c.nodes[victim]:kill "sigstop"
    local t_stop = proc.now()
    local gone = esc(c.names[victim])
    for i = 1, 3 do
      if i ~= victim then
        local line = c.nodes[i]:wait_for_line("^EVENT node_down " .. gone .. " timeout$", TIMEOUT + DELIVERY + 5000,
          nil, mark[i] + 1)
        assert.truthy(line, "node" .. i .. " did not report the stopped node down")
        local at
        for j = mark[i] + 1, #c.nodes[i].lines do
          local l = c.nodes[i].lines[j]
          if l.text:match("^EVENT node_down " .. gone) then at = l.t - t_stop break end
        end
        -- its last frame came at most one heartbeat before SIGSTOP
        assert.truthy(at >= TIMEOUT - HB, ("node%d reported it after %d ms: before its silence was %d ms")
          :format(i, at, TIMEOUT))
        assert.truthy(at <= TIMEOUT + 1 + DELIVERY, ("node%d reported it after %d ms, over %d + %d")
          :format(i, at, TIMEOUT, DELIVERY))
        for j = mark[i] + 1, #c.nodes[i].lines do
          local t = c.nodes[i].lines[j].text
          assert.falsy(t:match "^EVENT node_down" and not t:match("^EVENT node_down " .. gone),
            "node" .. i .. " reported another node down: " .. t)
        end
      end
    end
  end)
end)
