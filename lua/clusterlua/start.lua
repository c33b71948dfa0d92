-- clusterlua.start{...}: make this process a node, from a topology file or a table,
-- the way an Elixir app puts Cluster.Supervisor in its supervision tree.
-- This is where the parts of a running node are wired together: the handlers of the
-- control loop's reports (cluster, reload) are given to node.start here, explicitly,
-- whichever modules the script itself required.
local uv = require "uv"
local core = require "clusterlua.c.core"
local names = require "clusterlua.names"
local topology = require "clusterlua.topology"
local node = require "clusterlua.node"
local cluster = require "clusterlua.cluster"
local hooks = require "clusterlua.hooks"
local reload = require "clusterlua.reload"
local supervisor = require "clusterlua.supervisor"

local M = {}

local function random_hex(n)
  local bytes = uv.random(n)
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function readable_writable(path)
  return uv.fs_access(path, "r") and uv.fs_access(path, "w")
end

-- Checks the data directory without writing anything: the node creates it (mode 0700)
-- and its node_id only once every other check has passed (runtime/node/node.c). Returns
-- the node id and whether it is new, or nil, err.
local function check_data(dir)
  local st = uv.fs_stat(dir)
  if not st then
    -- a new directory: the nearest existing ancestor must let us create it
    local up = dir
    while true do
      local parent = up:match "^(.*)/[^/]*$"
      parent = parent == nil and "." or parent == "" and "/" or parent
      local ast = uv.fs_stat(parent)
      if ast then
        if ast.type ~= "directory" then return nil, parent .. " exists and is not a directory" end
        if not (uv.fs_access(parent, "w") and uv.fs_access(parent, "x")) then
          return nil, ("cannot create it: %s is not writable by this user"):format(parent)
        end
        break
      end
      if parent == up then break end
      up = parent
    end
    return random_hex(16), true
  end
  if st.type ~= "directory" then return nil, dir .. " exists and is not a directory" end
  if not (uv.fs_access(dir, "w") and uv.fs_access(dir, "x") and uv.fs_access(dir, "r")) then
    return nil, dir .. " is not readable and writable by this user"
  end
  local state = dir .. "/cluster_state"
  if uv.fs_stat(state) and not readable_writable(state) then
    return nil, state .. " is not readable and writable by this user"
  end
  -- The node id lives in the data directory: none means a new node.
  local path = dir .. "/node_id"
  if not uv.fs_stat(path) then return random_hex(16), true end
  local f, ferr = io.open(path, "rb")
  if not f then return nil, "cannot read " .. tostring(ferr) end
  local id = f:read "*a"
  f:close()
  id = id:gsub("%s+$", "")
  if id:match "^%x+$" and #id == 32 then return id, false end
  return nil, path .. ": not a node id (expected 32 hex digits); remove it to start as a new node"
end

