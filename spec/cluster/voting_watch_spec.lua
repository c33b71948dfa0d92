-- The voting nodes watch each other (docs/design.md §4, "Partitions"): a voting node that
-- stops hearing everyone reports the other voting nodes down, and quorum_lost, within one
-- timeout, not after the watch ring's cascade. With transport.watchers = 1 the ring alone
-- would have it find one peer per timeout, and the voting peers may be its farthest.
local uv = require "uv"
local cjson = require "cjson.safe"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local N = 9
local HB, TIMEOUT, AWARENESS_MAX = 200, 400, 3 -- transport defaults (detector.h)
-- a node that runs on time: TIMEOUT + 1 after the last frame, which left at most a
-- heartbeat before the fault; one that runs late (shared machine): TIMEOUT * (1 +
-- AWARENESS_MAX); and the delivery of the hook's line to this process, as in
-- sparse_detection_spec. The cascade would take up to (N - 1) * TIMEOUT (3.2 s). The
-- fault layer lets no handshake through a one-way cut (as a real cut): before it did,
-- a voting peer the victim dropped could come back before the other went down, and
-- quorum_lost never came (seen once in CI).
local BOUND = TIMEOUT * (1 + AWARENESS_MAX) + HB
local DELIVERY = 1000

local function esc(s) return (s:gsub("%p", "%%%0")) end

local function now()
  uv.update_time()
  return uv.now()
end

describe("voting nodes watch each other, " .. N .. " nodes, watchers = 1", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("a voting node that hears nobody reports the other voting nodes down and quorum_lost within one timeout", function()
    -- three voting nodes among nine: the victim pins two, the ring would reach them late
    c = cluster.new { n = N, initial = 3, cluster = "vwatch", election = "max_voting_nodes = 3,",
      extra = "transport = { watchers = 1 }," }
    c:start_all(nil, { CLUSTERLUA_FAULTS = "1" })
    local all = {}
    for i = 1, N do all[i] = i end
    assert.truthy(proc.wait_until(c:all_connected(all), 60000), "the nodes did not connect")
    local master = c:wait_master(30000)
    assert.truthy(master, "no master")
    -- the committed voting configuration, the same on every node once committed
    local vc
    assert.truthy(proc.wait_until(function()
      local h = c:health(c:index_of(master))
      if h and type(h.voting_config) == "table" and #h.voting_config == 3 then
        vc = h.voting_config
        return true
      end
    end, 10000), "no voting configuration")
    local voting = {}
    for _, name in ipairs(vc) do voting[#voting + 1] = c:index_of(name) end
    -- the victim: a voting node that is not the master
    local victim
    for _, i in ipairs(voting) do
      if c.names[i] ~= master then victim = i break end
    end
    assert.truthy(victim, "no voting follower")
    -- every voting node holds a WATCH on each other voting node: the pins are in place
    -- once the victim watches more than its one ring successor
    assert.truthy(proc.wait_until(function()
      local p = proc.start("curl", { "-s", "-m", "3", "http://" .. c.admin[victim] .. "/metrics" })
      p:wait_exit(5000)
      local w = tonumber(p.stdout:match "\nclusterlua_watching (%d+)") or
        tonumber(p.stdout:match "\nclusterlua_watch_peers{kind=\"watching\"} (%d+)")
      return w and w >= #voting - 1
    end, 10000), "the victim does not watch the other voting nodes")
    local mark = #c.nodes[victim].lines
    -- the victim drops everything it receives: no frame, no announcement, no close
    -- reaches it; the others still hear it
    local code = c:http(victim, "POST", "/_test/fault?peer=*&spec=oneway_in")
    assert.equal(200, code)
    local t0 = now()
    local p = c.nodes[victim]
    assert.truthy(p:wait_for_line("^EVENT quorum_lost$", BOUND + DELIVERY + 2000, nil, mark + 1),
      "no quorum_lost on the cut-off voting node")
    for _, i in ipairs(voting) do
      if i ~= victim then
        p:wait_for_line("^EVENT node_down " .. esc(c.names[i]) .. " timeout$", BOUND + DELIVERY + 2000, nil, mark + 1)
      end
    end
    local lost_at
    local down_at = {}
    for j = mark + 1, #p.lines do
      local l = p.lines[j]
      if not lost_at and l.text == "EVENT quorum_lost" then lost_at = l.t - t0 end
      for _, i in ipairs(voting) do
        if i ~= victim and not down_at[i] and l.text:match("^EVENT node_down " .. esc(c.names[i]) .. " timeout$") then
          down_at[i] = l.t - t0
        end
      end
    end
    local list = {}
    for i, dt in pairs(down_at) do list[#list + 1] = ("node%d %d ms"):format(i, dt) end
    table.sort(list)
    print(("voting watch: quorum_lost after %d ms; voting peers down: %s (bound %d + %d delivery)"):format(lost_at,
      table.concat(list, ", "), BOUND, DELIVERY))
    assert.truthy(lost_at <= BOUND + DELIVERY, ("quorum_lost after %d ms"):format(lost_at))
    for _, i in ipairs(voting) do
      if i ~= victim then
        -- at least a quorum of them is what quorum_lost needed; each one pinned is
        -- watched, so each is reported within the bound
        assert.truthy(down_at[i] and down_at[i] <= BOUND + DELIVERY,
          ("voting node%d not reported down within the bound (%s)"):format(i, tostring(down_at[i])))
      end
    end
    c:http(victim, "POST", "/_test/fault?peer=*&spec=clear")
  end)
end)
