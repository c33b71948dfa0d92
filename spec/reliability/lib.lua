-- Shared pieces of the reliability suite (spec/reliability/*_spec.lua):
--   * HOOKS: a hooks file every node runs. It prints one line per event:
--       EVENT master_changed NEW OLD TERM
--       EVENT committed TERM VERSION HASH MASTER     (HASH: 16 hex digits of a
--             SHA-256 HMAC over the canonical JSON of the committed user metadata,
--             its version and the voting configuration)
--       EVENT node_down NAME REASON / EVENT node_up NAME
--     and, when the node runs with RELI_LOAD=n, n coroutines sending messages to every
--     peer flat out (the cluster saturating its own machine); with RELI_WRITERS=n, n writer coroutines that loop
--     clusterlua.update (key "w<i>" := counter) and print
--       EVENT ack KEY VALUE VERSION    (acknowledged: committed)
--       EVENT nack KEY VALUE REASON
--   * a checker over those lines (one master per term, one state per (term, version),
--     every acknowledged write present in the final state, convergence).
local uv = require "uv"
local cjson = require "cjson.safe"
local proc = require "helpers.proc"

local M = {}

M.HOOKS = require("helpers.cluster").HOOKS_PRELUDE .. [[
local uv = require "uv"
local cjson = require "cjson.safe"
local crypto = require "clusterlua.c.crypto"
-- canonical JSON: object keys sorted, so equal states hash equally on every node
local function canon(v)
  local tv = type(v)
  if v == nil or v == cjson.null then return "null" end
  if tv == "table" then
    local keys, n = {}, 0
    for k in pairs(v) do n = n + 1; keys[#keys + 1] = tostring(k) end
    if n > 0 and #v == n then
      local parts = {}
      for i = 1, n do parts[i] = canon(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local x = v[k]
      if x == nil then x = v[tonumber(k)] end
      parts[#parts + 1] = cjson.encode(k) .. ":" .. canon(x)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return cjson.encode(v) or tostring(v)
end
local function hash(s)
  local md = s.metadata or {}
  local coord = md.cluster_coordination or {}
  local text = canon { user = md.user or {}, user_version = md.user_version,
    config = coord.last_committed_config }
  local h = crypto.hmac_sha256("reliability", text)
  return (h:gsub(".", function(c) return ("%02x"):format(c:byte()) end)):sub(1, 16)
end
local writers = tonumber(os.getenv "RELI_WRITERS" or "0") or 0
local pause = tonumber(os.getenv "RELI_WRITE_MS" or "50") or 50
for w = 1, writers do
  cl.spawn(function()
    local key, n = "w" .. w, 0
    while true do
      cl.sleep(pause)
      if cl.master() then
        n = n + 1
        local v = n
        local ok, ver, err = pcall(cl.update, function(md) md[key] = v return md end)
        if ok and ver then out("ack", key, v, ver) else out("nack", key, v, (tostring(ok and err or ver):gsub("%s", "_"))) end
      end
    end
  end)
end
-- RELI_LOAD=n: n coroutines that send messages to every peer as fast as the node takes
-- them (yielding between batches, so events still reach the hooks): the cluster's own
-- work saturates the machine
-- work saturates the machine. With RELI_LOAD_FLAG=PATH they start once PATH exists.
local load = tonumber(os.getenv "RELI_LOAD" or "0") or 0
local load_flag = os.getenv "RELI_LOAD_FLAG"
cl.handle("load", function() end)
for _ = 1, load do
  cl.spawn(function()
    while load_flag and not uv.fs_stat(load_flag) do cl.sleep(100) end
    local payload = ("x"):rep(200)
    while true do
      for _, peer in ipairs(cl.nodes()) do
        for _ = 1, 50 do cl.send(peer, "load", payload) end
      end
      cl.sleep(0)
    end
  end)
end
return {
  budget_ms = 0,
  node_up = function(n) out("node_up", n) end,
  node_down = function(n, r) out("node_down", n, r) end,
  master_changed = function(new, old, term) out("master_changed", new, old, term) end,
  state_committed = function(s) out("committed", s.term, s.version, hash(s), tostring(s.master_node)) end,
}
]]

--- parse(lines) -> list of events from one node's output lines
function M.events(p)
  local evs = {}
  for _, l in ipairs(p and p.lines or {}) do
    local rest = l.text:match "^EVENT (.*)$"
    if rest then
      local f = {}
      for w in rest:gmatch "%S+" do f[#f + 1] = w end
      evs[#evs + 1] = f
    end
  end
  return evs
end

--- Checker: feed it every node's lines (also of processes that were restarted), then
-- ask for violations.
function M.checker()
  local ck = { masters = {}, states = {}, acks = {}, violations = {}, elections = 0, ack_count = 0,
    nack_count = 0 }
  local function violation(fmt, ...)
    ck.violations[#ck.violations + 1] = fmt:format(...)
  end
  function ck:feed(label, p)
    for _, f in ipairs(M.events(p)) do
      if f[1] == "master_changed" and f[2] ~= "nil" then
        local term = tonumber(f[4])
        local prev = self.masters[term]
        if prev and prev ~= f[2] then
          violation("term %d has two masters: %s and %s (seen by %s)", term, prev, f[2], label)
        end
        if not prev then self.elections = self.elections + 1 end
        self.masters[term] = f[2]
      elseif f[1] == "committed" then
        local key = f[2] .. "/" .. f[3]
        local prev = self.states[key]
        if prev and prev.hash ~= f[4] then
          violation("(term %s, version %s) has two states: %s (%s) and %s (%s)", f[2], f[3], prev.hash,
            prev.by, f[4], label)
        end
        if not prev then self.states[key] = { hash = f[4], by = label } end
      elseif f[1] == "ack" then
        self.ack_count = self.ack_count + 1
        local k, v = f[2], tonumber(f[3])
        if not self.acks[k] or self.acks[k] < v then self.acks[k] = v end
      elseif f[1] == "nack" then
        self.nack_count = self.nack_count + 1
      end
    end
  end
  -- user: the final user metadata (every writer's counter only grows, so an acknowledged
  -- value v of key k survives iff user[k] >= v)
  function ck:check_acks(user, label)
    for k, v in pairs(self.acks) do
      local have = tonumber(user and user[k])
      if not have or have < v then
        violation("acknowledged write %s=%d missing on %s (has %s)", k, v, label, tostring(user and user[k]))
      end
    end
  end
  function ck:violation(...) violation(...) end
  return ck
end

-- ---- admin reads (curl; ns: a network namespace or nil) ----
local netns = require "helpers.netns"
M.ip = netns.ip

function M.http(addr, method, path, ns)
  local args = { "-s", "-m", "3", "-X", method, "-w", "\n%{http_code}", "http://" .. addr .. path }
  local cmd = "curl"
  if ns then
    args = netns.exec_args(ns, "curl", args)
    cmd = netns.ip
  end
  local p = proc.start(cmd, args)
  if not p:wait_exit(5000) then p:stop(500) end
  local text, code = p.stdout:match "^(.*)\n(%d+)$"
  return tonumber(code), text and cjson.decode(text) or nil, text
end

-- summary of a node: master, term, version, user metadata (nil when unreachable)
function M.snapshot(addr, ns)
  local code, h = M.http(addr, "GET", "/_cluster/health", ns)
  if code ~= 200 or not h then return nil end
  local code2, s = M.http(addr, "GET", "/_cluster/state?filter_path=version,term,master_node,metadata.user", ns)
  if code2 ~= 200 or not s then return nil end
  local user = s.metadata and s.metadata.user
  if user == cjson.null then user = nil end
  return { master = h.master ~= cjson.null and h.master or nil, term = h.term, version = s.version,
    state_term = s.term, user = user or {} }
end

--- rss_kb(pid) -> VmRSS in kB
function M.rss_kb(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local t = f:read "*a"
  f:close()
  return tonumber(t:match "VmRSS:%s*(%d+)")
end

--- sockets(pid) -> how many sockets the process has open (from /proc)
function M.sockets(pid)
  local req = uv.fs_scandir("/proc/" .. pid .. "/fd")
  if not req then return nil end
  local n = 0
  while true do
    local name = uv.fs_scandir_next(req)
    if not name then break end
    local target = uv.fs_readlink("/proc/" .. pid .. "/fd/" .. name)
    if target and target:match "^socket:" then n = n + 1 end
  end
  return n
end

--- settled(c) -> a predicate for proc.wait_until: every node of c answers with the same
-- master, term and state version, is connected to all the others, and its hooks have
-- seen that master and that version (the last joins and commits of the bootstrap are
-- behind, events included)
function M.settled(c)
  return function()
    local want
    for i = 1, c.n do
      local h = c:health(i)
      if not h or type(h.master) ~= "string" or h.number_of_nodes ~= c.n then return false end
      local key = ("%s %s %s"):format(h.master, h.term, h.version)
      if want and key ~= want then return false end
      want = key
      local seen_master, seen_version = false, false
      for _, e in ipairs(M.events(c.nodes[i])) do
        if e[1] == "master_changed" and e[2] == h.master then seen_master = true end
        if e[1] == "committed" and tonumber(e[3]) == h.version then seen_version = true end
      end
      if not (seen_master and seen_version) then return false end
    end
    return true
  end
end

function M.now() uv.update_time() return uv.now() end

M.seed = tonumber(os.getenv "RELI_SEED" or "") or (uv.hrtime() % 1000000007)

return M
