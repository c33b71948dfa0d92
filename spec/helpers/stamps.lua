-- Reads the stamp files that spec/fixtures/stamp_hooks.lua appends (one per node, named
-- by CL_STAMPS), for spec/helpers/scale.lua and bench/run.lua's scale rows: the one
-- parser of that format. Each call returns only what was appended since the last one, so
-- a harness polling hundreds of nodes reads each byte once; a line still being written
-- waits for its newline.
--
-- A file is opened once and then read at its offset (one pread per poll when nothing
-- was appended): opening, seeking, reading and closing 300 files every 25 ms was a
-- sixth of the CPU the machine spent in a 300-node failover (perf, issue 18), taken
-- from the very nodes being timed. close() lets the descriptors go.
local uv = require "uv"

local M = {}
local R = {}
R.__index = R

local CHUNK = 65536

-- a reader of dir/1 … dir/n
function M.reader(dir)
  return setmetatable({ dir = dir, off = {}, partial = {}, fd = {} }, R)
end

-- calls fn(t, event, a1, a2, a3) for each whole line node i appended since the last call:
-- t in µs (CLOCK_MONOTONIC, as uv.hrtime() / 1000), then the event and its arguments as
-- strings ("" when absent); a missing file is a node that has not stamped yet
function R:read(i, fn)
  local fd = self.fd[i]
  if not fd then
    fd = uv.fs_open(self.dir .. "/" .. i, "r", 0)
    if not fd then return end
    self.fd[i] = fd
  end
  local off, parts = self.off[i] or 0, { self.partial[i] or "" }
  while true do
    local data = uv.fs_read(fd, CHUNK, off)
    if not data or #data == 0 then break end
    parts[#parts + 1] = data
    off = off + #data
    if #data < CHUNK then break end
  end
  self.off[i] = off
  if #parts == 1 then return end
  local buf, start = table.concat(parts), 1
  while true do
    local nl = buf:find("\n", start, true)
    if not nl then break end
    local t, ev, a1, a2, a3 = buf:sub(start, nl - 1):match "^(%d+) (%S+) ?(%S*) ?(%S*) ?(%S*)$"
    start = nl + 1
    if t then fn(tonumber(t), ev, a1, a2, a3) end
  end
  self.partial[i] = buf:sub(start)
end

-- closes every file opened (a later read opens them again: call it when done)
function R:close()
  for i, fd in pairs(self.fd) do
    uv.fs_close(fd)
    self.fd[i] = nil
  end
end

return M