local function split_list(s)
  local out = {}
  if type(s) == "table" then
    for _, v in ipairs(s) do out[#out + 1] = v end
    return out
  end
  for item in tostring(s):gmatch "[^,%s]+" do out[#out + 1] = item end
  return out
end

local function only_topology(topologies)
  local first = next(topologies)
  if first ~= nil and next(topologies, first) == nil then return first end
  return nil
end

-- shorter cookies start with a warning
M.min_cookie_bytes = 16

-- what start{} takes besides the topology keys
M.node_options = {
  file = true, origin = true, name = true, cookie = true, data = true, admin = true, admin_token_file = true,
  keys = true, keyring_file = true,
  roles = true, initial_master_nodes = true,
}

function M.start(opts)
  if type(opts) ~= "table" then error("bad argument #1 (opts): expected a table", 2) end
  if node.is_started() then return nil, "EALREADY: this process is already a node", "EALREADY" end
  local topo, err, code
  if opts.file then
    topo, err, code = topology.load(opts.file)
  else
    -- inline: the topology keys, without the node's own options
    local t = {}
    for k, v in pairs(opts) do
      if not M.node_options[k] then t[k] = v end
    end
    topo, err, code = topology.from_table(t, opts.origin or "clusterlua.start")
  end
  if not topo then return nil, err, code end
  local me, nerr, ncode = names.parse(opts.name)
  if not me then return nil, nerr, ncode end
  if opts.keys ~= nil then
    if type(opts.keys) ~= "table" or #opts.keys == 0 then
      return nil, "EINVAL: keys: expected a list of keys, the first the primary", "EINVAL"
    end
    for i, k in ipairs(opts.keys) do
      if type(k) ~= "string" or #k < M.min_cookie_bytes or k:find("[%z\r\n]") then
        return nil, ("EINVAL: keys[%d]: a key is a string of at least %d bytes without line breaks"):format(i,
          M.min_cookie_bytes), "EINVAL"
      end
    end
  elseif type(opts.cookie) ~= "string" or opts.cookie == "" then
    return nil, "EINVAL: a cookie is required", "EINVAL"
  elseif opts.cookie:find("[%z\r\n]") then
    -- the keyring reaches C as lines: a line break would split one cookie into several
    -- keys, a short piece of it among them, accepted without the short-cookie warning
    return nil, "EINVAL: the cookie contains a line break or a NUL byte: one cookie is one line "
      .. "(`clusterlua cookie` prints one; several keys belong in --keyring-file)", "EINVAL"
  end
  -- before the data directory exists: a bad token file must not leave state behind
  local token
  if opts.admin_token_file then
    local terr
    token, terr = require("clusterlua.secret_file").read("--admin-token-file", opts.admin_token_file)
    if not token then return nil, "EINVAL: " .. terr, "EINVAL" end
  end
  local data = opts.data or ("./data/" .. me.short)
  local id, new_id = check_data(data)
  if not id then return nil, "EIO: --data " .. data .. ": " .. tostring(new_id), "EIO" end
  -- The keyring: a keyring file's keys (rewritten there on rotation); else the cookie,
  -- unless a rotation left DATA/keyring behind, which then wins: the cookie given may
  -- be a key the cluster no longer holds.
  local keys, keyring_path = opts.keys, opts.keyring_file
  if not keys then
    keyring_path = data .. "/keyring"
    if uv.fs_stat(keyring_path) then
      local text, kerr = require("clusterlua.secret_file").read("keyring", keyring_path, 65536)
      local ring, perr
      if text then ring, perr = require("clusterlua.c.crypto").keyring_parse(text, false) end
      if not ring then return nil, "EINVAL: " .. tostring(kerr or (keyring_path .. ": " .. perr)), "EINVAL" end
      core.log("info", "node", ("using the keyring in %s (%d key(s)) rather than the cookie given: the cluster's "
        .. "keys were rotated while this node ran (`clusterlua keys list` shows them)"):format(keyring_path, #ring))
      keys = ring
    else
      keys = { opts.cookie }
    end
  end
  local roles
  if opts.roles then
    roles = split_list(opts.roles)
  elseif topo.nodes[me.short] or topo.nodes[me.full] then
    roles = (topo.nodes[me.full] or topo.nodes[me.short]).roles
  else
    roles = { "master" }
  end
  local imn = opts.initial_master_nodes and split_list(opts.initial_master_nodes) or topo.election.initial_master_nodes
  local tr = topo.transport
  -- hooks are read and checked now, registered once the node runs: a broken hooks
  -- file must stop the start before anything is written or any port is bound
  local hook_set, herr = hooks.prepare(topo)
  if not hook_set then return nil, "EINVAL: " .. tostring(herr), "EINVAL" end
  local config = {
    name = me.full, id = id, new_id = new_id, cluster = topo.cluster, cookie = keys[1], roles = roles,
    keyring = table.concat(keys, "\n"), keyring_path = keyring_path, keys = keys,
    data = data, admin = opts.admin, admin_token = token,
    encrypt = tr.encrypt ~= false, mesh = tr.mesh ~= false, max_frame = tr.max_frame,
    heartbeat_ms = tr.heartbeat_ms, timeout_ms = tr.timeout_ms, send_queue_max = tr.send_queue_max,
    reconnect_timeout_ms = tr.reconnect_timeout_ms, watchers = tr.watchers,
    full_mesh_max = tr.full_mesh_max, idle_close_ms = tr.idle_close_ms, large_timeout_ms = tr.large_timeout_ms,
    large_heartbeat_ms = tr.large_heartbeat_ms,
    data_connection = tr.data_connection ~= false, spin_us = tr.spin_us,
    initial_master_nodes = imn, election = topo.election,
    -- the transport serves every topology: it takes a topology's name only when there is
    -- exactly one, else its own ("transport"), never one picked at random
    log_subsys = only_topology(topo.topologies),
  }
  for _, k in ipairs(keys) do
    if #k < M.min_cookie_bytes then
      -- a warning, not a refusal: existing clusters (and the examples' walk-through) keep
      -- starting; the length is logged, never the cookie. Only a cookie (also once
      -- carried into DATA/keyring) can be this short: installed keys are checked.
      core.log("warn", "node", ("the cookie is %d bytes long: anyone who guesses it can join the cluster; use at "
        .. "least %d random bytes (`clusterlua cookie` prints one)"):format(#k, M.min_cookie_bytes))
    end
  end
  -- the strategies start only once the node runs, but the supervisor exists first so
  -- that a leave or a SIGTERM can always stop it
  local sup = supervisor.new {
    self_name = me.full, cluster = topo.cluster, cookie = keys[1],
    -- the keyring as it is now: rotations reach the strategies without a reload
    keys = function() return node.keyring() end,
    want = function(n) node.want(n) end,
    unwant = function(n) node.cnode().unwant(n) end,
    disconnect = function(n) node.cnode().disconnect(n) end,
  }
  local reports = { reload = reload.on_admin_request }
  for kind, fn in pairs(cluster.reports) do reports[kind] = fn end
  local ok
  ok, err, code = node.start(config, reports, { before_exit = function() sup:stop_all() end })
  if not ok then return nil, err, code end
  hooks.apply(hook_set)
  local sok, serr = sup:start_all(topo.topologies)
  if not sok then
    core.log("error", "node", serr)
    return nil, "EINVAL: " .. serr, "EINVAL"
  end
  reload.install { topo = topo, supervisor = sup }
  return true
end

return M
