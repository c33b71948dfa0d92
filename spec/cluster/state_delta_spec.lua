-- The committed state Lua holds is patched from deltas after the first commit
-- (runtime/node/node_election.c, emit_committed; lua/clusterlua/cluster.lua, patch).
-- Through joins, a removal, a return and user metadata set and cleared, what each node's
-- state_committed hook sees must be exactly what GET /_cluster/state of that node says
-- at the same version.
local cjson = require "cjson.safe"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

-- one canonical line for a state, from Lua's table or from the admin's JSON alike
local CANON = [[
local function canon(s)
  local ids = {}
  for id in pairs(s.nodes or {}) do ids[#ids + 1] = id end
  table.sort(ids)
  local parts = { tostring(s.cluster_uuid), tostring(s.term), tostring(s.version), tostring(s.master_node) }
  for _, id in ipairs(ids) do
    local n = s.nodes[id]
    parts[#parts + 1] = id .. "=" .. tostring(n.name) .. "/" .. tostring(n.address) .. "/" .. table.concat(n.roles or {}, ",")
  end
  local md = s.metadata or {}
  local co = md.cluster_coordination or {}
  for _, k in ipairs { "last_committed_config", "last_accepted_config", "voting_config_excluding_deferred" } do
    parts[#parts + 1] = k .. "=" .. table.concat(co[k] or {}, ",")
  end
  local user, keys = md.user or {}, {}
  for k in pairs(user) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = "user." .. k .. "=" .. tostring(user[k]) end
  parts[#parts + 1] = "user_version=" .. tostring(md.user_version)
  return table.concat(parts, ";")
end
]]

local canon = assert(load(CANON .. " return canon"))()

local HOOKS = cluster.HOOKS_PRELUDE .. CANON .. [[
local step = 0
return {
  state_committed = function(s) out("state", s.version, canon(s)) end,
  -- node1 (started with DO_UPDATE) sets user metadata, then changes it, once it has a master
  master_changed = function(new)
    if not new or not me(1) or step > 0 or not os.getenv "DO_UPDATE" then return end
    step = 1
    local v1 = cl.update(function(md) md.color = "blue"; md.n = 7; return md end)
    local v2 = cl.update(function(md) md.color = nil; md.size = 3; return md end)
    out("updated", tostring(v1), tostring(v2))
  end,
}
]]

describe("the committed state Lua holds", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  -- every live node's last state line against its own GET /_cluster/state, once their
  -- versions agree
  local function agree(live)
    for _, i in ipairs(live) do
      local why = "no state line"
      -- the last state line matches the admin's state once both are at one version
      local ok = proc.wait_until(function()
        local code, j = c:http(i, "GET", "/_cluster/state")
        local last
        for _, l in ipairs(c.nodes[i].lines) do
          local v, line = l.text:match "^EVENT state (%d+) (.*)$"
          if v then last = { v = tonumber(v), line = line } end
        end
        if code ~= 200 or not j or not last or last.v ~= j.version then return false end
        if j.master_node == cjson.null then j.master_node = nil end
        if j.metadata and j.metadata.user == cjson.null then j.metadata.user = {} end
        why = ("node%d at version %d:\n lua   %s\n admin %s"):format(i, last.v, last.line, canon(j))
        return canon(j) == last.line
      end, 10000)
      assert.truthy(ok, why)
    end
  end

  it("matches the admin's state through joins, a removal, a return and metadata changes", function()
    c = cluster.new { n = 4, hooks = HOOKS }
    c:start(1, nil, { DO_UPDATE = "1" })
    for i = 2, 4 do c:start(i) end
    assert.truthy(c:wait_master(10000), "no master")
    assert.truthy(c.nodes[1]:wait_for_line("^EVENT updated %d+ %d+$", 15000), "metadata not updated")
    agree { 1, 2, 3, 4 }
    -- node4 killed: the master removes it from the state
    c.nodes[4]:kill "sigkill"
    c.nodes[4]:wait_exit(3000)
    local alive = { true, true, true, false }
    assert.truthy(c:wait_master(10000, alive), "no master after the kill")
    local gone = proc.wait_until(function()
      local code, j = c:http(1, "GET", "/_cluster/state")
      if code ~= 200 or not j or type(j.nodes) ~= "table" then return false end
      for _, n in pairs(j.nodes) do if n.name == c.names[4] then return false end end
      return true
    end, 15000)
    assert.truthy(gone, "node4 still in the state")
    agree { 1, 2, 3 }
    -- it comes back: added again
    c:start(4)
    assert.truthy(c.nodes[1]:wait_for_line("^EVENT state %d+ .*" .. c.names[4]:gsub("%p", "%%%0"), 15000))
    agree { 1, 2, 3, 4 }
    -- no node met a change it could not apply (cluster.lua reports it as a Lua error)
    for i = 1, 4 do assert.is_nil(c.nodes[i]:find_line "does not hold", "node" .. i .. " lost its state") end
  end)
end)
