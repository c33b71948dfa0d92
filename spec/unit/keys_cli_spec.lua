-- `clusterlua keys`: the command line (options anywhere, install from stdin) and the
-- list rendering; the commands against a running cluster are in
-- spec/cluster/keys_rotation_spec.lua.
local keys = require "clusterlua.cli.keys"
local proc = require "helpers.proc"

describe("clusterlua keys", function()
  it("takes options anywhere on the line and checks the command", function()
    local o = assert(keys.parse_args { [0] = "keys", "install", "--admin", "h:1", "-", "--json" })
    assert.equal("install", o.cmd)
    assert.equal("-", o.arg)
    assert.equal("h:1", o.admin)
    assert.is_true(o.json)
    o = assert(keys.parse_args { [0] = "keys", "--token-file=t", "remove", "0123456789abcdef" })
    assert.same({ "remove", "0123456789abcdef", "t" }, { o.cmd, o.arg, o.token_file })
    local function err(argv) return select(2, keys.parse_args(argv)) end
    assert.matches("which command", err { [0] = "keys" })
    assert.matches("unknown command 'rotate'", err { [0] = "keys", "rotate" })
    assert.matches("install needs the key", err { [0] = "keys", "install" })
    assert.matches("use needs a fingerprint", err { [0] = "keys", "use" })
    assert.matches("list takes no argument", err { [0] = "keys", "list", "x" })
    assert.matches("unknown option %-%-bogus", err { [0] = "keys", "list", "--bogus" })
  end)

  it("renders list as Consul does, [installed/N] and [primary/N]", function()
    local text = keys.render_list { nodes = 5, acknowledged = 4, keys = {
      { fingerprint = "0123456789abcdef", installed_on = 5, primary_on = 5 },
      { fingerprint = "fedcba9876543210", installed_on = 4, primary_on = 0 } },
      results = { { node = "n5@h:1", ok = false, error = "down: not reached" } } }
    assert.matches("0123456789abcdef  %[5/5%]      %[5/5%]", text)
    assert.matches("fedcba9876543210  %[4/5%]      %[0/5%]", text)
    assert.matches("4 of 5 nodes answered", text)
    assert.matches("n5@h:1: down: not reached", text)
  end)

  it("exits 2 on a usage error and 1 when the endpoint cannot be reached", function()
    local code, _, err = proc.run(proc.bin, { "keys" })
    assert.equal(2, code)
    assert.matches("which command", err)
    code, _, err = proc.run(proc.bin, { "keys", "list", "--admin", "127.0.0.1:" .. proc.free_port("tcp") })
    assert.equal(1, code)
    assert.matches("cannot reach the admin endpoint", err)
    code, _, err = proc.run(proc.bin, { "keys", "install", "-", "--admin", "127.0.0.1:1" }, { stdin = "" })
    assert.equal(2, code)
    assert.matches("no key on standard input", err)
  end)
end)
