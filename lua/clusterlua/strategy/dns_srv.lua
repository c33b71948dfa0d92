-- Poll a name's SRV records and declare `node_basename@target:port` for each: the
-- records give both the host and the port, so nodes may listen on different ports.
-- The target stays a host name (the transport resolves it when it dials), so a node
-- whose address changes keeps its name.
--
-- Failure semantics are those of the dns strategy: NOERROR without SRV records
-- (ENODATA) lists nobody and removes every node; NXDOMAIN, SERVFAIL, REFUSED and
-- timeouts are errors that keep the last set and are reported.
local dns = require "clusterlua.strategy.dns"

local common = dns._common

local M = {}

M.defaults = { interval = 5000 }

local KEYS = { query = true, node_basename = true, interval = true, resolver = true, timeout = true }

function M.validate(config)
  local ok, err = common.check_keys(config, KEYS)
  if not ok then return nil, err end
  return common.check_common(config)
end

local instances = setmetatable({}, { __mode = "k" })

function M.start(ctx, config, state)
  local opts = common.dns_opts(config)
  common.poll(ctx, config, state, instances, function(done)
    ctx.dns.srv(config.query, opts, function(recs, err, code)
      if not recs then
        if code == "ENODATA" then return done({}) end
        return done(nil, err or "SRV lookup failed")
      end
      local set = {}
      for _, r in ipairs(recs) do
        local target = tostring(r.target or ""):gsub("%.$", "")
        -- RFC 2782: a target of "." means the service is decidedly not available here
        if target ~= "" and r.port and r.port > 0 then
          local host = target:find(":", 1, true) and ("[" .. target .. "]") or target
          set[("%s@%s:%d"):format(config.node_basename, host, r.port)] = true
        end
      end
      done(common.sorted_keys(set))
    end)
  end)
end

function M.stop(ctx)
  return common.stop(ctx, instances)
end

return M
