-- DNS lookups (SRV, A, AAAA) through c-ares on the Lua loop.
--
--   dns.srv(name [, opts])  -> { {target=, port=, priority=, weight=}, ... } | nil, err, code
--   dns.a(name [, opts])    -> { "10.0.0.1", ... }                          | nil, err, code
--   dns.aaaa(name [, opts]) -> { "fd00::1", ... }                           | nil, err, code
--   dns.resolve(name [, opts]) -> A and AAAA addresses together             | nil, err, code
--
-- In a coroutine they wait for the answer. Given a callback as the last argument,
-- they return at once and call it later with the same values, from the loop.
-- opts: server = "host:port" (or servers = "h:p,h:p"; default: /etc/resolv.conf),
--       timeout = ms for the whole lookup (default 5000), tries = attempts (default 2),
--       search = true to apply resolv.conf's search domains.
-- Errors carry c-ares's reason: ENOTFOUND, ENODATA, ETIMEDOUT, ECONNREFUSED, ...
local uv = require "uv"
local cdns = require "clusterlua.c.dns"
local async = require "clusterlua.async"

local M = {}

local DEFAULT_TIMEOUT, DEFAULT_TRIES = 5000, 2

-- Channels by (servers, per-try timeout, tries): c-ares cannot change the servers of
-- a channel with queries in flight, so each resolver gets its own. Weak values: an
-- idle channel may be collected (its finalizer closes it); a busy one holds itself.
local channels = setmetatable({}, { __mode = "v" })

local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 4)
end

local function check_opts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(2, fname, "table expected, got " .. type(opts)) end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or t < 1 or t ~= t or t == math.huge) then
    argerror(2, fname, "opts.timeout: milliseconds >= 1 expected, got " .. tostring(t))
  end
  local tries = opts.tries
  if tries ~= nil and (type(tries) ~= "number" or tries < 1 or tries > 10 or tries % 1 ~= 0) then
    argerror(2, fname, "opts.tries: integer 1..10 expected, got " .. tostring(tries))
  end
  local s = opts.server or opts.servers
  if s ~= nil and type(s) ~= "string" then
    argerror(2, fname, "opts.server: \"host:port\" expected, got " .. type(s))
  end
  return opts
end

local function channel_for(opts)
  local servers = opts.server or opts.servers or ""
  local tries = opts.tries or DEFAULT_TRIES
  local timeout = opts.timeout or DEFAULT_TIMEOUT
  -- c-ares doubles the wait on each round of tries, so the rounds fit in timeout
  local per_try = math.max(1, math.floor(timeout / (2 ^ tries - 1)))
  local key = servers .. "|" .. per_try .. "|" .. tries
  local ch = channels[key]
  if not ch then
    local err, code
    ch, err, code = cdns.channel { servers = servers ~= "" and servers or nil, timeout = per_try, tries = tries }
    if not ch then return nil, err, code end
    channels[key] = ch
  end
  return ch
end

--- channel(opts) -> a raw clusterlua.c.dns channel (ch:query(type, name, cb), ch:close())
function M.channel(opts)
  return cdns.channel(opts)
end

-- One query with a hard deadline: c-ares's own timeouts are per attempt and per
-- server, so with several servers they could add up past what the caller asked for.
local function query(qtype, name, opts, cb)
  local ch, err, code = channel_for(opts)
  if not ch then return cb(nil, err, code) end
  local timeout = opts.timeout or DEFAULT_TIMEOUT
  local done = false
  local timer = uv.new_timer()
  timer:start(timeout, 0, function()
    if done then return end
    done = true
    timer:close()
    cb(nil, ("ETIMEDOUT: no answer within %d ms (%s %s)"):format(timeout, name, qtype), "ETIMEDOUT")
  end)
  ch:query(qtype, name, function(res, qerr, qcode)
    if done then return end
    done = true
    timer:stop()
    timer:close()
    cb(res, qerr, qcode)
  end, opts.search)
end

-- A and AAAA together: one answering is enough; if both fail, the more telling error
-- wins (ENODATA only says this family has no address).
local function resolve(_, name, opts, cb)
  local results, n = {}, 0
  local function one(res, err, code)
    n = n + 1
    results[n] = { res, err, code }
    if n < 2 then return end
    local addrs, firsterr = {}, nil
    for _, r in ipairs(results) do
      if r[1] then
        for _, a in ipairs(r[1]) do addrs[#addrs + 1] = a end
      elseif not firsterr or firsterr[3] == "ENODATA" then
        firsterr = r
      end
    end
    if results[1][1] or results[2][1] then return cb(addrs) end
    cb(nil, firsterr[2], firsterr[3])
  end
  query("A", name, opts, one)
  query("AAAA", name, opts, one)
end

local function entry(fname, qtype, run)
  return function(name, opts, cb)
    if type(opts) == "function" and cb == nil then opts, cb = nil, opts end
    if type(name) ~= "string" or name == "" then
      argerror(1, fname, "name expected, got " .. (name == "" and "an empty string" or type(name)), 3)
    end
    opts = check_opts(opts, fname)
    if cb ~= nil then
      if type(cb) ~= "function" then argerror(3, fname, "function expected, got " .. type(cb), 3) end
      run(qtype, name, opts, cb)
      return
    end
    if not async.in_coroutine() then
      error(("bad argument to '%s': must be called from a coroutine (or pass a callback)"):format(fname), 2)
    end
    return async.wait(function(done) run(qtype, name, opts, done) end, nil, fname)
  end
end

M.srv = entry("srv", "SRV", query)
M.a = entry("a", "A", query)
M.aaaa = entry("aaaa", "AAAA", query)
M.resolve = entry("resolve", nil, resolve)

return M
