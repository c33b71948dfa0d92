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
