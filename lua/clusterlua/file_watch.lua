-- A watch of one file that follows it: the topology, the hooks file, a strategy's
-- source, a hosts file.
--
-- The watch is on the file itself, not on its directory. A directory watch wakes the
-- process for every write to any file beside the one it wants: with 300 nodes on one
-- machine whose logs sat next to their topology, every line any node logged woke all
-- 300 (500 appends to a neighbouring file cost one node 320 wake-ups; issue 18). An
-- editor or a deploy tool that replaces the file by renaming a new one over it leaves
-- the watch on the old inode, so every event arms the watch again on the path (the new
-- file). A path that is missing (removed, or between a rename and its replacement) is
-- looked for again on a timer, 100 ms doubling to 2 s, and its return is a change; a
-- watch refused for another reason (inotify limits) is tried again every minute.
--
--   local w = file_watch.watch(path, on_change [, io])
--     on_change()  called for every event (debounce it: an editor's save is a burst)
--     io           where handles come from, for a caller that tracks them (a strategy's
--                  ctx.watch_file): { fs_event = fn() -> handle, after = fn(ms, cb) ->
--                  a one-shot timer, close = fn(handle), guard = fn(cb) -> cb,
--                  log = fn(level, msg) }; each defaults to libuv's own, unreferenced
--                  (a watch keeps no loop alive)
--   w.close()     stops it; nothing is reported after
local uv = require "uv"

local M = { REARM_MS = 100, REARM_MAX_MS = 2000, RETRY_MS = 60000 }

local function default_io()
  return {
    fs_event = function()
      local h = uv.new_fs_event()
      h:unref()
      return h
    end,
    after = function(ms, cb)
      local t = uv.new_timer()
      t:unref()
      t:start(ms, 0, function()
        t:close()
        cb()
      end)
      return t
    end,
    close = function(h) if not h:is_closing() then h:close() end end,
    guard = function(cb) return cb end,
    log = function() end,
  }
end

function M.watch(path, on_change, io)
  if type(path) ~= "string" or path == "" then error("bad argument #1 (path): expected a file's path", 2) end
  if type(on_change) ~= "function" then error("bad argument #2 (on_change): expected a function", 2) end
  local d = default_io()
  io = io or {}
  for k, v in pairs(d) do if io[k] == nil then io[k] = v end end
  local w = { wait = M.REARM_MS }
  local arm

  local function later()
    if w.closed then return end
    w.timer = io.after(w.wait, io.guard(function()
      w.timer = nil
      w.missing = true
      arm()
    end))
    if w.wait < M.REARM_MAX_MS then w.wait = math.min(w.wait * 2, M.REARM_MAX_MS) end
  end

  arm = function()
    if w.closed then return end
    if w.h then io.close(w.h) end
    w.h = nil
    local h = io.fs_event()
    local ok, err = h:start(path, {}, io.guard(function(e)
      if e or w.closed then return end
      arm() -- first: on_change may throw (io.guard catches it), and the watch must go on
      on_change()
    end))
    if ok then
      w.h = h
      w.wait = M.REARM_MS
      w.warned = nil
      if w.missing then
        w.missing = nil
        on_change()
      end
      return
    end
    io.close(h)
    if tostring(err):match "^ENOENT" then
      w.wait = math.min(w.wait, M.REARM_MAX_MS) -- a missing file is looked for at that pace, after an error too
      return later()
    end
    -- e.g. ENOSPC: the user's inotify watches (fs.inotify.max_user_watches) are spent,
    -- or EMFILE, its instances (max_user_instances, 128 on Debian), as by hundreds of
    -- processes on one machine, or EACCES on a file just replaced: say so once, and
    -- try again every minute (a watch that worked can fail on a re-arm, and must not
    -- be lost for good; a wake-up a minute costs nothing)
    if not w.warned then
      w.warned = true
      io.log("warn", ("cannot watch %s for changes (%s)"):format(path, tostring(err)))
    end
    w.wait = M.RETRY_MS
    later()
  end

  function w.close()
    w.closed = true
    if w.h then io.close(w.h) end
    if w.timer then io.close(w.timer) end
    w.h, w.timer = nil, nil
  end

  arm()
  return w
end

return M
