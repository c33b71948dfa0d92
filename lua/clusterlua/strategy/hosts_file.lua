-- Nodes listed in a file, one name a line, `#` starting a comment. The file is re-read
-- when it changes: a watch of the file that follows editors that replace it by renaming a
-- new one over it (clusterlua.file_watch) and, because fs events are not delivered on
-- every file system (NFS, some container mounts), a slow poll as well.
--
-- A file that cannot be read or has a bad line is a failed discovery: the last good set
-- stays declared and the error is reported; only a good read that no longer lists a
-- node removes it.
local check = require "clusterlua.check"
local names = require "clusterlua.names"

local M = {}

M.defaults = { poll_interval = 5000, debounce = 100 }

local KEYS = { path = true, poll_interval = true, debounce = true }

function M.validate(config)
  local ok, err = check.config_keys(config, KEYS)
  if not ok then return nil, err end
  if type(config.path) ~= "string" or config.path == "" then
    return nil, "path: expected the path of a file of node names, got " .. (config.path == nil and "nothing" or
      ("%q"):format(tostring(config.path)))
  end
  ok, err = check.config_int(config, "poll_interval", 100, nil, "an integer >= 100 (milliseconds)")
  if not ok then return nil, err end
  ok, err = check.config_int(config, "debounce", 0, nil, "an integer >= 0 (milliseconds)")
  if not ok then return nil, err end
  return true
end

--- parse(text, path) -> list of full names | nil, "EINVAL: path:line: why", "EINVAL"
function M.parse(text, path)
  local out, seen, lineno = {}, {}, 0
  for line in (text .. "\n"):gmatch "([^\n]*)\n" do
    lineno = lineno + 1
    local entry = line:gsub("#.*$", ""):match "^%s*(.-)%s*$"
    if entry ~= "" then
      if entry:find "%s" then
        return nil, ("EINVAL: %s:%d: expected one node name a line, got %q"):format(path, lineno, entry), "EINVAL"
      end
      local full, err = names.full(entry)
      if not full then
        return nil, ("EINVAL: %s:%d: %s"):format(path, lineno, (err:gsub("^EINVAL: ", ""))), "EINVAL"
      end
      if not seen[full] then
        seen[full] = true
        out[#out + 1] = full
      end
    end
  end
  return out
end

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then
    local code = tostring(err):match "No such file" and "ENOENT" or "EIO"
    return nil, ("%s: cannot read %s"):format(code, tostring(err)), code
  end
  local text, rerr = f:read "*a"
  f:close()
  if not text then return nil, ("EIO: cannot read %s: %s"):format(path, tostring(rerr)), "EIO" end
  return text
end

local instances = setmetatable({}, { __mode = "k" })

function M.start(ctx, config, state)
  local path = config.path
  local inst = { last_text = nil, last_error = nil, list = state and state.list or nil }
  instances[ctx] = inst
  if inst.list then ctx.set_nodes(inst.list) end

  local function refresh()
    local text, err = read(path)
    local list
    if text then
      if text == inst.last_text then return end
      list, err = M.parse(text, path)
    end
    if not list then
      -- a file that stays broken is reported once, not on every poll
      if err ~= inst.last_error then
        inst.last_error = err
        ctx.log("warn", ("keeping the last %d node(s): %s"):format(inst.list and #inst.list or 0, err))
        ctx.error(err)
      end
      inst.last_text = nil
      return
    end
    if inst.last_error then ctx.log("info", path .. " is readable again") end
    inst.last_error, inst.last_text, inst.list = nil, text, list
    ctx.set_nodes(list)
  end

  -- A burst of events (write, chmod, rename) becomes one read; later events in the
  -- burst schedule another, so the final contents are always read.
  local pending = false
  local function changed()
    if pending then return end
    pending = true
    ctx.timer(config.debounce or M.defaults.debounce, function()
      pending = false
      refresh()
    end)
  end

  -- the file itself, followed through renames (clusterlua.file_watch)
  ctx.watch_file(path, changed, ("polling every %d ms"):format(config.poll_interval or M.defaults.poll_interval))
  ctx.every(config.poll_interval or M.defaults.poll_interval, refresh)
  refresh()
end

function M.stop(ctx)
  local inst = instances[ctx]
  instances[ctx] = nil
  if not inst then return nil end
  return { list = inst.list }
end

return M
