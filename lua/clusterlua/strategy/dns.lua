-- The headless-service pattern: poll a name's A/AAAA records and declare
-- `node_basename@address:port` for each address.
--
-- What counts as an answer (libcluster's DNS strategies took a resolver error for "no
-- nodes" and disconnected everyone; here only a real answer changes the set):
--   * addresses (NOERROR with records)           -> exactly those nodes
--   * NOERROR without records of the type (ENODATA) -> no nodes: the name exists and
--     lists nobody, which is what a scaled-to-zero service looks like
--   * NXDOMAIN (ENOTFOUND), SERVFAIL, REFUSED, timeout, connection refused, ...
--     -> an error: the last set stays declared, ctx.error reports it, the next poll
--     retries. NXDOMAIN is an error too because a typo'd or not-yet-created zone, or a
--     resolver briefly serving a stale zone, must not take the cluster apart.
-- With family "any", an error on either A or AAAA is an error for the whole poll: an
-- AAAA timeout must not drop the nodes only AAAA would have listed.
local check = require "clusterlua.check"
local names = require "clusterlua.names"

local M = {}

M.defaults = { port = names.default_port, interval = 5000, family = "any" }

-- shared with dns_srv
local common = {}
M._common = common

common.check_keys = check.config_keys
common.check_int = check.config_int

function common.check_common(config)
  if type(config.query) ~= "string" or not config.query:match "^[%w_%-%.]+$" or config.query:match "%.%." then
    return nil, "query: expected a DNS name such as \"nodes.example.internal\", got " ..
      (config.query == nil and "nothing" or ("%q"):format(tostring(config.query)))
  end
  if type(config.node_basename) ~= "string" or not config.node_basename:match "^[%w_%-%.]+$" then
    return nil, "node_basename: expected the part of node names before '@' (letters, digits, '_', '-', '.'), got " ..
      (config.node_basename == nil and "nothing" or ("%q"):format(tostring(config.node_basename)))
  end
  local ok, err = common.check_int(config, "interval", 100, nil, "an integer >= 100 (milliseconds)")
  if not ok then return nil, err end
  ok, err = common.check_int(config, "timeout", 1, nil, "an integer >= 1 (milliseconds)")
  if not ok then return nil, err end
  if config.resolver ~= nil then
    local r = config.resolver
    local host, port
    if type(r) == "string" then
      host, port = r:match "^%[([%x:]+)%]:(%d+)$"
      if not host then host, port = r:match "^(%d+%.%d+%.%d+%.%d+):(%d+)$" end
      if not host and r:match "^%d+%.%d+%.%d+%.%d+$" then host, port = r, "53" end
    end
    if not host or tonumber(port) < 1 or tonumber(port) > 65535 then
      return nil, ("resolver: expected \"address:port\" (an IP address, e.g. \"127.0.0.1:53\" or \"[::1]:53\"), got %s"):format(
        type(r) == "string" and ("%q"):format(r) or type(r))
    end
  end
  return true
end

function common.dns_opts(config)
  local interval = config.interval or M.defaults.interval
  return {
    server = config.resolver,
    -- a lookup never outlives the poll it belongs to
    timeout = config.timeout or math.min(5000, interval),
  }
end

local function sorted_keys(set)
  local l = {}
  for k in pairs(set) do l[#l + 1] = k end
  table.sort(l)
  return l
end
common.sorted_keys = sorted_keys

-- Runs lookup(done) now and every interval; done(list) declares list, done(nil, err)
-- keeps the last set and reports. One lookup at a time: a slow resolver delays the
-- next poll instead of piling queries up.
function common.poll(ctx, config, state, instances, lookup)
  local inst = { list = state and state.list or nil, stopped = false, busy = false, failing = false }
  instances[ctx] = inst
  if inst.list then ctx.set_nodes(inst.list) end
  local guard = ctx.guard or function(f) return f end
  local function run()
    if inst.busy or inst.stopped then return end
    inst.busy = true
    lookup(guard(function(list, err)
      inst.busy = false
      if inst.stopped then return end
      if not list then
        -- one line per failure, through ctx.error, whose log is rate-limited (a dead
        -- resolver fails every poll); the set stays as it was
        inst.failing = true
        ctx.error(err)
        return
      end
      if inst.failing then ctx.log("info", ("lookup of %s answers again"):format(config.query)) end
      inst.failing = false
      -- a record that makes no valid node name is skipped, not allowed to crash the poll
      local good = {}
      for _, n in ipairs(list) do
        if names.parse(n) then
          good[#good + 1] = n
        else
          ctx.log("warn", ("ignoring %q from %s: not a valid node name"):format(n, config.query))
        end
      end
      list = good
      inst.list = list
      ctx.set_nodes(list)
    end))
  end
  local interval = config.interval or M.defaults.interval
  -- a little jitter keeps a fleet started together from polling in lockstep
  ctx.every(interval, run, math.floor(interval / 10))
  run()
  return inst
end

function common.stop(ctx, instances)
  local inst = instances[ctx]
  instances[ctx] = nil
  if not inst then return nil end
  inst.stopped = true
  return { list = inst.list }
end

local KEYS = { query = true, node_basename = true, port = true, interval = true, resolver = true,
  timeout = true, family = true }

function M.validate(config)
  local ok, err = common.check_keys(config, KEYS)
  if not ok then return nil, err end
  ok, err = common.check_common(config)
  if not ok then return nil, err end
  ok, err = common.check_int(config, "port", 1, 65535, "a port number 1..65535")
  if not ok then return nil, err end
  local f = config.family
  if f ~= nil and f ~= "any" and f ~= "ipv4" and f ~= "ipv6" then
    return nil, ("family: expected \"any\", \"ipv4\" or \"ipv6\", got %s"):format(tostring(f))
  end
  return true
end

local instances = setmetatable({}, { __mode = "k" })

-- ENODATA is "the name exists, no records of this type": a successful empty answer.
local function family_lookup(ctx, fn, query, opts, cb)
  ctx.dns[fn](query, opts, function(res, err, code)
    if res then return cb(res) end
    if code == "ENODATA" then return cb({}) end
    cb(nil, err or "lookup failed", code)
  end)
end

function M.start(ctx, config, state)
  local opts = common.dns_opts(config)
  local port = config.port or M.defaults.port
  local family = config.family or M.defaults.family
  local fns = family == "ipv4" and { "a" } or family == "ipv6" and { "aaaa" } or { "a", "aaaa" }
  common.poll(ctx, config, state, instances, function(done)
    local pending, set, failure = #fns, {}, nil
    for _, fn in ipairs(fns) do
      family_lookup(ctx, fn, config.query, opts, function(addrs, err)
        if addrs then
          for _, a in ipairs(addrs) do
            local host = a:find(":", 1, true) and ("[" .. a .. "]") or a
            set[("%s@%s:%d"):format(config.node_basename, host, port)] = true
          end
        else
          failure = failure or err
        end
        pending = pending - 1
        if pending == 0 then
          if failure then return done(nil, failure) end
          done(sorted_keys(set))
        end
      end)
    end
  end)
end

function M.stop(ctx)
  return common.stop(ctx, instances)
end

return M
