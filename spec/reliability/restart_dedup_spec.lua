-- Found by crash_spec: a write request made after its node restarted must not be taken
-- for a duplicate of a request the node's previous incarnation made. Request ids restart
-- at 1 in every process, and the master deduplicates updates by (origin node id, request
-- id) against the committed state's meta_origin/meta_req; so the restarted node's first
-- update is dropped as "already applied", then answered OK at the next commit: an
-- acknowledged write that is not in the state.
local cjson = require "cjson.safe"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

describe("write requests across a restart of the asking node", function()
  it("are applied, not mistaken for the previous incarnation's request", function()
    local c = cluster.new { n = 3, hooks = cluster.HOOKS_PRELUDE .. [[
local done = false
return { master_changed = function(new)
  if new and not done and cl.self().name:match "^node3@" and not cl.is_master() then
    done = true
    out("updating")
    local v, err = cl.update(function(md) md.runs = (md.runs or 0) + 1 return md end)
    out("updated", v or err)
  end
end }
]] }
    finally(function() c:cleanup() end)
    c:start(1)
    c:start(2)
    assert.truthy(c:wait_master(10000, { true, true, false }))
    local function runs()
      local _, s = c:http(1, "GET", "/_cluster/state?filter_path=metadata.user")
      return s and s.metadata and s.metadata.user and s.metadata.user.runs
    end
    for run = 1, 2 do
      local p = c:start(3)
      if run == 2 then
        -- any other commit meanwhile (here: a voting exclusion) answers the dropped request:
        -- made once node3 has sent its request
        assert.truthy(p:wait_for_line("^EVENT updating", 15000))
        local code = c:http(1, "POST", "/_cluster/voting_config_exclusions?node_names=node2")
        assert.equal(200, code)
      end
      local line = p:wait_for_line("^EVENT updated", 15000)
      assert.truthy(line)
      local v = tonumber(line:match "^EVENT updated (%d+)$")
      assert.truthy(v, ("run %d: the update failed: %s"):format(run, line))
      assert.truthy(proc.wait_until(function() return runs() == run end, 3000),
        ("run %d: update acknowledged at version %d but the metadata says runs=%s"):format(run, v,
          cjson.encode(runs())))
      p:kill "sigkill"
      p:wait_exit(3000)
    end
  end)
end)
