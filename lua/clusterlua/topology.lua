-- Loading and validating topology files. Every mistake is reported before anything
-- starts, naming the file, the key path and what was expected.
local names = require "clusterlua.names"

local M = {}

-- The election core's limits (CL_EL_MAX_NODES_HARD, CL_EL_MAX_NODES_DEFAULT and
-- CL_EL_MAX_VOTING_DEFAULT in runtime/election/election.h): keep them equal.
M.MAX_NODES_HARD = 100000
M.MAX_NODES_DEFAULT = 10000
M.MAX_VOTING_DEFAULT = 5
M.builtin_strategies = { static = true, hosts_file = true, gossip = true, dns = true, dns_srv = true }

local function fail(file, path, msg)
  error({ topology_error = ("%s: %s: %s"):format(file, path, msg) }, 0)
end

local function typed(file, path, v, want, optional)
  if v == nil and optional then return end
  if type(v) ~= want then
    fail(file, path, ("expected a %s, got %s"):format(want, v == nil and "nothing" or type(v)))
  end
end

local function check_keys(file, path, t, allowed)
  for k in pairs(t) do
    if not allowed[k] then
      local list = {}
      for a in pairs(allowed) do list[#list + 1] = a end
      table.sort(list)
      fail(file, path .. "." .. tostring(k), "unknown key (expected one of: " .. table.concat(list, ", ") .. ")")
    end
  end
end

local function string_list(file, path, v, optional)
  if v == nil and optional then return {} end
  typed(file, path, v, "table")
  local out = {}
  for i, s in ipairs(v) do
    if type(s) ~= "string" then fail(file, ("%s[%d]"):format(path, i), "expected a string, got " .. type(s)) end
    out[#out + 1] = s
  end
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > #v or k % 1 ~= 0 then
      fail(file, path, "expected a list of strings, found key " .. tostring(k))
    end
  end
  return out
end

local function dir_of(file)
  return file:match "^(.*)/[^/]*$" or "."
end

function M.resolve_path(topo_file, p)
  if p:sub(1, 1) == "/" then return p end
  return dir_of(topo_file) .. "/" .. p
end

-- Returns the module table of a strategy named in a topology, or raises a topology error.
function M.load_strategy(file, path, name)
  if M.builtin_strategies[name] then
    local ok, mod = pcall(require, "clusterlua.strategy." .. name)
    if not ok then fail(file, path, "cannot load built-in strategy " .. name .. ": " .. tostring(mod)) end
    return mod, "clusterlua.strategy." .. name
  end
  if not name:match "%.lua$" then
    local list = {}
    for k in pairs(M.builtin_strategies) do list[#list + 1] = k end
    table.sort(list)
    fail(file, path, ("unknown strategy %q (expected one of %s, or a path to a .lua file)"):format(
      name, table.concat(list, ", ")))
  end
  local full = M.resolve_path(file, name)
  local chunk, err = loadfile(full)
  if not chunk then fail(file, path, err) end
  local ok, mod = pcall(chunk)
  if not ok then fail(file, path, tostring(mod)) end
  if type(mod) ~= "table" or type(mod.start) ~= "function" then
    fail(file, path, full .. " must return a table with a start(ctx, config, state) function")
  end
  return mod, full
end

local function validate_topologies(file, t)
  typed(file, "topologies", t, "table")
  local out = {}
  for name, topo in pairs(t) do
    local path = "topologies." .. tostring(name)
    if type(name) ~= "string" then fail(file, path, "topology names must be strings") end
    typed(file, path, topo, "table")
    check_keys(file, path, topo, { strategy = true, config = true })
    typed(file, path .. ".strategy", topo.strategy, "string")
    typed(file, path .. ".config", topo.config, "table", true)
    local config = topo.config or {}
    local mod, source = M.load_strategy(file, path .. ".strategy", topo.strategy)
    if mod.validate then
      local ok, res, err = pcall(mod.validate, config)
      if not ok then fail(file, path .. ".config", tostring(res)) end
      if res == nil or res == false then fail(file, path .. ".config", tostring(err or "invalid")) end
    end
    out[name] = { strategy = topo.strategy, config = config, module = mod, source = source }
  end
  return out
end

local function validate_nodes(file, t)
  if t == nil then return {} end
  typed(file, "nodes", t, "table")
  local out = {}
  for name, n in pairs(t) do
    local path = "nodes." .. tostring(name)
    if type(name) ~= "string" then fail(file, path, "node keys must be node names") end
    typed(file, path, n, "table")
    check_keys(file, path, n, { roles = true })
    out[name] = { roles = string_list(file, path .. ".roles", n.roles, true) }
  end
  return out
end

local function validate_election(file, e)
  if e == nil then return {} end
  typed(file, "election", e, "table")
  check_keys(file, "election", e, {
    initial_master_nodes = true, heartbeat_ms = true,
    check_timeout_ms = true, lua_stepdown_ms = true, max_exclusions = true,
    max_nodes = true, max_voting_nodes = true,
  })
  local out = { initial_master_nodes = string_list(file, "election.initial_master_nodes", e.initial_master_nodes, true) }
  local list = out.initial_master_nodes
  for i, n in ipairs(list) do
    if n:find "@" then
      local _, err = names.parse(n)
      if err then fail(file, ("election.initial_master_nodes[%d]"):format(i), err) end
    end
    -- the election's rule (runtime/election/config.c), so a list accepted here is not
    -- refused at start: two entries that can name one node ("node1", "node1@h") clash
    for j = 1, i - 1 do
      if names.matches(n, list[j]) or names.matches(list[j], n) then
        fail(file, ("election.initial_master_nodes[%d]"):format(i), ("duplicate entry %q (also %q)"):format(n, list[j]))
      end
    end
  end
  for _, k in ipairs { "heartbeat_ms", "check_timeout_ms", "lua_stepdown_ms", "max_exclusions" } do
    if e[k] ~= nil then
      if type(e[k]) ~= "number" or e[k] <= 0 or e[k] % 1 ~= 0 then
        fail(file, "election." .. k, "expected a positive integer, got " .. tostring(e[k]))
      end
      out[k] = e[k]
    end
  end
  -- the election core's limits (runtime/election/election.h): refused here, with the key
  -- named, rather than by the node at start
  local mn = e.max_nodes
  if mn ~= nil and (type(mn) ~= "number" or mn % 1 ~= 0 or mn < 1 or mn > M.MAX_NODES_HARD) then
    fail(file, "election.max_nodes", ("expected an integer 1 .. %d (nodes in the cluster, this one included), got %s")
      :format(M.MAX_NODES_HARD, tostring(mn)))
  end
  out.max_nodes = mn
  local mv = e.max_voting_nodes
  if mv ~= nil and (type(mv) ~= "number" or mv % 1 ~= 0 or mv < 3 or mv % 2 == 0 or mv > M.MAX_NODES_HARD) then
    fail(file, "election.max_voting_nodes", ("expected an odd integer, at least 3 (a voting configuration of 3 "
      .. "or more keeps a quorum when one node fails; an even one adds no fault tolerance), got %s"):format(tostring(mv)))
  end
  out.max_voting_nodes = mv
  if mv and mn and mv > mn then
    fail(file, "election.max_voting_nodes", ("%d is above election.max_nodes (%d)"):format(mv, mn))
  end
  local cap = mv or M.MAX_VOTING_DEFAULT
  if #list > cap then
    fail(file, "election.initial_master_nodes", ("%d entries, but at most election.max_voting_nodes (%d) may bootstrap "
      .. "the voting configuration: list fewer, or raise election.max_voting_nodes"):format(#list, cap))
  end
  return out
end

local function validate_transport(file, t)
  if t == nil then return {} end
  typed(file, "transport", t, "table")
  check_keys(file, "transport", t, {
    encrypt = true, max_frame = true, heartbeat_ms = true, timeout_ms = true, mesh = true, send_queue_max = true,
    data_connection = true, spin_us = true, reconnect_timeout_ms = true, watchers = true,
    full_mesh_max = true, idle_close_ms = true, large_timeout_ms = true, large_heartbeat_ms = true,
  })
  typed(file, "transport.encrypt", t.encrypt, "boolean", true)
  typed(file, "transport.mesh", t.mesh, "boolean", true)
  typed(file, "transport.data_connection", t.data_connection, "boolean", true)
  if t.spin_us ~= nil and (type(t.spin_us) ~= "number" or t.spin_us < 0 or t.spin_us > 1000000 or t.spin_us % 1 ~= 0) then
    fail(file, "transport.spin_us", "expected an integer 0 .. 1000000 (microseconds), got " .. tostring(t.spin_us))
  end
  for _, k in ipairs { "max_frame", "heartbeat_ms", "timeout_ms", "send_queue_max" } do
    if t[k] ~= nil and (type(t[k]) ~= "number" or t[k] <= 0 or t[k] % 1 ~= 0) then
      fail(file, "transport." .. k, "expected a positive integer, got " .. tostring(t[k]))
    end
  end
  if t.reconnect_timeout_ms ~= nil and (type(t.reconnect_timeout_ms) ~= "number" or t.reconnect_timeout_ms % 1 ~= 0
      or t.reconnect_timeout_ms < 1000 or t.reconnect_timeout_ms > 4294967295) then
    fail(file, "transport.reconnect_timeout_ms", "expected an integer 1000 .. 4294967295 (milliseconds), got "
      .. tostring(t.reconnect_timeout_ms))
  end
  -- an idle watched peer beats every heartbeat: past half a timeout, healthy peers are
  -- called down between beats, or a DOWN announcement is ignored (docs/design.md §4)
  -- (a heartbeat not given is 200 ms, detector.h's default, but at most half the timeout)
  local hb, to = t.heartbeat_ms, t.timeout_ms or 400
  if hb == nil and type(to) == "number" and to < 2 then
    fail(file, "transport.timeout_ms", ("expected at least 2 (twice the shortest heartbeat), got %s"):format(tostring(to)))
  end
  if type(hb) == "number" and type(to) == "number" and hb * 2 > to then
    fail(file, "transport.heartbeat_ms", ("expected at most half of transport.timeout_ms (%s), got %s"):format(
      tostring(to), tostring(hb)))
  end
  -- each node watches this many peers (runtime/transport/watch.h, CL_WATCH_MAX)
  if t.watchers ~= nil and (type(t.watchers) ~= "number" or t.watchers % 1 ~= 0 or t.watchers < 1 or t.watchers > 64) then
    fail(file, "transport.watchers", "expected an integer 1 .. 64 (peers each node watches), got " .. tostring(t.watchers))
  end
  -- up to this many members a full mesh of connections; above it, the connections a
  -- node needs and those opened on demand (runtime/transport/transport.h)
  if t.full_mesh_max ~= nil and (type(t.full_mesh_max) ~= "number" or t.full_mesh_max % 1 ~= 0
      or t.full_mesh_max < 2 or t.full_mesh_max > 100000) then
    fail(file, "transport.full_mesh_max", "expected an integer 2 .. 100000 (members up to which every node connects "
      .. "to every other), got " .. tostring(t.full_mesh_max))
  end
  -- above full_mesh_max: the timeout toward every peer, and the election's checks
  -- (runtime/transport/transport.h); never shorter than timeout_ms
  if t.large_timeout_ms ~= nil then
    local lo = type(to) == "number" and to or 400
    if type(t.large_timeout_ms) ~= "number" or t.large_timeout_ms % 1 ~= 0 or t.large_timeout_ms < lo
        or t.large_timeout_ms > 600000 then
      fail(file, "transport.large_timeout_ms", ("expected an integer %d .. 600000 (milliseconds, at least "
        .. "transport.timeout_ms), got %s"):format(lo, tostring(t.large_timeout_ms)))
    end
  end
  -- above full_mesh_max: the beat interval a watcher asks for (a quarter of
  -- large_timeout_ms by default); at most half of it, as heartbeat_ms of timeout_ms
  if t.large_heartbeat_ms ~= nil then
    local lt = t.large_timeout_ms
    if type(lt) ~= "number" then lt = math.max(2000, type(to) == "number" and to or 400) end
    if type(t.large_heartbeat_ms) ~= "number" or t.large_heartbeat_ms % 1 ~= 0 or t.large_heartbeat_ms < 5
        or t.large_heartbeat_ms * 2 > lt then
      fail(file, "transport.large_heartbeat_ms", ("expected an integer 5 .. %d (milliseconds, at most half of "
        .. "transport.large_timeout_ms), got %s"):format(math.floor(lt / 2), tostring(t.large_heartbeat_ms)))
    end
  end
  if t.idle_close_ms ~= nil and (type(t.idle_close_ms) ~= "number" or t.idle_close_ms % 1 ~= 0
      or t.idle_close_ms < 100 or t.idle_close_ms > 86400000) then
    fail(file, "transport.idle_close_ms", "expected an integer 100 .. 86400000 (milliseconds), got "
      .. tostring(t.idle_close_ms))
  end
  if t.max_frame and (t.max_frame < 1024 or t.max_frame > 1024 * 1024 * 1024) then
    fail(file, "transport.max_frame", "expected 1024 .. 1073741824 bytes")
  end
  return t
end

-- Validates a topology table. Returns the normalized topology or raises {topology_error=}.
function M.validate(file, t)
  if type(t) ~= "table" then fail(file, "(return value)", "expected the file to return a table, got " .. type(t)) end
  check_keys(file, "(top level)", t, {
    cluster = true, topologies = true, election = true, nodes = true, hooks = true, transport = true,
  })
  typed(file, "cluster", t.cluster, "string", true)
  if t.cluster and not t.cluster:match "^[%w_%-%.]+$" then
    fail(file, "cluster", "expected letters, digits, '_', '-' or '.', got " .. ("%q"):format(t.cluster))
  end
  if t.hooks ~= nil and type(t.hooks) ~= "string" and type(t.hooks) ~= "table" then
    fail(file, "hooks", "expected a file name or a table of hooks, got " .. type(t.hooks))
  end
  return {
    file = file,
    cluster = t.cluster or "clusterlua",
    topologies = validate_topologies(file, t.topologies or {}),
    nodes = validate_nodes(file, t.nodes),
    election = validate_election(file, t.election),
    transport = validate_transport(file, t.transport),
    hooks = t.hooks,
  }
end

-- Loads and validates a topology file. Returns the topology, or nil, "EINVAL: file:...", "EINVAL".
function M.load(file)
  local chunk, err = loadfile(file)
  if not chunk then return nil, "EINVAL: " .. err, "EINVAL" end
  local ok, t = pcall(chunk)
  if not ok then return nil, "EINVAL: " .. tostring(t), "EINVAL" end
  local ok2, res = pcall(M.validate, file, t)
  if not ok2 then
    if type(res) == "table" and res.topology_error then return nil, "EINVAL: " .. res.topology_error, "EINVAL" end
    return nil, "EINVAL: " .. file .. ": " .. tostring(res), "EINVAL"
  end
  return res
end

-- Validation of an in-memory table (clusterlua.start{...}).
function M.from_table(t, origin)
  local ok, res = pcall(M.validate, origin or "(table)", t)
  if ok then res.inline = true end
  if not ok then
    if type(res) == "table" and res.topology_error then return nil, "EINVAL: " .. res.topology_error, "EINVAL" end
    return nil, "EINVAL: " .. tostring(res), "EINVAL"
  end
  return res
end

return M
