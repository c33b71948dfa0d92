-- clusterlua.start{...}: make this process a node, from a topology file or a table,
-- the way an Elixir app puts Cluster.Supervisor in its supervision tree.
local uv = require "uv"
local core = require "clusterlua.core"
local names = require "clusterlua.names"
local topology = require "clusterlua.topology"
local node = require "clusterlua.node"
local supervisor = require "clusterlua.supervisor"

local M = {}

local function mkdir_p(path)
  local acc = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch "[^/]+" do
    acc = acc .. "/" .. part
    local st = uv.fs_stat(acc)
    if not st then
      local ok, err = uv.fs_mkdir(acc, 448) -- 0700: the data directory holds the node's identity
      if not ok and not tostring(err):match "EEXIST" then return nil, err end
    elseif st.type ~= "directory" then
      return nil, acc .. " exists and is not a directory"
    end
  end
  return true
end

local function random_hex(n)
  local bytes = uv.random(n)
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- The node id lives in the data directory: an empty directory means a new node.
local function node_id(dir)
  local path = dir .. "/node_id"
  local f = io.open(path, "rb")
  if f then
    local id = f:read "*a"
    f:close()
    id = id:gsub("%s+$", "")
    if id:match "^%x+$" and #id == 32 then return id end
    return nil, path .. ": not a node id (expected 32 hex digits); remove it to start as a new node"
  end
  local id = random_hex(16)
  local tmp = path .. ".tmp"
  local w, err = io.open(tmp, "wb")
  if not w then return nil, "cannot write " .. tmp .. ": " .. tostring(err) end
  w:write(id, "\n")
  w:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then return nil, "cannot write " .. path .. ": " .. tostring(rerr) end
  return id
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

M.current = nil -- { topo=, supervisor=, config= }

-- what start{} takes besides the topology keys
M.node_options = {
  file = true, origin = true, name = true, cookie = true, data = true, admin = true, admin_token_file = true,
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
  if type(opts.cookie) ~= "string" or opts.cookie == "" then
    return nil, "EINVAL: a cookie is required", "EINVAL"
  end
  -- before the data directory exists: a bad token file must not leave state behind
  local token
  if opts.admin_token_file then
    local terr
    token, terr = require("clusterlua.secret_file").read("--admin-token-file", opts.admin_token_file)
    if not token then return nil, "EINVAL: " .. terr, "EINVAL" end
  end
  local data = opts.data or ("./data/" .. me.short)
  local ok, derr = mkdir_p(data)
  if not ok then return nil, "EIO: --data " .. data .. ": " .. tostring(derr), "EIO" end
  local id, ierr = node_id(data)
  if not id then return nil, "EIO: " .. ierr, "EIO" end
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
  local config = {
    name = me.full, id = id, cluster = topo.cluster, cookie = opts.cookie, roles = roles,
    data = data, admin = opts.admin, admin_token = token,
    encrypt = tr.encrypt ~= false, mesh = tr.mesh ~= false, max_frame = tr.max_frame,
    heartbeat_ms = tr.heartbeat_ms, timeout_ms = tr.timeout_ms, send_queue_max = tr.send_queue_max,
    data_connection = tr.data_connection ~= false, spin_us = tr.spin_us,
    initial_master_nodes = imn, election = topo.election,
    log_subsys = next(topo.topologies) or "node",
  }
  ok, err, code = node.start(config)
  if not ok then return nil, err, code end
  local sup = supervisor.new {
    self_name = me.full,
    want = function(n) node.cnode().want(n) end,
    unwant = function(n) node.cnode().unwant(n) end,
  }
  M.current = { topo = topo, supervisor = sup, config = config }
  local sok, serr = sup:start_all(topo.topologies)
  if not sok then
    core.log("error", "node", serr)
    return nil, "EINVAL: " .. serr, "EINVAL"
  end
  local hooks = require "clusterlua.hooks"
  local hok, herr = hooks.load(topo)
  if not hok then return nil, "EINVAL: " .. tostring(herr), "EINVAL" end
  require("clusterlua.reload").install(M.current)
  return true
end

return M
