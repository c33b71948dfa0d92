-- `make install` and `luarocks make` give a binary that finds its modules with no
-- environment variable, from any working directory.
local proc = require "helpers.proc"
local uv = require "uv"

local function check_installed(bin, dir)
  local script = dir .. "/v.lua"
  local f = assert(io.open(script, "w"))
  f:write 'print(require("clusterlua").version, require("clusterlua.c.core").libdir)'
  f:close()
  local p = proc.start(bin, { script }, { cwd = "/", env = { LUA_PATH = "", LUA_PATH_5_1 = "" } })
  assert.equal(0, p:wait_exit(10000), p.stderr)
  local version, libdir = p.stdout:match "^(%S+)\t(%S+)"
  assert.truthy(version, p.stdout)
  assert.equal(dir, libdir:sub(1, #dir), "modules came from outside the install: " .. tostring(libdir))
end

describe("installation", function()
  it("make install PREFIX=... installs a working binary and its modules", function()
    local dir = proc.tmpdir()
    local p = proc.start("make", { "-s", "-C", proc.root, "install", "PREFIX=" .. dir })
    assert.equal(0, p:wait_exit(120000), p.stderr)
    check_installed(dir .. "/bin/clusterlua", dir)
    proc.rmtree(dir)
  end)

  it("luarocks make installs the rock into a tree", function()
    if not uv.fs_stat "/usr/bin/luarocks" then
      pending "luarocks is not installed (make installs it with the other Debian packages)"
      return
    end
    local dir = proc.tmpdir()
    -- a clean copy, so the rock builds in its own tree like a user's checkout
    local cp = proc.start("git", { "clone", "-q", proc.root, dir .. "/src" })
    assert.equal(0, cp:wait_exit(30000), cp.stderr)
    local p = proc.start("luarocks", { "--lua-version", "5.1", "--tree", dir .. "/tree", "make",
      "clusterlua-scm-1.rockspec" }, { cwd = dir .. "/src" })
    assert.equal(0, p:wait_exit(300000), p.stdout .. p.stderr)
    check_installed(dir .. "/tree/bin/clusterlua", dir)
    proc.rmtree(dir)
  end)
end)
