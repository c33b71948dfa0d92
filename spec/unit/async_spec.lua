-- Coroutine helpers: each test runs its body in a coroutine (go) and pumps the loop
-- from the spec body until it is done, with a bound.
local uv = require "uv"
local core = require "clusterlua.c.core"
local async = require "clusterlua.async"
local proc = require "helpers.proc"
local go = proc.go

describe("clusterlua.async", function()
  it("is merged into require 'clusterlua'", function()
    local cl = require "clusterlua" -- a build where this fails fails here, never skips
    assert.equal(async.sleep, cl.sleep)
    assert.equal(async.exec, cl.exec)
    assert.equal(async.connect, cl.tcp_connect)
    assert.equal(require "clusterlua.dns", cl.dns)
  end)

  describe("sleep", function()
    it("waits about the time asked", function()
      go(function()
        uv.update_time()
        local t0 = core.now()
        async.sleep(100)
        local dt = core.now() - t0
        assert.is_true(dt >= 95 and dt < 1000, "slept " .. dt)
      end)
    end)

    it("refuses to run outside a coroutine", function()
      assert.has_error(function() async.sleep(10) end,
        "bad argument to 'sleep': must be called from a coroutine (see clusterlua.spawn)")
    end)

    it("refuses bad arguments", function()
      go(function()
        local ok, err = pcall(async.sleep, "soon")
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'sleep'", err, 1, true)
        ok, err = pcall(async.sleep, -1)
        assert.is_false(ok)
      end)
    end)

    it("lets coroutines interleave", function()
      local order = {}
      async.spawn(function() async.sleep(60) order[#order + 1] = "slow" end)
      async.spawn(function() async.sleep(10) order[#order + 1] = "fast" end)
      assert(async.run_until(function() return #order == 2 end, 3000))
      assert.same({ "fast", "slow" }, order)
    end)

    -- Coroutines that sleep(0) in turn must not keep the loop from polling: a timer that
    -- falls due, and I/O, still get their turn. Each coroutine stops by itself after
    -- 20000 turns, so a regression fails instead of hanging.
    it("sleep(0) lets the loop poll between turns: timers and I/O still run", function()
      local fired_after, turns, done = nil, 0, 0
      local t = uv.new_timer()
      t:start(1, 0, function() fired_after = turns t:close() end)
      local r, w = uv.new_pipe(false), uv.new_pipe(false)
      local fds = uv.pipe()
      r:open(fds.read)
      w:open(fds.write)
      local read_after
      r:read_start(function(_, data) if data and not read_after then read_after = turns end end)
      w:write("x")
      for _ = 1, 2 do
        async.spawn(function()
          for _ = 1, 20000 do
            turns = turns + 1
            if fired_after and read_after then break end
            async.sleep(0)
          end
          done = done + 1
        end)
      end
      assert(async.run_until(function() return done == 2 end, 10000))
      r:read_stop()
      r:close()
      w:close()
      assert.truthy(read_after and read_after < 100, "the pipe was read after " .. tostring(read_after) .. " turns")
      assert.truthy(fired_after, "a 1 ms timer never fired while coroutines slept(0) in turn")
    end)
  end)

  describe("wait", function()
    it("returns what done() is given, even when it comes at once", function()
      go(function()
        assert.same({ 1, 2 }, { async.wait(function(done) done(1, 2) end) })
        local t = uv.new_timer()
        local a, b = async.wait(function(done)
          t:start(10, 0, function() t:close() done("later", nil) end)
        end, 1000)
        assert.equal("later", a)
        assert.is_nil(b)
      end)
    end)

    it("times out, cancelling the operation", function()
      go(function()
        local cancelled = false
        local r, err, code = async.wait(function() return function() cancelled = true end end, 50, "thing")
        assert.is_nil(r)
        assert.equal("ETIMEDOUT", code)
        assert.equal("ETIMEDOUT: thing timed out after 50 ms", err)
        assert.is_true(cancelled)
      end)
    end)
  end)

  describe("run_until", function()
    it("returns true when the condition holds, ETIMEDOUT when it never does", function()
      local t = uv.new_timer()
      local fired = false
      t:start(20, 0, function() t:close() fired = true end)
      assert.is_true(async.run_until(function() return fired end, 2000))
      uv.update_time()
      local t0 = uv.now()
      local ok, err, code = async.run_until(function() return false end, 100)
      uv.update_time()
      assert.is_nil(ok)
      assert.equal("ETIMEDOUT", code)
      assert.matches("within 100 ms", err, 1, true)
      assert.is_true(uv.now() - t0 >= 95 and uv.now() - t0 < 2000)
    end)

    it("may pump again from inside its condition (still the main chunk)", function()
      local t = uv.new_timer()
      local fired, inner = false, 0
      t:start(30, 0, function() t:close() fired = true end)
      assert(async.run_until(function()
        inner = inner + 1
        assert(async.run_until(function() return true end, 10))
        return fired
      end, 2000))
      assert.is_true(inner >= 2)
    end)

    it("refuses to run from a coroutine or a callback", function()
      local from_co, from_cb
      async.spawn(function() from_co = { pcall(async.run_until, function() return true end, 10) } end)
      local t = uv.new_timer()
      t:start(5, 0, function()
        t:close()
        from_cb = { pcall(async.run_until, function() return true end, 10) }
      end)
      assert(async.run_until(function() return from_cb ~= nil end, 2000))
      assert.is_false(from_co[1])
      assert.matches("must be called from the main chunk, not a coroutine", from_co[2], 1, true)
      assert.is_false(from_cb[1])
      assert.matches("must be called from the main chunk, not a callback", from_cb[2], 1, true)
    end)
  end)

  describe("exec", function()
    it("returns status, stdout and stderr", function()
      go(function()
        local status, out, err = async.exec("sh", { "-c", "echo out; echo err >&2; exit 3" })
        assert.equal(3, status)
        assert.equal("out\n", out)
        assert.equal("err\n", err)
      end)
    end)

    it("passes env (added to the inherited environment), cwd and stdin", function()
      go(function()
        local dir = proc.tmpdir()
        local status, out = async.exec("sh", { "-c", 'echo "$CL_A-$CL_B"; pwd; test -n "$PATH" && echo path; cat' }, {
          env = { CL_A = "one", CL_B = 2 },
          cwd = dir,
          stdin = "from stdin",
        })
        proc.rmtree(dir)
        assert.equal(0, status)
        assert.equal("one-2\n" .. dir .. "\npath\nfrom stdin", out)
        status, out = async.exec("/usr/bin/env", {}, { env = { ONLY = "this" }, clear_env = true })
        assert.equal(0, status)
        assert.equal("ONLY=this\n", out)
      end)
    end)

    it("kills the command and returns ETIMEDOUT when it runs too long", function()
      go(function()
        local t0 = core.now()
        local r, err, code = async.exec("sleep", { "10" }, { timeout = 200 })
        local dt = core.now() - t0
        assert.is_nil(r)
        assert.equal("ETIMEDOUT", code)
        assert.matches("^ETIMEDOUT: 'sleep' did not finish within 200 ms", err)
        assert.is_true(dt >= 190 and dt < 3000, "took " .. dt)
        local pid = tonumber(err:match("pid (%d+)"))
        -- the child is gone (reaped), not left running
        assert.is_nil((uv.kill(pid, 0)))
      end)
    end)

    it("returns ENOENT for a command that does not exist", function()
      go(function()
        local r, err, code = async.exec("clusterlua-no-such-command", { "x" })
        assert.is_nil(r)
        assert.equal("ENOENT", code)
        assert.matches("^ENOENT: cannot run 'clusterlua%-no%-such%-command'", err)
      end)
    end)

    it("survives a child that exits without reading its stdin (no SIGPIPE death)", function()
      go(function()
        local status = async.exec("true", {}, { stdin = ("x"):rep(1000000) })
        assert.equal(0, status)
      end)
    end)

    it("reports death by signal as 128 + signal", function()
      go(function()
        local status, _, _, sig = async.exec("sh", { "-c", "kill -9 $$" })
        assert.equal(137, status)
        assert.equal(9, sig)
      end)
    end)

    it("refuses misuse", function()
      assert.has_error(function() async.exec("true") end,
        "bad argument to 'exec': must be called from a coroutine (see clusterlua.spawn)")
      go(function()
        assert.has_error(function() async.exec(42) end, "bad argument #1 to 'exec' (string expected, got number)")
        assert.has_error(function() async.exec("true", { {} }) end)
        assert.has_error(function() async.exec("true", {}, { timeout = "long" }) end)
      end)
    end)
  end)

  describe("streams", function()
    local server, port, accepted
    before_each(function()
      accepted = {}
      server = uv.new_tcp()
      assert(server:bind("127.0.0.1", 0))
      port = server:getsockname().port
      -- an echo server that closes after echoing "bye"
      assert(server:listen(8, function()
        local c = uv.new_tcp()
        server:accept(c)
        accepted[#accepted + 1] = c
        c:read_start(function(err, data)
          if err or not data then return c:close() end
          c:write(data)
          if data:find("bye", 1, true) then c:shutdown(function() c:close() end) end
        end)
      end))
    end)
    after_each(function()
      server:close()
      for _, c in ipairs(accepted) do
        if not c:is_closing() then c:close() end
      end
    end)

    it("connects, writes and reads without callbacks", function()
      go(function()
        local tcp = assert(async.connect("127.0.0.1", port, { timeout = 2000 }))
        assert.is_true(async.write(tcp, "ping"))
        assert.equal("ping", async.read(tcp, 2000))
        assert(async.write(tcp, "bye"))
        assert.equal("bye", async.read(tcp, 2000))
        local r, err, code = async.read(tcp, 2000)
        assert.is_nil(r)
        assert.equal("EOF", code)
        assert.equal("EOF: end of stream", err)
        tcp:close()
      end)
    end)

    it("resolves a host name before connecting", function()
      go(function()
        local tcp = assert(async.connect("localhost", port, { timeout = 2000 }))
        tcp:close()
      end)
    end)

    it("returns ECONNREFUSED when nothing listens", function()
      local closed_port = proc.free_port("tcp")
      go(function()
        local r, err, code = async.connect("127.0.0.1", closed_port, { timeout = 2000 })
        assert.is_nil(r)
        assert.equal("ECONNREFUSED", code)
        assert.matches("^ECONNREFUSED", err)
      end)
    end)

    it("times out a read that gets nothing", function()
      go(function()
        local tcp = assert(async.connect("127.0.0.1", port))
        local r, err, code = async.read(tcp, 100)
        assert.is_nil(r)
        assert.equal("ETIMEDOUT", code)
        assert.matches("read timed out after 100 ms", err, 1, true)
        -- the stream still works after the timeout
        assert(async.write(tcp, "again"))
        assert.equal("again", async.read(tcp, 2000))
        tcp:close()
      end)
    end)
  end)

  describe("readfile", function()
    local dir
    before_each(function() dir = proc.tmpdir() end)
    after_each(function() proc.rmtree(dir) end)

    it("reads a whole file in a coroutine and outside one", function()
      local big = ("0123456789abcdef"):rep(10000) -- several read chunks
      local path = proc.write(dir .. "/f", big)
      assert.equal(big, async.readfile(path))
      go(function() assert.equal(big, async.readfile(path)) end)
      go(function() assert.equal("", async.readfile(proc.write(dir .. "/empty", ""))) end)
    end)

    it("reads files that report size 0 (/proc)", function()
      go(function() assert.matches("^%d+", async.readfile("/proc/self/stat")) end)
    end)

    it("returns nil, err, code for a missing file", function()
      local r, err, code = async.readfile(dir .. "/missing")
      assert.is_nil(r)
      assert.equal("ENOENT", code)
      assert.matches("^ENOENT", err)
      go(function()
        local r2, _, code2 = async.readfile(dir .. "/missing")
        assert.is_nil(r2)
        assert.equal("ENOENT", code2)
      end)
    end)
  end)
end)
