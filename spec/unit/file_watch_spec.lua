-- clusterlua.file_watch: a watch of one file itself (not its directory), followed
-- through renames, removal and return. What the process's inotify instances watch is
-- read from /proc/self/fdinfo (each watch names its inode), so "not the directory" is
-- checked directly rather than by waiting for an event that should not come.
local uv = require "uv"
local async = require "clusterlua.async"
local proc = require "helpers.proc"
local file_watch = require "clusterlua.file_watch"

local function watched() return proc.inotify_inodes "self" end
local function ino(path) return assert(uv.fs_stat(path)).ino end

describe("file_watch", function()
  local dir, w
  before_each(function() dir = assert(uv.fs_mkdtemp("/tmp/clusterlua-fw-XXXXXX")) end)
  after_each(function()
    if w then w.close() end
    w = nil
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("watches the file, not its directory, and follows it through renames, removal and return", function()
    local path, n = dir .. "/topology.lua", 0
    proc.write(path, "return {}\n")
    w = file_watch.watch(path, function() n = n + 1 end)
    local function on_file()
      local s = watched()
      return s[ino(path)] and not s[ino(dir)]
    end
    assert.truthy(on_file(), "the file itself is watched, and not its directory")

    -- replaced by rename, twice: a change each time, and the watch is on the new file
    for k = 1, 2 do
      local before = n
      proc.write(path .. ".new", "return { v = " .. k .. " }\n")
      assert(os.rename(path .. ".new", path))
      assert(async.run_until(function() return n > before and on_file() end, 3000))
    end

    -- removed: a change; back: a change again, and watched again
    local before = n
    assert(os.remove(path))
    assert(async.run_until(function() return n > before end, 3000))
    before = n
    proc.write(path, "return {}\n")
    assert(async.run_until(function() return n > before and on_file() end, 5000))

    -- an edit in place is a change
    before = n
    local f = assert(io.open(path, "a"))
    f:write "-- edited\n"
    f:close()
    assert(async.run_until(function() return n > before end, 3000))

    -- closed: no change reported after; the marker is a second watch of the same file,
    -- which sees the write
    w.close()
    before = n
    local seen = 0
    w = file_watch.watch(path, function() seen = seen + 1 end)
    proc.write(path, "return { after = true }\n")
    assert(async.run_until(function() return seen > 0 end, 3000))
    assert.equal(before, n)
  end)

  it("refuses a missing path or callback", function()
    assert.has_error(function() file_watch.watch(nil, function() end) end,
      "bad argument #1 (path): expected a file's path")
    assert.has_error(function() file_watch.watch("/tmp/x", nil) end,
      "bad argument #2 (on_change): expected a function")
  end)
end)
