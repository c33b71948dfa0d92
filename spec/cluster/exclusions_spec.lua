-- One parser for voting-exclusion lists (issue 16): the admin API and cl.voting.exclude
-- refuse the same lists with the same error. Before, a list of more than 32 names was a
-- 400 through the admin API but was cut to 32 without a word through Lua.
local cluster = require "helpers.cluster"

local function list(n, prefix)
  local t = {}
  for i = 1, n do t[i] = (prefix or "nosuch") .. i end
  return t
end

-- each case: the names as Lua passes them; the admin API gets them comma-joined
local CASES = {
  too_many = list(40),
  empty_name = { "nosuch1", "", "nosuch2" },
  too_long = { ("x"):rep(200) },
  unknown = { "nosuch1" },
}

describe("voting exclusions: one parser for the admin API and cl.voting.exclude", function()
  local c, answers = nil, {}
  setup(function()
    local cases = {}
    for name, names in pairs(CASES) do
      local q = {}
      for i, n in ipairs(names) do q[i] = ("%q"):format(n) end
      cases[#cases + 1] = ("%s = { %s }"):format(name, table.concat(q, ", "))
    end
    -- the master runs every case through Lua once it is elected and prints the answers
    c = cluster.new { n = 1, hooks = cluster.HOOKS_PRELUDE .. ([[
local cases = { %s }
local done = false
return {
  master_changed = function(new)
    if done or new ~= cl.self().name then return end
    done = true
    for name, names in pairs(cases) do
      local v, err, code = cl.voting.exclude(names)
      out("exclude", name, tostring(v), tostring(code), err)
    end
    out("exclude_done")
  end,
}
]]):format(table.concat(cases, ",\n  ")) }
    c:start_all()
    local p = c.nodes[1]
    assert.truthy(p:wait_for_line("^EVENT exclude_done$", 15000), "no answers from Lua: " .. p:output():sub(-3000))
    for line in p.stdout:gmatch "[^\n]+" do
      local name, v, code, err = line:match "^EVENT exclude (%S+) (%S+) (%S+) (.*)$"
      if name then answers[name] = { v = v, code = code, err = err } end
    end
  end)
  teardown(function()
    if c then c:cleanup() end
  end)

  local function admin(names)
    return c:http(1, "POST", "/_cluster/voting_config_exclusions?node_names=" .. table.concat(names, ","))
  end

  it("refuses more than 32 names on both paths with the same EINVAL, instead of cutting the list in Lua", function()
    local code, j = admin(CASES.too_many)
    assert.equal(400, code)
    assert.equal("EINVAL: too many node names: 40 given, at most 32 per request", j.error)
    local a = answers.too_many
    assert.same({ v = "nil", code = "EINVAL", err = j.error }, a)
  end)

  it("refuses an empty name on both paths, instead of skipping it", function()
    local code, j = admin(CASES.empty_name)
    assert.equal(400, code)
    assert.equal("EINVAL: node name 2 of 3 is empty", j.error)
    assert.same({ v = "nil", code = "EINVAL", err = j.error }, answers.empty_name)
  end)

  it("refuses a name longer than the election's limit on both paths", function()
    local code, j = admin(CASES.too_long)
    assert.equal(400, code)
    assert.equal("EINVAL: node name 1 of 1 is longer than 127 characters", j.error)
    assert.same({ v = "nil", code = "EINVAL", err = j.error }, answers.too_long)
  end)

  it("passes a well-formed list to the election on both paths (an unknown node: ENOTFOUND)", function()
    local code, j = admin(CASES.unknown)
    assert.equal(400, code)
    assert.equal('ENOTFOUND: exclusion "nosuch1" matches no node of the cluster', j.error)
    assert.same({ v = "nil", code = "ENOTFOUND", err = j.error }, answers.unknown)
  end)
end)
