-- The executable and the loop underneath everything: script mode like `lua`, luv on
-- the Lua loop, callback errors contained, and the control loop not waiting for Lua.
local uv = require "uv"
local core = require "clusterlua.c.core"
local async = require "clusterlua.async"
local proc = require "helpers.proc"

local BIN = proc.bin

describe("clusterlua script mode", function()
  local dir
  before_each(function() dir = proc.tmpdir() end)
  after_each(function()
    proc.kill_all()
    proc.rmtree(dir)
  end)

  local function script(name, src) return proc.write(dir .. "/" .. name, src) end

  it("prints its version and help", function()
    local code, out = proc.run(BIN, { "--version" })
    assert.equal(0, code)
    assert.matches("^clusterlua %d+%.%d+", out)
    assert.matches(core.version, out, 1, true)
    code, out = proc.run(BIN, { "--help" })
    assert.equal(0, code)
    assert.matches("usage: clusterlua", out, 1, true)
  end)

  it("rejects an unknown option and a missing file argument", function()
    local code, _, err = proc.run(BIN, { "--no-such-option" })
    assert.is_not.equal(0, code)
    assert.matches("unknown option", err, 1, true)
    code = proc.run(BIN, {})
    assert.is_not.equal(0, code)
  end)

  it("fails on a missing file, naming it", function()
    local code, _, err = proc.run(BIN, { dir .. "/nope.lua" })
    assert.is_not.equal(0, code)
    assert.matches("nope.lua", err, 1, true)
  end)

  it("fails on a syntax error, naming file and line", function()
    local f = script("syntax.lua", "local x = 1\nlocal y = = 2\n")
    local code, _, err = proc.run(BIN, { f })
    assert.is_not.equal(0, code)
    assert.matches("syntax.lua:2:", err, 1, true)
  end)

  it("fails on a runtime error in the main chunk, naming file and line, with a traceback", function()
    local f = script("boom.lua", "print('before')\n\nerror('kaboom')\n")
    local code, out, err = proc.run(BIN, { f })
    assert.is_not.equal(0, code)
    assert.equal("before\n", out)
    assert.matches("boom.lua:3: kaboom", err, 1, true)
    assert.matches("traceback", err, 1, true)
  end)

  it("exits with the status os.exit asks for, from the main chunk, a callback or a coroutine", function()
    local f = script("exit.lua", "os.exit(3)")
    assert.equal(3, (proc.run(BIN, { f })))
    f = script("exit_true.lua", "os.exit(true)")
    assert.equal(0, (proc.run(BIN, { f })))
    f = script("exit_cb.lua", [[
      local uv = require "uv"
      local t = uv.new_timer()
      t:start(10, 0, function() io.stdout:write("in callback\n") os.exit(4) end)
      -- a second timer that would keep the loop alive: os.exit must not wait for it
      uv.new_timer():start(60000, 0, function() end)
    ]])
    local code, out = proc.run(BIN, { f }, { timeout = 5000 })
    assert.equal(4, code)
    assert.equal("in callback\n", out)
    f = script("exit_co.lua", [[
      local async = require "clusterlua.async"
      async.spawn(function() async.sleep(10) os.exit(5) end)
    ]])
    code, out = proc.run(BIN, { f }, { timeout = 5000 })
    assert.equal(5, code)
  end)

  it("runs the loop until no work is left, then exits 0", function()
    local f = script("loop.lua", [[
      local uv = require "uv"
      local n = 0
      local t = uv.new_timer()
      t:start(20, 20, function()
        n = n + 1
        print("tick " .. n)
        if n == 3 then t:close() end
      end)
      print("main chunk done")
    ]])
    local t0 = uv.hrtime()
    local code, out = proc.run(BIN, { f }, { timeout = 5000 })
    assert.equal(0, code)
    assert.equal("main chunk done\ntick 1\ntick 2\ntick 3\n", out)
    assert.is_true((uv.hrtime() - t0) / 1e6 < 3000)
  end)

  it("passes arguments as ... and arg", function()
    local f = script("args.lua", [[
      print(select("#", ...), ...)
      print(arg[0], arg[1], arg[2], #arg)
    ]])
    local code, out = proc.run(BIN, { f, "one", "two words" })
    assert.equal(0, code)
    assert.equal(("2\tone\ttwo words\n%s\tone\ttwo words\t2\n"):format(f), out)
  end)

  it("finds its lua/ modules from any working directory (dev checkout)", function()
    local f = script("mods.lua", [[
      local core = require "clusterlua.c.core"
      print(core.libdir)
      print(type(require("clusterlua.async").sleep), type(require("clusterlua.dns").srv))
      print(package.searchpath("clusterlua.async", package.path))
    ]])
    local code, out, err = proc.run(BIN, { "mods.lua" }, { cwd = dir })
    assert.equal(0, code, err)
    local libdir, types, path = out:match("^([^\n]*)\n([^\n]*)\n([^\n]*)\n$")
    assert.equal("function\tfunction", types)
    assert.equal(libdir .. "/clusterlua/async.lua", path)
    assert.is_true(uv.fs_stat(libdir .. "/clusterlua/async.lua") ~= nil)
  end)

  it("loads a module's bytecode twin (BIN/../lua-bc) only when it was written after the source last changed", function()
    -- a copy of the layout: bin/clusterlua, lua/clusterlua/*.lua, bin/lua-bc/clusterlua/*.lua
    local root = dir .. "/tree"
    assert.equal(0, (proc.run("/bin/sh", { "-c", ("mkdir -p %s/bin/lua-bc/clusterlua %s/lua && cp %q %s/bin/clusterlua"
      .. " && cp -r %q/clusterlua %s/lua/"):format(root, root, BIN, root, core.libdir, root) })))
    local src = root .. "/lua/clusterlua/zz_probe.lua"
    local twin = root .. "/bin/lua-bc/clusterlua/zz_probe.lua"
    proc.write(src, 'return "source"\n')
    -- a twin whose bytecode says something else, so the test can tell which was loaded
    local other = proc.write(dir .. "/other.lua", 'return "bytecode"\n')
    assert.equal(0, (proc.run(BIN, { core.libdir .. "/../tools/luac.lua", other, twin })))
    local f = script("probe.lua", 'print(require "clusterlua.zz_probe")')
    local function probe()
      local code, out, err = proc.run(root .. "/bin/clusterlua", { f })
      assert.equal(0, code, err)
      return (out:gsub("\n$", ""))
    end
    -- the twin written after the source last changed (its mtime past the source's
    -- ctime: set ahead, as file times tick coarsely and a tie counts as stale)
    local later = os.time() + 60
    uv.fs_utime(twin, later, later)
    assert.equal("bytecode", probe())
    -- edited after the last make: the source wins
    local made = os.time() - 10
    proc.write(src, 'return "source"\n')
    uv.fs_utime(twin, made, made)
    assert.equal("source", probe())
    -- a source restored with an mtime from before that make (cp -p, tar x) still wins:
    -- its ctime moved
    uv.fs_utime(src, 1000, 1000)
    assert.equal("source", probe())
    -- a path put in front of package.path still wins over the twin
    uv.fs_utime(twin, later + 60, later + 60)
    assert.equal("bytecode", probe())
    local mine = dir .. "/mine/clusterlua"
    assert.equal(0, (proc.run("/bin/mkdir", { "-p", mine })))
    proc.write(mine .. "/zz_probe.lua", 'return "mine"\n')
    local g = script("probe2.lua", ('package.path = %q .. package.path; print(require "clusterlua.zz_probe")')
      :format(dir .. "/mine/?.lua;"))
    local code, out, err = proc.run(root .. "/bin/clusterlua", { g })
    assert.equal(0, code, err)
    assert.equal("mine\n", out)
  end)

  it("keeps the source's chunk name in a module loaded from its bytecode twin", function()
    local f = script("chunk.lua", [[
      local core = require "clusterlua.c.core"
      print(core.libdir, debug.getinfo(require("clusterlua.names").parse, "S").source)
    ]])
    local code, out, err = proc.run(BIN, { f })
    assert.equal(0, code, err)
    local libdir, source = out:match "^(%S+)\t(%S+)\n$"
    assert.equal("@" .. libdir .. "/clusterlua/names.lua", source)
  end)

  it("reports a callback error with its location and carries on", function()
    local f = script("cberr.lua", [[
      local uv = require "uv"
      local core = require "clusterlua.c.core"
      local t1 = uv.new_timer()
      t1:start(10, 0, function() t1:close() error("callback failed") end)
      local t2 = uv.new_timer()
      t2:start(50, 0, function() t2:close() print("still running, errors=" .. core.errors()) end)
    ]])
    local code, out, err = proc.run(BIN, { f }, { timeout = 5000 })
    assert.equal(0, code)
    assert.equal("still running, errors=1\n", out)
    assert.matches("cberr.lua:4: callback failed", err, 1, true)
    assert.matches("traceback", err, 1, true)
  end)
end)

describe("luv on the Lua loop", function()
  local dir
  before_each(function() dir = proc.tmpdir() end)
  after_each(function() proc.rmtree(dir) end)

  it("echoes over TCP on loopback", function()
    local server = uv.new_tcp()
    assert(server:bind("127.0.0.1", 0))
    local port = server:getsockname().port
    local conns = {}
    assert(server:listen(16, function(err)
      assert(not err, err)
      local c = uv.new_tcp()
      server:accept(c)
      conns[#conns + 1] = c
      c:read_start(function(rerr, data)
        if rerr or not data then return c:close() end
        c:write(data)
      end)
    end))
    local client = uv.new_tcp()
    local connected, got = false, ""
    client:connect("127.0.0.1", port, function(err)
      assert(not err, err)
      connected = true
      client:read_start(function(rerr, data)
        if data then got = got .. data end
      end)
      client:write("hello ")
      client:write("world")
    end)
    assert(async.run_until(function() return got == "hello world" end, 3000))
    assert.is_true(connected)
    client:close()
    server:close()
    assert(async.run_until(function() return conns[1] and conns[1]:is_closing() end, 3000))
  end)

  it("fires a file watch (fs_event) when a file changes", function()
    local path = proc.write(dir .. "/watched.txt", "v1\n")
    local ev = uv.new_fs_event()
    local events = {}
    assert(ev:start(dir, {}, function(err, fname, what)
      assert(not err, err)
      events[#events + 1] = { fname, what }
    end))
    proc.write(path, "v2\n")
    assert(async.run_until(function() return #events > 0 end, 3000))
    ev:stop()
    ev:close()
    assert.equal("watched.txt", events[1][1])
    assert.is_true(events[1][2].change or events[1][2].rename)
  end)

  it("counts and logs an error raised in a callback while the loop carries on", function()
    local before = core.errors()
    local t1, t2 = uv.new_timer(), uv.new_timer()
    local later = false
    t1:start(5, 0, function()
      t1:close()
      error("expected error from a spec callback (ignore this log line)")
    end)
    t2:start(30, 0, function()
      t2:close()
      later = true
    end)
    assert(async.run_until(function() return later end, 3000))
    assert.equal(before + 1, core.errors())
  end)

  it("reports an error raised in a spawned coroutine", function()
    local before = core.errors()
    async.spawn(function()
      async.sleep(5)
      error("expected error from a spec coroutine (ignore this log line)")
    end)
    assert(async.run_until(function() return core.errors() == before + 1 end, 3000))
  end)
end)

describe("the control loop", function()
  it("keeps its timer on time while Lua is blocked for 2 s", function()
    core.probe_start(10)
    -- the command reaches the control thread asynchronously; wait for it to tick
    assert(async.run_until(function() return core.probe_stats().ticks >= 3 end, 3000))
    local before = core.probe_stats()
    local t0 = core.now()
    local x = 0
    while core.now() - t0 < 2000 do x = x + 1 end -- Lua holds the main thread
    local after = core.probe_stats()
    core.probe_stop()
    local ticks = after.ticks - before.ticks
    assert.is_true(after.max_late_ms < 200, ("max_late_ms = %.1f"):format(after.max_late_ms))
    assert.is_true(ticks >= 150 and ticks <= 250, ("ticks = %d"):format(ticks))
    assert.is_true(x > 0)
  end)
end)
