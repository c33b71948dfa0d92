-- Starting a node: every check that can fail (ports, hooks, data directory) fails before
-- anything is written, so a node that could not start leaves no cluster behind.
local uv = require "uv"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

-- what a data directory holds (names), or nil when it does not exist
local function listing(dir)
  local req = uv.fs_scandir(dir)
  if not req then return nil end
  local out = {}
  while true do
    local name = uv.fs_scandir_next(req)
    if not name then break end
    out[#out + 1] = name
  end
  table.sort(out)
  return out
end

describe("a node that cannot start", function()
  local c, holder
  after_each(function()
    if holder then holder:close() end
    holder = nil
    if c then c:cleanup() end
    c = nil
  end)

  -- a listener in this process holds a port the node wants
  local function hold(addr)
    local host, port = addr:match "^(.*):(%d+)$"
    holder = uv.new_tcp()
    assert(holder:bind(host, tonumber(port)))
    assert(holder:listen(1, function() end))
  end

  -- one node, alone in initial_master_nodes: started, it would bootstrap at once
  local function expect_refused(pattern, extra_args)
    local p = c:start(1, extra_args)
    local code = p:wait_exit(10000)
    assert.equal(2, code, p:output())
    assert.matches(pattern, p.stderr)
    -- nothing was created: no cluster_state, no node_id, not even the directory
    assert.is_nil(listing(c.dir .. "/data1"), p:output())
    return p
  end

  it("exits 2 when its admin port is taken, before bootstrapping anything", function()
    c = cluster.new { n = 1 }
    hold(c.admin[1])
    local p = expect_refused("admin")
    assert.matches(c.admin[1], p.stderr, 1, true)
    assert.matches("address already in use", p.stderr, 1, true)
  end)

  it("exits 2 when its node port is taken", function()
    c = cluster.new { n = 1 }
    hold(c.names[1]:match "@(.*)$")
    expect_refused("address already in use")
  end)

  it("exits 2 on a broken hooks file, before binding or writing anything", function()
    c = cluster.new { n = 1, hooks = "return { node_up = 42 }" }
    expect_refused("hooks")
    -- and the admin port was never bound: it is free for us now
    hold(c.admin[1])
  end)

  it("exits 2 when --data is a file, and leaves the file alone", function()
    c = cluster.new { n = 1 }
    proc.write(c.dir .. "/data1", "not a directory\n")
    local p = c:start(1)
    assert.equal(2, (p:wait_exit(10000)))
    assert.matches("not a directory", p.stderr, 1, true)
    local f = assert(io.open(c.dir .. "/data1"))
    assert.equal("not a directory\n", f:read "*a")
    f:close()
  end)

  it("starts normally afterwards, writing node_id and cluster_state mode 0600", function()
    c = cluster.new { n = 1 }
    hold(c.admin[1])
    expect_refused("admin")
    holder:close()
    holder = nil
    local p = c:start(1)
    assert.truthy(p:wait_for_line("master changed", 10000))
    assert.same({ "cluster_state", "node_id" }, listing(c.dir .. "/data1"))
    for _, f in ipairs { "node_id", "cluster_state" } do
      assert.equal(384, uv.fs_stat(c.dir .. "/data1/" .. f).mode % 512, f) -- 0600
    end
    assert.equal(448, uv.fs_stat(c.dir .. "/data1").mode % 512) -- 0700
  end)
end)

describe("the cookie", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("clusterlua cookie prints a new random 32-byte cookie, printable", function()
    local seen = {}
    for _ = 1, 3 do
      local code, out, err = proc.run(proc.bin, { "cookie" })
      assert.equal(0, code, err)
      local cookie = out:match "^([%w_%-]+)\n$"
      assert.truthy(cookie, out)
      assert.equal(43, #cookie) -- base64url of 32 bytes, no padding
      assert.is_nil(seen[cookie])
      seen[cookie] = true
    end
    assert.not_equal(0, (proc.run(proc.bin, { "cookie", "--bogus" })))
    local code, out = proc.run(proc.bin, { "--help" })
    assert.equal(0, code)
    assert.matches("clusterlua cookie", out, 1, true)
  end)

  it("a node with a cookie shorter than 16 bytes warns (without the cookie) and runs", function()
    -- the examples/edge walk-through's cookie
    c = cluster.new { n = 1, cookie = "edge-servers" }
    local p = c:start(1)
    local line = p:wait_for_line("warn %[node%] the cookie is 12 bytes long", 10000, "stderr")
    assert.truthy(line, p:output())
    assert.truthy(p:wait_for_line("master changed", 10000))
    assert.is_nil(p:output():find("edge-servers", 1, true))
  end)

  it("a node with a 16-byte cookie does not warn", function()
    c = cluster.new { n = 1, cookie = "0123456789abcdef" }
    local p = c:start(1)
    -- the warning would come before the node starts
    assert.truthy(p:wait_for_line("started %(cluster", 10000, "stderr"))
    assert.is_nil(p:find_line("cookie", "stderr"), p.stderr)
  end)
end)
