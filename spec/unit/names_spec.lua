-- One node-name parser (issue 16): clusterlua.names is the C parser of the transport
-- (runtime/core/name.c, through clusterlua.c.name), so Lua and C accept and refuse the
-- same names with the same limits. Before, Lua had its own pattern with no length
-- limit and a looser host and port, so a name Lua took could be refused by the
-- transport later, far from where it was written.
local names = require "clusterlua.names"
local cname = require "clusterlua.c.name"

local function refused(s, why)
  local n, err, code = names.parse(s)
  assert.is_nil(n, ("accepted %q"):format(s))
  assert.equal("EINVAL", code)
  assert.truthy(err:find("bad node name", 1, true), err)
  if why then assert.truthy(err:find(why, 1, true), ("%q: %s"):format(s, err)) end
  -- the transport's parser, called directly, says exactly the same
  local n2, err2, code2 = cname.parse(s)
  assert.same({ nil, err, code }, { n2, err2, code2 })
end

describe("node names: one parser, the C one, for Lua and the transport", function()
  it("parses and normalises as the transport does", function()
    assert.same({ short = "node1", host = "10.0.0.1", port = 4370, full = "node1@10.0.0.1:4370" },
      names.parse "node1@10.0.0.1")
    assert.same({ short = "n", host = "::1", port = 4371, full = "n@[::1]:4371" }, names.parse "n@[::1]:4371")
    assert.equal("a.b-c_d@host.example:65535", names.full "a.b-c_d@host.example:65535")
  end)

  it("limits the short name to 63 characters, as the transport does (Lua had no limit)", function()
    assert.truthy(names.parse(("a"):rep(63) .. "@h"))
    refused(("a"):rep(64) .. "@h", "longer than 63 characters")
  end)

  it("limits the whole name to 255 characters, as the transport does (Lua had no limit)", function()
    local host = ("h"):rep(255 - #"n@" - #":4370")
    assert.equal(255, #names.full("n@" .. host))
    refused("n@" .. host .. "h", "longer than 255 characters")
  end)

  it("refuses what the transport refuses: bad host characters, empty or bad ports, bare IPv6", function()
    refused("a@h$st", "host contains an invalid character")
    refused("a@host:", "empty port")
    refused("a@host:0", "port must be 1..65535")
    refused("a@host:65536", "port must be 1..65535")
    refused("a@host:12x", "port must be a number")
    refused("a@::1", "IPv6 addresses must be in brackets")
    refused("a b@host", "name may contain only")
    refused("nohost", "expected NAME@HOST[:PORT]")
    refused("@host", "empty name before '@'")
    refused("", "empty")
  end)

  it("keeps misuse apart: a non-string is EINVAL from names.parse, an error from the C binding", function()
    local n, err, code = names.parse(42)
    assert.is_nil(n)
    assert.equal("EINVAL", code)
    assert.truthy(err:find("must be a string", 1, true))
    assert.has_error(function() cname.parse(nil) end)
  end)
end)

describe("short names: one rule, the C one", function()
  it("matches a short name to the part before '@' and a full name only to itself", function()
    assert.is_true(names.matches("node1", "node1@h:1"))
    assert.is_true(names.matches("node1@h:1", "node1@h:1"))
    assert.is_false(names.matches("node", "node1@h:1"))
    assert.is_false(names.matches("node1@h:2", "node1@h:1"))
    assert.is_false(names.matches("", "node1@h:1"))
  end)

  it("resolves a unique short name, refuses an ambiguous one, and says ENOENT for none", function()
    local known = { "a@h:1", "b@h:2", "b@h:3" }
    assert.equal("a@h:1", names.resolve("a", known))
    local f, err, code = names.resolve("b", known)
    assert.is_nil(f)
    assert.equal("EINVAL", code)
    assert.truthy(err:find("ambiguous", 1, true))
    f, err, code = names.resolve("c", known)
    assert.is_nil(f)
    assert.equal("ENOENT", code)
    assert.equal('ENOENT: no known node named "c"', err)
    assert.equal("z@h:4370", names.resolve("z@h", known))
  end)
end)

describe("initial_master_nodes: the election's duplicate rule, checked when the topology loads", function()
  local topology = require "clusterlua.topology"
  it("refuses a short name next to its full name, as the election would at start", function()
    local t, err, code = topology.from_table { election = { initial_master_nodes = { "node1", "node2", "node1@h:4370" } } }
    assert.is_nil(t)
    assert.equal("EINVAL", code)
    assert.truthy(err:find('election.initial_master_nodes[3]: duplicate entry "node1@h:4370" (also "node1")', 1, true), err)
    assert.is_table((topology.from_table { election = { initial_master_nodes = { "node1@h:1", "node1@h:2", "node2" } } }))
  end)
end)
