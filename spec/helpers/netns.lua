-- Network namespaces for specs: why a spec must skip, `ip` runs, and a namespace with
-- only its loopback up (nothing in it can reach the host or leave the machine).
--
--   local netns = require "helpers.netns"
--   local ns = netns.scratch { multicast = true } -- fails the test, naming why, if it cannot
--   finally(function() netns.del(ns) end)
--   proc.start(netns.ip, netns.exec_args(ns, proc.bin, { "x.lua" }))
local uv = require "uv"
local proc = require "helpers.proc"

local M = {}

M.ip = "ip"
for _, p in ipairs { "/usr/sbin/ip", "/sbin/ip" } do
  if uv.fs_access(p, "x") then M.ip = p break end
end

--- why_skip([opts]) -> nil | reason: not root, no ip(8), `ip netns` not working, or
-- (opts.iptables) no iptables
function M.why_skip(opts)
  if uv.getuid() ~= 0 then return "not root" end
  local ok, code = pcall(proc.run, M.ip, { "netns", "list" }, { timeout = 5000 })
  if not ok then return "`ip` is unavailable: " .. tostring(code) end
  if code ~= 0 then return "`ip netns` is unavailable (exit " .. tostring(code) .. ")" end
  if opts and opts.iptables then
    ok, code = pcall(proc.run, "iptables", { "--version" }, { timeout = 5000 })
    if not ok or code ~= 0 then return "no iptables" end
  end
end

--- require([opts]): raises (failing the test, never skipping it) when this machine
-- cannot run network namespaces, naming why. The set-up (make deps) installs iproute2
-- and iptables, and the suite runs as root, so this is a broken machine, not a choice.
function M.require(opts, level)
  local reason = M.why_skip(opts)
  if reason then
    error(("network namespaces are needed and unavailable: %s (make deps installs iproute2%s; "
      .. "the suite runs as root)"):format(reason, opts and opts.iptables and " and iptables" or ""), (level or 1) + 1)
  end
end

--- scratch([opts]) -> ns: require(opts), then loopback(opts): the namespace a test
-- runs its processes in (the test deletes it in its one finally: netns.del(ns))
function M.scratch(opts)
  M.require(opts, 2) -- the error names the spec's line
  return M.loopback(opts)
end

--- run(args) -> ok, output, code: `ip args...`
function M.run(args)
  local code, out, err = proc.run(M.ip, args, { timeout = 10000 })
  return code == 0, (out or "") .. (err or ""), code
end

--- list() -> the names of the namespaces that exist
function M.list()
  local _, out = M.run { "netns", "list" }
  local t = {}
  for line in out:gmatch "[^\n]+" do t[#t + 1] = line:match "^(%S+)" end
  return t
end

function M.exists(ns)
  for _, n in ipairs(M.list()) do if n == ns then return true end end
  return false
end

--- name([prefix]) -> a name no other run uses: prefix-pid-random
function M.name(prefix)
  return ("%s-%d-%d"):format(prefix or "clusterlua-spec", uv.os_getpid(), math.random(1e6))
end

--- loopback([opts]) -> ns: a new namespace (opts.name, or a fresh name from opts.prefix)
-- whose loopback is up; opts.multicast adds the multicast route to it. Raises if `ip`
-- fails, the half-made namespace deleted first (the caller has nothing to clean).
function M.loopback(opts)
  opts = opts or {}
  local ns = opts.name or M.name(opts.prefix)
  for _, args in ipairs {
    { "netns", "add", ns },
    { "-n", ns, "link", "set", "lo", "up" },
    opts.multicast and { "-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo" } or nil,
  } do
    local ok, out = M.run(args)
    if not ok then
      M.del(ns)
      error(("ip %s: %s"):format(table.concat(args, " "), out), 2)
    end
  end
  return ns
end

--- del(ns) -> true if it was there and is gone
function M.del(ns)
  if not M.exists(ns) then return false end
  return (M.run { "netns", "del", ns })
end

--- exec_args(ns, cmd, args) -> the arguments of `ip` that run cmd args... inside ns
-- (`ip netns exec` execs the command itself: the pid is still the command's)
function M.exec_args(ns, cmd, args)
  local t = { "netns", "exec", ns, cmd }
  for _, a in ipairs(args or {}) do t[#t + 1] = a end
  return t
end

return M
