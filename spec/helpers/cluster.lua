-- Real clusterlua nodes on loopback for multi-process specs: a topology in a temporary
-- directory, free ports, admin endpoints, and bounded waits on what the nodes say.
-- Nodes print hook events on stdout as "EVENT <name> <args...>" (see the hooks file
-- written below), so a spec can wait for exactly what a user's hook would see.
local uv = require "uv"
local cjson = require "cjson.safe"
local proc = require "helpers.proc"
local netns = require "helpers.netns"

local M = {}

-- Below Linux's ephemeral range (32768-60999): a port taken from there can be grabbed by
-- any outgoing connection before the node binds it.
local used = {}
math.randomseed(uv.hrtime() % 1000000007 + uv.os_getpid())
local function free_port()
  for _ = 1, 200 do
    local port = math.random(20000, 32000)
    if not used[port] then
      local t = uv.new_tcp()
      local ok = t:bind("127.0.0.1", port)
      t:close()
      if ok then
        used[port] = true
        return port
      end
    end
  end
  error("no free loopback port below 32000")
end
M.free_port = free_port

M.ip = netns.ip

local write = proc.write
M.write = write

-- the prelude of every hooks file a spec writes: `cl`, `out(...)` prints one EVENT line,
-- `me(i)` is true on node i
M.HOOKS_PRELUDE = [[
local cl = require "clusterlua"
local function out(...)
  local t = {}
  for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
  io.stdout:write("EVENT ", table.concat(t, " "), "\n")
  io.stdout:flush()
end
local function me(i) return cl.self().name:match("^node" .. i .. "@") ~= nil end
]]

local HOOKS = M.HOOKS_PRELUDE .. [[
return {
  node_up = function(n) out("node_up", n) end,
  node_down = function(n, r) out("node_down", n, r) end,
  master_changed = function(new, old, term) out("master_changed", new, old, term) end,
  quorum_lost = function() out("quorum_lost") end,
  quorum_regained = function() out("quorum_regained") end,
  state_committed = function(s) out("state_committed", s.term, s.version) end,
  reloaded = function(w) out("reloaded", table.concat(w, ",")) end,
  strategy_error = function(t, e) out("strategy_error", t, e) end,
}
]]

-- opts: n (nodes), cookie, extra (Lua source appended into the topology table),
--       hooks (source of a hooks file; default prints events), nodes_extra (per node),
--       topologies (Lua source of the `topologies` table; default: static, every node),
--       netns (a network namespace the caller created: nodes and curl run inside it),
--       election (Lua source appended into the topology's election table)
-- a fresh cluster key, as `clusterlua cookie` makes one
function M.new_key()
  local code, out = proc.run(proc.bin, { "cookie" })
  assert(code == 0, out)
  return (out:gsub("%s+$", ""))
end

function M.new(opts)
  opts = opts or {}
  local c = { nodes = {}, n = opts.n or 3, cookie = opts.cookie or "spec-cookie", netns = opts.netns }
  c.dir = os.tmpname()
  os.remove(c.dir)
  assert(uv.fs_mkdir(c.dir, 448))
  c.names, c.admin = {}, {}
  for i = 1, c.n do
    c.names[i] = ("node%d@127.0.0.1:%d"):format(i, free_port())
    c.admin[i] = ("127.0.0.1:%d"):format(free_port())
  end
  local hosts = {}
  for i, n in ipairs(c.names) do hosts[i] = ("%q"):format(n) end
  -- seed_only: every node lists only node1; the mesh does the rest
  if opts.seed_only then hosts = { ("%q"):format(c.names[1]) } end
  local imn = {}
  for i = 1, math.min(c.n, opts.initial or c.n) do imn[i] = ("%q"):format("node" .. i) end
  c.topology = c.dir .. "/topology.lua"
  write(c.dir .. "/hooks.lua", opts.hooks or HOOKS)
  write(c.topology, ([[
return {
  cluster = %q,
  topologies = %s,
  election = { initial_master_nodes = { %s }, %s },
  hooks = "hooks.lua",
  %s
}
]]):format(opts.cluster or "spec",
    opts.topologies or ('{ spec = { strategy = "static", config = { hosts = { %s } } } }'):format(table.concat(hosts, ", ")),
    table.concat(imn, ", "), opts.election or "", opts.extra or ""))
  return setmetatable(c, { __index = M })
end

function M:start(i, extra_args, env)
  local args = { "--name", self.names[i], "--admin", self.admin[i], "--data", self.dir .. "/data" .. i }
  -- a node given its keys in a keyring file (or its own cookie) gets no --cookie
  local own_keys = false
  for _, a in ipairs(extra_args or {}) do
    if a == "--keyring-file" or a == "--cookie" then own_keys = true end
  end
  if not own_keys then
    args[#args + 1] = "--cookie"
    args[#args + 1] = self.cookie
  end
  for _, a in ipairs(extra_args or {}) do args[#args + 1] = a end
  args[#args + 1] = self.topology
  local cmd = proc.bin
  -- CLUSTERLUA_VALGRIND="valgrind --error-exitcode=99 --leak-check=full" runs every node
  -- under that command (docs/reliability.md)
  local vg = os.getenv "CLUSTERLUA_VALGRIND"
  if vg and vg ~= "" then
    local words = {}
    for w in vg:gmatch "%S+" do words[#words + 1] = w end
    words[#words + 1] = "--log-file=" .. (os.getenv "CLUSTERLUA_VALGRIND_DIR" or self.dir) .. "/valgrind-node" .. i
      .. "-%p.log"
    table.insert(args, 1, proc.bin)
    for j = #words, 2, -1 do table.insert(args, 1, words[j]) end
    cmd = words[1]
  end
  if self.netns then
    -- `ip netns exec` execs the command itself: the pid is still the node's
    args = netns.exec_args(self.netns, cmd, args)
    cmd = netns.ip
  end
  local p = proc.start(cmd, args, { env = env, log = self.dir .. "/node" .. i .. ".log" })
  self.nodes[i] = p
  return p
end

function M:start_all(extra_args, env)
  for i = 1, self.n do self:start(i, extra_args, env) end
end

-- curl is a separate process, so a busy node's Lua is never involved in the answer
function M:http(i, method, path, body)
  local args = { "-s", "-m", "3", "-X", method, "-w", "\n%{http_code}", "http://" .. self.admin[i] .. path }
  if body then
    args[#args + 1] = "--data-binary"
    args[#args + 1] = body
  end
  local cmd = "curl"
  if self.netns then
    args = netns.exec_args(self.netns, "curl", args)
    cmd = netns.ip
  end
  local p = proc.start(cmd, args)
  p:wait_exit(5000)
  local text, code = p.stdout:match "^(.*)\n(%d+)$"
  return tonumber(code), text and cjson.decode(text) or nil, text
end

-- node i's /_nodes entries by name (nil if the endpoint did not answer)
function M:listed(i)
  local code, j = self:http(i, "GET", "/_nodes")
  if code ~= 200 or type(j) ~= "table" or type(j.nodes) ~= "table" then return nil end
  local out = {}
  for _, n in ipairs(j.nodes) do out[n.name] = n end
  return out
end

-- the peers node i reports connected (not itself), their /_nodes entries by name
function M:connected(i)
  local out = {}
  for name, n in pairs(self:listed(i) or {}) do
    if n.connected == true and n.self ~= true then out[name] = n end
  end
  return out
end

-- a condition for proc.wait_until: each node of `which` (indexes) connected to the others
function M:all_connected(which)
  return function()
    for _, i in ipairs(which) do
      local got = self:connected(i)
      for _, k in ipairs(which) do
        if k ~= i and not got[self.names[k]] then return false end
      end
    end
    return true
  end
end

-- every node's output, for an assertion's message
function M:outputs()
  local t = {}
  for i, p in pairs(self.nodes) do t[#t + 1] = ("--- node%d:\n%s"):format(i, p:output()) end
  return table.concat(t, "\n")
end

function M:health(i)
  local code, j = self:http(i, "GET", "/_cluster/health")
  if code == 200 then return j end
end

-- waits until every listed node (default all running) agrees on one master (other than
-- `not_this` when given)
function M:wait_master(timeout_ms, which, not_this)
  local master, term
  local ok = proc.wait_until(function()
    master, term = nil, nil
    for i = 1, self.n do
      if (not which or which[i]) and self.nodes[i] and not self.nodes[i].exited then
        local h = self:health(i)
        if not h or h.master == cjson.null or h.master == nil then return false end
        if master and (h.master ~= master or h.term ~= term) then return false end
        master, term = h.master, h.term
      end
    end
    return master ~= nil and master ~= not_this
  end, timeout_ms or 10000)
  if not ok then return nil end
  return master, term
end

function M:index_of(name)
  for i, n in ipairs(self.names) do if n == name then return i end end
end

function M:stop_all()
  for _, p in pairs(self.nodes) do p:stop(3000) end
  proc.kill_all()
end

function M:cleanup()
  self:stop_all()
  os.execute("rm -rf '" .. self.dir .. "'")
end

return M
