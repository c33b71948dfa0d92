-- `clusterlua sim topology.lua`: rehearse a topology, its strategies, hooks and recovery
-- recipes on simulated nodes, under crashes and partitions, before deploying them.
-- The world (runtime/rehearse/, through clusterlua.c.rehearse) runs the real election
-- core and glue on virtual time; each node's Lua runs the user's files unchanged
-- (clusterlua.rehearse.node). This module reads the command line and the scenario,
-- schedules the faults, runs the checks and the user's expectations, and prints.
-- docs/rehearsal.md is the user's guide. Exit status: 0 every check held, 1 one failed,
-- 2 a usage or configuration error.
local rehearse = require "clusterlua.c.rehearse"
local names = require "clusterlua.names"
local topology = require "clusterlua.topology"
local hooks = require "clusterlua.hooks"
local cjson = require "cjson.safe"
pcall(cjson.encode_escape_forward_slash, false)

local USAGE = [[
usage: clusterlua sim TOPOLOGY.lua [options]
Runs the topology's nodes in one process on a virtual clock, with the real election
core and the topology's own strategies and hooks, under faults; checks safety after
every step and liveness once the faults heal.

options:
  --nodes N            simulate N nodes (default: the topology's static hosts, else its
                       initial_master_nodes, else 5 named node1..node5)
  --scenario FILE      faults at virtual times and the user's expectations (a Lua file
                       returning a table; docs/rehearsal.md); default: random nemeses
  --seed N             the run's seed (default 1)
  --seeds N            run seeds 1..N (prints a verdict per seed)
  --duration D         virtual time to run, e.g. 90s, 10m, 1h (default 10m)
  --liveness           faults on a minority of the nodes never heal
  --json               print the run as JSON instead of a timeline
  --timeline FILE      also write the timeline as a self-contained HTML page
  --node NAME          print only this node's lines (and the faults); may be repeated
  --timing             print the wall-clock time taken (to stderr)
  --help               this text
]]

local SETTLE_BOUND_MS = 60000 -- after the faults heal: one master, every node in step, within this

-- ---------------------------------------------------------------- helpers

local function die(msg)
  io.stderr:write("clusterlua sim: ", msg, "\n")
  return 2
end

-- "90s", "10m", "1h", "500ms", "1m30s", or a number of seconds -> ms
local UNITS = { [""] = 1000, ms = 1, s = 1000, m = 60000, min = 60000, h = 3600000 }
local function parse_duration(s)
  if type(s) == "number" then return s >= 0 and math.floor(s * 1000 + 0.5) or nil end
  if type(s) ~= "string" or s == "" then return nil end
  local total, pos = 0, 1
  while pos <= #s do
    local a, b, n, unit = s:find("^(%d+%.?%d*)(%a*)", pos)
    if not a then return nil end
    local mult = UNITS[unit]
    if not mult or (unit == "" and pos > 1) then return nil end
    total = total + tonumber(n) * mult
    pos = b + 1
  end
  return math.floor(total + 0.5)
end

local function fmt_time(ms)
  ms = math.floor(ms + 0.5)
  local h = math.floor(ms / 3600000)
  local m = math.floor(ms / 60000) % 60
  local s = math.floor(ms / 1000) % 60
  local frac = ms % 1000
  if h > 0 then return ("%d:%02d:%02d.%03d"):format(h, m, s, frac) end
  return ("%2d:%02d.%03d"):format(m, s, frac)
end

local function fmt_dur(ms)
  if ms % 3600000 == 0 then return ("%dh"):format(ms / 3600000) end
  if ms % 60000 == 0 then return ("%dm"):format(ms / 60000) end
  if ms % 1000 == 0 then return ("%ds"):format(ms / 1000) end
  return ("%dms"):format(ms)
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

-- JSON with sorted keys, so the same run prints the same bytes
local function to_json(v, out)
  out = out or {}
  local t = type(v)
  if t == "table" then
    if #v > 0 or next(v) == nil then
      out[#out + 1] = "["
      for i, x in ipairs(v) do
        if i > 1 then out[#out + 1] = "," end
        to_json(x, out)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      for i, k in ipairs(sorted_keys(v)) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = cjson.encode(tostring(k))
        out[#out + 1] = ":"
        to_json(v[k], out)
      end
      out[#out + 1] = "}"
    end
  elseif t == "number" then
    out[#out + 1] = (v == math.floor(v) and v < 2 ^ 53 and v > -2 ^ 53) and ("%d"):format(v) or ("%.3f"):format(v)
  elseif t == "string" or t == "boolean" then
    out[#out + 1] = cjson.encode(v)
  else
    out[#out + 1] = "null"
  end
  return out
end

-- ---------------------------------------------------------------- options

local function parse_args(argv)
  local o = { seed = 1, duration = 600000 }
  local i = 1
  local function value(flag)
    local v = argv[i + 1]
    if v == nil then error({ usage = ("option %s needs a value"):format(flag) }) end
    i = i + 1
    return v
  end
  local function count(flag, v, min)
    local n = tonumber(v)
    if not n or n % 1 ~= 0 or n < min then
      error({ usage = ("%s: expected a whole number >= %d, got '%s'"):format(flag, min, tostring(v)) })
    end
    return n
  end
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match "^(%-%-[%w-]+)=(.*)$"
    if flag then
      a = flag
      table.insert(argv, i + 1, inline)
    end
    if a == "--help" or a == "-h" then
      o.help = true
    elseif a == "--nodes" then
      o.nodes = count(a, value(a), 1)
      if o.nodes > rehearse.MAX_NODES then
        error({ usage = ("--nodes: at most %d nodes"):format(rehearse.MAX_NODES) })
      end
    elseif a == "--scenario" then
      o.scenario = value(a)
    elseif a == "--seed" then
      o.seed = count(a, value(a), 0)
      o.seed_given = true
    elseif a == "--seeds" then
      o.seeds = count(a, value(a), 1)
    elseif a == "--duration" then
      local v = value(a)
      o.duration = parse_duration(v)
      if not o.duration or o.duration < 1000 then
        error({ usage = ("--duration: expected a duration of at least 1s such as 90s, 10m or 1h, got '%s'"):format(v) })
      end
      o.duration_given = true
    elseif a == "--liveness" then
      o.liveness = true
    elseif a == "--json" then
      o.json = true
    elseif a == "--timeline" then
      o.timeline = value(a)
    elseif a == "--timing" then
      o.timing = true
    elseif a == "--node" then
      o.only = o.only or {}
      o.only[#o.only + 1] = value(a)
    elseif a:sub(1, 1) == "-" then
      error({ usage = ("unknown option '%s' (see --help)"):format(a) })
    elseif o.file then
      error({ usage = ("one topology file only (got '%s' and '%s')"):format(o.file, a) })
    else
      o.file = a
    end
    i = i + 1
  end
  if o.seeds and o.seed_given then error({ usage = "give either --seed or --seeds, not both" }) end
  return o
end

-- ---------------------------------------------------------------- the nodes

local function node_list(topo, want)
  local list, seen = {}, {}
  local function add(full)
    local n = names.parse(full)
    if n and not seen[n.full] then
      seen[n.full] = true
      list[#list + 1] = { full = n.full, short = n.short }
    end
  end
  for _, tname in ipairs(sorted_keys(topo.topologies or {})) do
    local t = topo.topologies[tname]
    if t.strategy == "static" and type(t.config) == "table" and type(t.config.hosts) == "table" then
      for _, h in ipairs(t.config.hosts) do add(h) end
    end
  end
  if #list == 0 then
    for k, s in ipairs(topo.election and topo.election.initial_master_nodes or {}) do
      if s:find "@" then add(s) else add(("%s@127.0.0.1:%d"):format(s, 4370 + k)) end
    end
  end
  local n = want or (#list > 0 and #list or 5)
  while #list < n do
    local k = #list + 1
    local full
    repeat
      full = ("node%d@127.0.0.1:%d"):format(k, 4370 + k)
      k = k + 1
    until not seen[full]
    add(full)
  end
  while #list > n do list[#list] = nil end
  return list
end

-- ---------------------------------------------------------------- the scenario

local FAULT_KEYS = {
  at = true, heal = true, kill = true, stop = true, start = true, pause = true, partition = true, isolate = true,
  oneway = true, net = true, disk = true, fail = true, slow_ms = true, stall_lua = true, dns = true,
  mode = true, note = true, file = true, content = true,
}

local function load_scenario(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, sc = pcall(chunk)
  if not ok then return nil, path .. ": " .. tostring(sc) end
  if type(sc) ~= "table" then return nil, path .. ": a scenario returns a table, got " .. type(sc) end
  for k in pairs(sc) do
    if not ({ faults = true, expect = true, commands = true, dns = true, http = true, files = true, duration = true,
      nodes = true, initial_master_nodes = true })[k] then
      return nil, ("%s: unknown key %q (expected faults, expect, commands, dns, http, files, duration, nodes, "
        .. "initial_master_nodes)"):format(path,
        tostring(k))
    end
  end
  if sc.faults ~= nil and type(sc.faults) ~= "table" then return nil, path .. ": faults: expected a list" end
  if sc.expect ~= nil and type(sc.expect) ~= "table" then
    return nil, path .. ": expect: expected a table of named functions"
  end
  for name, f in pairs(sc.expect or {}) do
    if type(name) ~= "string" or type(f) ~= "function" then
      return nil, ("%s: expect.%s: expected a function"):format(path, tostring(name))
    end
  end
  if sc.commands ~= nil and type(sc.commands) ~= "table" and type(sc.commands) ~= "function" then
    return nil, path .. ": commands: expected a table (command -> exit status) or a function"
  end
  if sc.http ~= nil and type(sc.http) ~= "table" and type(sc.http) ~= "function" then
    return nil, path .. ": http: expected a table (URL -> { status =, body = }) or a function"
  end
  if sc.dns ~= nil and type(sc.dns) ~= "table" and type(sc.dns) ~= "function" then
    return nil, path .. ": dns: expected a table (name -> answers) or a function"
  end
  if sc.files ~= nil then
    if type(sc.files) ~= "table" then return nil, path .. ": files: expected a table (path -> text, or false)" end
    for fp, text in pairs(sc.files) do
      if type(fp) ~= "string" or (type(text) ~= "string" and text ~= false) then
        return nil, ("%s: files[%s]: expected a path mapped to its text, or false"):format(path, tostring(fp))
      end
    end
  end
  if sc.duration ~= nil and not parse_duration(sc.duration) then
    return nil, path .. ": duration: expected a duration such as 90s or 10m"
  end
  if type(sc.nodes) == "table" then
    if #sc.nodes < 1 or #sc.nodes > rehearse.MAX_NODES then
      return nil, ("%s: nodes: expected 1 to %d node names"):format(path, rehearse.MAX_NODES)
    end
    local seen = {}
    for i, n in ipairs(sc.nodes) do
      local parsed, err = names.parse(n)
      if not parsed then return nil, ("%s: nodes[%d]: %s"):format(path, i, tostring(err):gsub("^EINVAL: ", "")) end
      -- two simulated nodes of one name would be one node to every lookup by name
      if seen[parsed.full] then return nil, ("%s: nodes[%d]: %s is listed twice"):format(path, i, parsed.full) end
      if #parsed.full > rehearse.NAME_MAX then
        return nil, ("%s: nodes[%d]: longer than %d characters"):format(path, i, rehearse.NAME_MAX)
      end
      seen[parsed.full] = true
    end
  elseif sc.nodes ~= nil and (type(sc.nodes) ~= "number" or sc.nodes < 1 or sc.nodes % 1 ~= 0) then
    return nil, path .. ": nodes: expected a whole number or a list of node names"
  end
  if sc.initial_master_nodes ~= nil then
    if type(sc.initial_master_nodes) ~= "table" or #sc.initial_master_nodes == 0 then
      return nil, path .. ": initial_master_nodes: expected a list of node names"
    end
    for i, n in ipairs(sc.initial_master_nodes) do
      if type(n) ~= "string" or n == "" then return nil, ("%s: initial_master_nodes[%d]: expected a node name"):format(path, i) end
    end
  end
  return sc
end

-- a scripted fault as the runner's action list: {at=, what=, apply=fn, heal_at=, undo=fn}
local function check_faults(sc, path, index_of)
  local out = {}
  for k, f in ipairs(sc.faults or {}) do
    local where = ("%s: faults[%d]"):format(path, k)
    if type(f) ~= "table" then return nil, where .. ": expected a table" end
    for key in pairs(f) do
      if not FAULT_KEYS[key] then return nil, ("%s: unknown key %q"):format(where, tostring(key)) end
    end
    local at = parse_duration(f.at)
    if not at then return nil, where .. ": at: expected a virtual time such as 30s or 1m" end
    local heal
    if f.heal ~= nil then
      heal = parse_duration(f.heal)
      if not heal or heal <= at then return nil, where .. ": heal: expected a virtual time after at" end
    end
    local function node(v, what)
      local i = type(v) == "string" and index_of(v)
      if not i then error(("%s: %s: no simulated node named %s"):format(where, what, tostring(v)), 0) end
      return i
    end
    local function group(list, what)
      if type(list) ~= "table" then error(("%s: %s: expected a list of node names"):format(where, what), 0) end
      local g = {}
      for j, v in ipairs(list) do g[j] = node(v, what) end
      return g
    end
    local ok, res = pcall(function()
      local kinds = {}
      for _, key in ipairs { "kill", "stop", "start", "pause", "partition", "isolate", "oneway", "net", "disk", "stall_lua", "dns", "file" } do
        if f[key] ~= nil then kinds[#kinds + 1] = key end
      end
      if #kinds ~= 1 then
        error(("%s: expected exactly one of kill, stop, start, pause, partition, isolate, oneway, net, disk, stall_lua, dns, file"):format(
          where), 0)
      end
      local kind = kinds[1]
      local a = { at = at, heal = heal, kind = kind, mode = f.mode }
      if kind == "kill" or kind == "stop" or kind == "start" or kind == "pause" or kind == "stall_lua" or kind == "isolate" or kind == "disk" then
        a.node = node(f[kind], kind)
      elseif kind == "partition" then
        if type(f.partition) ~= "table" or #f.partition < 2 then
          error(where .. ": partition: expected two or more lists of node names", 0)
        end
        a.groups = {}
        for j, g in ipairs(f.partition) do a.groups[j] = group(g, "partition[" .. j .. "]") end
      elseif kind == "oneway" then
        if type(f.oneway) ~= "table" then error(where .. ": oneway: expected { from = NODE, to = NODE }", 0) end
        a.from, a.to = node(f.oneway.from, "oneway.from"), node(f.oneway.to, "oneway.to")
      elseif kind == "net" then
        local shape = where .. ": net: expected { delay_ms = {lo, hi}, drop = p, dup = p }"
        if type(f.net) ~= "table" then error(shape, 0) end
        -- finite, in range: the world takes them as whole microseconds and probabilities
        local function ms(v) return type(v) == "number" and v >= 0 and v <= 3600000 end
        local function p(v) return v == nil or (type(v) == "number" and v >= 0 and v <= 1) end
        local d = f.net.delay_ms
        if d ~= nil and not ms(d) and not (type(d) == "table" and ms(d[1]) and ms(d[2]) and d[1] <= d[2]) then
          error(where .. ": net.delay_ms: expected milliseconds (0 to 1h) or {lo, hi} with lo <= hi", 0)
        end
        if not p(f.net.drop) or not p(f.net.dup) then error(where .. ": net: drop and dup are probabilities (0 to 1)", 0) end
        a.net = f.net
      elseif kind == "file" then
        if type(f.file) ~= "string" then error(where .. ": file: expected a path", 0) end
        if f.content ~= false and type(f.content) ~= "string" then
          error(where .. ": content: expected the file's new text, or false to remove it", 0)
        end
        a.path, a.content = f.file, f.content
      elseif kind == "dns" then
        if not ({ fail = true, empty = true, truncate = true })[f.dns] then
          error(where .. ": dns: expected \"fail\", \"empty\" or \"truncate\"", 0)
        end
        a.dns = f.dns
      end
      if kind == "disk" then
        a.fail = f.fail and true or false
        a.slow_ms = f.slow_ms or 0
        if type(a.slow_ms) ~= "number" or not (a.slow_ms >= 0 and a.slow_ms <= 3600000) then
          error(where .. ": slow_ms: expected milliseconds (0 to 1h)", 0)
        end
      end
      if f.mode ~= nil and f.mode ~= "blackhole" and f.mode ~= "disconnect" then
        error(where .. ": mode: expected \"blackhole\" or \"disconnect\"", 0)
      end
      if (kind == "pause" or kind == "stall_lua") and not heal then
        error(("%s: %s needs heal (when it ends)"):format(where, kind), 0)
      end
      return a
    end)
    if not ok then return nil, res end
    out[#out + 1] = res
  end
  return out
end

-- ---------------------------------------------------------------- one run

local Run = {}
Run.__index = Run

local function short_of(run, i) return i >= 1 and run.nodes[i] and run.nodes[i].short or "*" end

function Run:fault(what, ...)
  self.last_fault = what:format(...)
  self.w:record(0, "fault", self.last_fault)
end

local function halves(run)
  local n = #run.nodes
  local idx = {}
  for i = 1, n do idx[i] = i end
  for i = n, 2, -1 do
    local j = run.w:rand(i) + 1
    idx[i], idx[j] = idx[j], idx[i]
  end
  local k = 1 + run.w:rand(math.max(1, n - 1))
  local a, b = {}, {}
  for i = 1, n do
    if i <= k then a[#a + 1] = idx[i] else b[#b + 1] = idx[i] end
  end
  return a, b
end

local function names_of(run, g)
  local out = {}
  for i, x in ipairs(g) do out[i] = short_of(run, x) end
  table.sort(out)
  return table.concat(out, ",")
end

function Run:cut_groups(groups, how)
  for gi, g in ipairs(groups) do
    for gj, h in ipairs(groups) do
      if gi < gj then
        for _, a in ipairs(g) do
          for _, b in ipairs(h) do self.w:cut(a, b, how, false) end
        end
      end
    end
  end
end

-- every link back, but those a permanent fault (--liveness) keeps cut
function Run:heal_links()
  self.w:heal()
  for _, c in ipairs(self.permanent_cuts or {}) do self:cut_groups(c.groups, c.how) end
end

-- the faults a run can inject: apply now, undo at heal (nil: nothing to undo)
function Run:apply(a)
  local w = self.w
  local how = a.mode == "disconnect" and 1 or 2
  if a.kind == "kill" then
    self:fault("kill %s", short_of(self, a.node))
    w:kill(a.node, "killed by the scenario")
    return function()
      self:fault("restart %s", short_of(self, a.node))
      w:start(a.node)
    end
  elseif a.kind == "stop" then
    self:fault("stop %s (SIGTERM: it leaves on purpose)", short_of(self, a.node))
    w:stop(a.node)
    return function()
      self:fault("start %s again", short_of(self, a.node))
      w:start(a.node)
    end
  elseif a.kind == "start" then
    self:fault("start %s", short_of(self, a.node))
    w:start(a.node)
  elseif a.kind == "pause" then
    self:fault("pause %s (SIGSTOP)", short_of(self, a.node))
    w:pause(a.node, (a.permanent or not a.heal) and 1e15 or a.heal)
    return function()
      self:fault("resume %s (SIGCONT)", short_of(self, a.node))
      w:pause(a.node, 0)
    end
  elseif a.kind == "stall_lua" then
    self:fault("stall the Lua of %s (a hook that does not yield)", short_of(self, a.node))
    w:stall(a.node, a.heal or 1e15)
    return function()
      self:fault("the Lua of %s runs again", short_of(self, a.node))
      w:stall(a.node, 0)
    end
  elseif a.kind == "partition" or a.kind == "isolate" or a.kind == "bridge" then
    local groups = a.groups
    if a.kind == "isolate" then
      local rest = {}
      for i = 1, #self.nodes do if i ~= a.node then rest[#rest + 1] = i end end
      groups = { { a.node }, rest }
    end
    local desc = {}
    for i, g in ipairs(groups) do desc[i] = "{" .. names_of(self, g) .. "}" end
    if a.kind == "bridge" then
      self:fault("bridge partition: %s | %s, %s sees both (%s)", desc[1], desc[2], short_of(self, a.node),
        how == 1 and "disconnect" or "blackhole")
      self:cut_groups({ groups[1], groups[2] }, how)
    else
      self:fault("%spartition %s (%s)", a.of_master and self.master == a.node and "isolate the master: " or "",
        table.concat(desc, " | "), how == 1 and "disconnect" or "blackhole")
      self:cut_groups(groups, how)
    end
    if a.permanent then
      self.permanent_cuts = self.permanent_cuts or {}
      table.insert(self.permanent_cuts, { groups = groups, how = how })
    end
    return function()
      self:fault("heal the partition")
      self:heal_links()
    end
  elseif a.kind == "oneway" then
    self:fault("one-way: frames from %s to %s are lost", short_of(self, a.from), short_of(self, a.to))
    w:cut(a.from, a.to, 2, true)
    return function()
      self:fault("heal the one-way link")
      self:heal_links()
    end
  elseif a.kind == "net" then
    local d = a.net.delay_ms or { 0.2, 2 }
    if type(d) == "number" then d = { d, d } end
    local drop, dup = a.net.drop or 0, a.net.dup or 0
    self:fault("network: delay %g-%g ms, loss %g%%, duplication %g%%", d[1], d[2], drop * 100, dup * 100)
    w:net(d[1], d[2], drop, dup)
    return function()
      self:fault("network back to normal")
      w:net(0.2, 2, 0, 0)
    end
  elseif a.kind == "disk" then
    if a.fail then
      self:fault("the next write of %s to disk fails", short_of(self, a.node))
    else
      self:fault("the disk of %s is slow (%d ms a write)", short_of(self, a.node), a.slow_ms)
    end
    w:disk(a.node, a.fail, a.slow_ms)
    return function()
      self:fault("the disk of %s is healthy again", short_of(self, a.node))
      w:disk(a.node, false, 0)
    end
  elseif a.kind == "file" then
    local before = self.files[a.path]
    if before == nil then
      -- first edit of a real file: from now on the rehearsal serves its text
      local fh = io.open(a.path, "rb")
      before = fh and fh:read "*a" or false
      if fh then fh:close() end
    end
    local what = a.content == false and "removed" or a.how or "rewritten"
    self:fault("%s %s", a.path, what)
    self.files[a.path] = a.content
    w:file_changed(a.path)
    return function()
      self:fault("%s restored", a.path)
      self.files[a.path] = before
      w:file_changed(a.path)
    end
  elseif a.kind == "dns" then
    self:fault("DNS %s", a.dns == "fail" and "fails" or a.dns == "empty" and "answers empty" or "answers truncated")
    self.dns_fault = a.dns
    return function()
      self:fault("DNS answers again")
      self.dns_fault = nil
    end
  end
end

-- the default nemeses: one fault at a time, each healed before the next
local NEMESES = { "kill", "pause", "halves", "isolate_master", "bridge", "oneway", "net", "slow_disk", "fail_disk",
  "stall_lua", "dns", "hosts_file" }

function Run:random_fault(t, until_ms, nemeses)
  local w, n = self.w, #self.nodes
  local kind = nemeses[w:rand(#nemeses) + 1]
  local heal = t + 2000 + w:rand(18000)
  if heal > until_ms then heal = until_ms end
  local node = w:rand(n) + 1
  local a = { at = t, heal = heal }
  if kind == "kill" then
    a.kind, a.node = "kill", node
  elseif kind == "pause" then
    a.kind, a.node = "pause", node
  elseif kind == "halves" then
    local g1, g2 = halves(self)
    a.kind, a.groups = "partition", { g1, g2 }
  elseif kind == "isolate_master" then
    -- the master when the fault comes (resolved then; this node if there is none)
    a.kind, a.node, a.of_master = "isolate", node, true
  elseif kind == "bridge" then
    if n < 3 then
      a.kind, a.node = "isolate", node
    else
      local g1, g2 = {}, {}
      for i = 1, n do
        if i ~= node then
          if #g1 <= #g2 then g1[#g1 + 1] = i else g2[#g2 + 1] = i end
        end
      end
      a.kind, a.node, a.groups = "bridge", node, { g1, g2 }
    end
  elseif kind == "oneway" then
    local to = (node % n) + 1
    a.kind, a.from, a.to = "oneway", node, to
  elseif kind == "net" then
    a.kind, a.net = "net", { delay_ms = { 1, 20 + w:rand(300) }, drop = w:rand(20) / 100, dup = w:rand(10) / 100 }
  elseif kind == "slow_disk" then
    a.kind, a.node, a.fail, a.slow_ms = "disk", node, false, 50 + w:rand(950)
  elseif kind == "fail_disk" then
    a.kind, a.node, a.fail, a.slow_ms = "disk", node, true, 0
  elseif kind == "stall_lua" then
    -- a third of the stalls outlast election.lua_stepdown_ms: the node gives up master
    -- duties until its Lua answers again
    a.kind, a.node = "stall_lua", node
    if w:rand(3) == 0 then
      local sd = self.stepdown_ms
      a.heal = t + math.floor(sd * (1.1 + w:rand(40) / 100))
      if a.heal > until_ms then a.heal = until_ms end
    end
  elseif kind == "hosts_file" then
    -- a hosts file edited under the node: a line dropped, emptied, removed, or garbage
    local path = self.hosts_files[w:rand(#self.hosts_files) + 1]
    local text = self.files[path]
    if text == nil then
      local fh = io.open(path, "rb")
      text = fh and fh:read "*a" or ""
      if fh then fh:close() end
    end
    local edit = w:rand(4)
    a.kind, a.path = "file", path
    if edit == 0 then
      local lines = {}
      for l in (text or ""):gmatch "[^\n]+" do lines[#lines + 1] = l end
      if #lines > 0 then table.remove(lines, w:rand(#lines) + 1) end
      a.content, a.how = table.concat(lines, "\n") .. "\n", "edited (a line dropped)"
    elseif edit == 1 then
      a.content, a.how = "", "emptied"
    elseif edit == 2 then
      a.content = false
    else
      a.content, a.how = (text or "") .. "not a node name at all\n", "edited (a bad line added)"
    end
  else
    a.kind, a.dns = "dns", ({ "fail", "empty", "truncate" })[w:rand(3) + 1]
  end
  if n < 2 and (a.kind == "partition" or a.kind == "bridge" or a.kind == "oneway" or a.kind == "isolate") then
    a.kind, a.node = "pause", node
  end
  return a
end

-- ---------------------------------------------------------------- records -> history

-- a command's arguments travel joined by \31 (the unit separator): C strings end at NUL
local function split0(s)
  local out = {}
  if not s or s == "" then return out end
  for part in (s .. "\31"):gmatch "([^\31]*)\31" do out[#out + 1] = part end
  return out
end

-- a full name as the timeline shows it: the node's short name (its full one when two
-- nodes share a short name)
local function display(run, full)
  if not full or full == "" then return nil end
  if not run.display then
    run.display = {}
    for _, nd in ipairs(run.nodes) do run.display[nd.full] = nd.short end
  end
  return run.display[full] or (names.parse(full) or {}).short or full
end

local function entry_of(run, r)
  local e = { t = r.t, node = r.node > 0 and short_of(run, r.node) or nil, kind = r.kind }
  local k = r.kind
  if k == "node_up" then
    e.peer = display(run, r.s1)
  elseif k == "node_down" then
    e.peer = display(run, r.s1)
    e.reason = r.s2
  elseif k == "master" then
    e.master = display(run, r.s1)
    e.previous = display(run, r.s2)
    e.term = r.n1
  elseif k == "quorum_lost" or k == "quorum_regained" then
    e.term = r.n1
  elseif k == "committed" then
    e.term, e.version = r.n1, r.n2
  elseif k == "exec" then
    e.cmd, e.args, e.status = r.s1, split0(r.s2), r.n1
  elseif k == "log" then
    e.level, e.msg = r.s1, r.s2
  elseif k == "output" then
    e.stream, e.line = r.s1, r.s2
  elseif k == "file_write" then
    e.path, e.how, e.bytes = r.s1, r.s2, r.n1
  elseif k == "error" then
    e.what, e.error = r.s1, r.s2
  elseif k == "lua_error" then
    e.error = r.s1
  elseif k == "lua_lag" then
    e.lagging, e.lag_ms = r.n1 == 1, r.n2
  elseif k == "started" then
    e.boot = r.n1
  elseif k == "start_failed" then
    e.error = r.s1
  elseif k == "killed" or k == "crashed" or k == "stopped" then
    e.reason = r.s1
  elseif k == "exited" then
    e.code = r.n1
  elseif k == "fault" then
    e.what = r.s1
  elseif k == "violation" then
    e.what = r.s1
  else
    -- events born in Lua (hook_error, hook_abort, strategy_error, reloaded): their fields
    local fields = r.s1 and cjson.decode(r.s1)
    if type(fields) == "table" then
      for fk, fv in pairs(fields) do
        if e[fk] == nil and type(fv) ~= "table" then e[fk] = fv end
      end
    end
  end
  return e
end

local function describe(e)
  local k = e.kind
  if k == "node_up" then return "node_up " .. e.peer end
  if k == "node_down" then return ("node_down %s (%s)"):format(e.peer, tostring(e.reason)) end
  if k == "master" then
    if e.master then return ("master is %s (term %d)"):format(e.master, e.term) end
    return ("no master (term %d, was %s)"):format(e.term, tostring(e.previous))
  end
  if k == "quorum_lost" then return ("quorum lost (term %d)"):format(e.term) end
  if k == "quorum_regained" then return ("quorum regained (term %d)"):format(e.term) end
  if k == "committed" then return ("committed version %d (term %d)"):format(e.version, e.term) end
  if k == "exec" then
    local args = {}
    for i, a in ipairs(e.args) do args[i] = a:find "[%s\"']" and ("%q"):format(a) or a end
    return ("ran %s %s -> exit %d (recorded, not run)"):format(e.cmd, table.concat(args, " "), e.status)
  end
  if k == "log" then return ("log %s: %s"):format(e.level, (tostring(e.msg):gsub("\n+$", ""):gsub("\n", "\\n"))) end
  if k == "output" then return ("%s: %s"):format(e.stream, e.line) end
  if k == "file_write" then
    return ("%s %s%s (recorded, not written)"):format(e.how == "removed" and "removed" or "wrote", e.path,
      e.how and e.how ~= "removed" and (" " .. e.how) or (e.how ~= "removed" and (" (%d bytes)"):format(e.bytes) or ""))
  end
  if k == "error" then return ("error in %s: %s"):format(e.what, (tostring(e.error):match "^[^\n]*")) end
  if k == "lua_error" then return "Lua error: " .. (tostring(e.error):match "^[^\n]*") end
  if k == "lua_lag" then
    return e.lagging and ("Lua lags (%d ms): master duties given up"):format(e.lag_ms) or "Lua answers again"
  end
  if k == "started" then return e.boot > 1 and "process restarted" or "process started" end
  if k == "start_failed" then return "could not start: " .. tostring(e.error) end
  if k == "killed" then return "killed (" .. tostring(e.reason) .. ")" end
  if k == "stopped" then return "stopped (" .. tostring(e.reason) .. "): leaves the cluster" end
  if k == "crashed" then return "crashed: " .. tostring(e.reason) end
  if k == "exited" then return ("exited (status %d)"):format(e.code) end
  if k == "fault" then return "FAULT " .. e.what end
  if k == "violation" then return "VIOLATION " .. e.what end
  if k == "hook_error" or k == "hook_abort" then
    return ("%s %s: %s"):format(k, tostring(e.hook), (tostring(e.error):match "^[^\n]*"))
  end
  local extra = {}
  for _, fk in ipairs(sorted_keys(e)) do
    if fk ~= "t" and fk ~= "node" and fk ~= "kind" then extra[#extra + 1] = fk .. "=" .. tostring(e[fk]) end
  end
  return k .. " " .. table.concat(extra, " ")
end

local function line_of(run, e)
  local who = e.node or "*"
  return ("  %s  %s%s  %s"):format(fmt_time(e.t), who, (" "):rep(run.name_width - #who), describe(e))
end

-- the history the scenario's expectations get (docs/rehearsal.md lists its fields)
local function make_history(run)
  local h = {
    seed = run.seed, duration_ms = run.duration, nodes = {}, events = run.events, by_node = {}, masters = {},
    master_of_term = {},
    commands = {}, hook_errors = {}, faults = {}, violations = {},
  }
  for i, nd in ipairs(run.nodes) do
    h.nodes[i] = nd.short
    h.by_node[nd.short] = {}
  end
  for _, e in ipairs(run.events) do
    if e.node and h.by_node[e.node] then table.insert(h.by_node[e.node], e) end
    if e.kind == "master" and e.master and e.master == e.node then
      h.masters[#h.masters + 1] = { t = e.t, term = e.term, node = e.master }
      h.master_of_term[e.term] = e.master
    elseif e.kind == "exec" then
      h.commands[#h.commands + 1] = e
    elseif e.kind == "hook_error" or e.kind == "hook_abort" or e.kind == "lua_error" then
      h.hook_errors[#h.hook_errors + 1] = e
    elseif e.kind == "fault" then
      h.faults[#h.faults + 1] = e
    elseif e.kind == "violation" then
      h.violations[#h.violations + 1] = e
    end
  end
  -- helpers: filter{ kind =, node =, peer =, cmd =, after = ms, before = ms }
  function h.filter(q)
    local out = {}
    for _, e in ipairs(h.events) do
      local ok = true
      for k, v in pairs(q) do
        if k == "after" then ok = ok and e.t >= v
        elseif k == "before" then ok = ok and e.t < v
        elseif e[k] ~= v then ok = false end
      end
      if ok then out[#out + 1] = e end
    end
    return out
  end
  function h.count(q) return #h.filter(q) end
  h.time = parse_duration
  return h
end

-- ---------------------------------------------------------------- running a seed

local function ask_fn(run)
  local answer
  -- a scenario function that fails is the scenario's mistake: the run stops there and
  -- the command exits 2 naming it
  local function safe(node, kind, a, b)
    local ok, x, y = pcall(answer, node, kind, a, b)
    if ok then return x, y end
    local msg = ("its %s answer failed for %s %s: %s"):format(kind, tostring(run.nodes[node] and run.nodes[node].short),
      tostring(a), tostring(x))
    if not run.scenario_error then
      run.scenario_error = msg
      run.w:fail("scenario error: " .. msg)
    end
    return nil, msg
  end
  answer = function(node, kind, a, b)
    local nd = run.nodes[node].short
    local sc = run.scenario or {}
    if kind == "exec" or kind == "os.execute" or kind == "io.popen" then
      local args = split0(b)
      local c = sc.commands
      if type(c) == "function" then
        local st, out = c(nd, a, args)
        return tonumber(st) or 0, out ~= nil and tostring(out) or ""
      elseif type(c) == "table" then
        local v = c[a]
        if type(v) == "number" then return v, "" end
        if type(v) == "table" then return tonumber(v.status) or 0, tostring(v.stdout or "") end
        if type(v) == "function" then
          local st, out = v(nd, args)
          return tonumber(st) or 0, out ~= nil and tostring(out) or ""
        end
      end
      return 0, ""
    elseif kind == "http" then
      local hsc = sc.http
      local method, url = a:match "^(%S+) (.*)$"
      local v
      if type(hsc) == "function" then
        local st, body = hsc(nd, method, url, b)
        if type(st) == "number" then return st, body ~= nil and tostring(body) or "" end
        v = st
      elseif type(hsc) == "table" then
        v = hsc[url]
      end
      if type(v) == "table" then return tonumber(v.status) or 200, tostring(v.body or "") end
      if type(v) == "string" then return -1, v end
      return -1, ("ECONNREFUSED: no answer scripted for %s (rehearsal)"):format(url)
    elseif kind == "file" then
      local v = run.files[a]
      if v == nil then return nil, nil end
      if v == false then return 1, nil end
      return 0, v
    elseif kind == "dns" then
      if run.dns_fault == "fail" then return 1, "ETIMEDOUT: " .. b .. ": no answer (DNS fault)" end
      local d = sc.dns
      local v
      if type(d) == "function" then v = d(nd, a, b) elseif type(d) == "table" then v = d[b] end
      if v == nil then return 1, "ENOTFOUND: " .. b end
      if type(v) == "string" then return 1, v end
      if run.dns_fault == "empty" then return 0, "[]" end
      if run.dns_fault == "truncate" and type(v) == "table" and #v > 1 then v = { v[1] } end
      return 0, cjson.encode(v) or "[]"
    end
    return nil, "unknown question " .. tostring(kind)
  end
  return safe
end

local function run_seed(cfg, seed, out)
  local run = setmetatable({
    seed = seed, nodes = cfg.nodes, duration = cfg.duration, scenario = cfg.scenario, events = {},
    name_width = cfg.name_width, files = {}, spans = {}, hosts_files = cfg.hosts_files, stepdown_ms = cfg.stepdown_ms,
  }, Run)
  for path, text in pairs(cfg.scenario and cfg.scenario.files or {}) do run.files[path] = text end
  local boot = cjson.encode { topology = cfg.file, cookie = "rehearsal-cookie-0123456789abcdef", seed = seed,
    initial_master_nodes = cfg.scenario and cfg.scenario.initial_master_nodes or nil }
  local w = rehearse.new {
    seed = seed, path = package.path, cpath = package.cpath, boot = boot, ask = ask_fn(run),
  }
  run.w = w
  for _, nd in ipairs(cfg.nodes) do w:add(nd.full, nd.short) end
  local index_of = function(name)
    for i, nd in ipairs(cfg.nodes) do
      if nd.short == name or nd.full == name then return i end
    end
  end
  -- the schedule: scripted faults, or random nemeses after a warm-up
  local actions = {}
  if cfg.faults then
    for _, a in ipairs(cfg.faults) do actions[#actions + 1] = a end
  else
    local t = 10000 + w:rand(10000)
    while t < cfg.duration - 1000 do
      local a = run:random_fault(t, cfg.duration, cfg.nemeses)
      actions[#actions + 1] = a
      t = a.heal + 3000 + w:rand(12000)
    end
  end
  -- --liveness: a minority whose faults never heal
  local minority = {}
  if cfg.liveness then
    local n = #cfg.nodes
    local k = math.floor((n - 1) / 2)
    local idx = {}
    for i = 1, n do idx[i] = i end
    for i = n, 2, -1 do
      local j = w:rand(i) + 1
      idx[i], idx[j] = idx[j], idx[i]
    end
    for i = 1, k do minority[idx[i]] = true end
  end
  local function permanent(a)
    if not cfg.liveness then return false end
    if a.node and minority[a.node] and (a.kind == "kill" or a.kind == "pause" or a.kind == "isolate") then return true end
    return false
  end
  -- a timeline of things to do: {t, seq, fn}
  local todo, seq = {}, 0
  local function at(t, fn)
    seq = seq + 1
    todo[#todo + 1] = { t = t, seq = seq, fn = fn }
  end
  for i = 1, #cfg.nodes do at(w:rand(50), function() w:start(i) end) end
  local undo_at_end = {}
  local down_for_good = {} -- node -> true: a permanent fault (--liveness) hit it
  for _, a in ipairs(actions) do
    at(a.at, function()
      if a.of_master and run.master then a.node = run.master end
      if permanent(a) then
        down_for_good[a.node] = true
        a.permanent = true
      end
      local undo = run:apply(a)
      -- for the HTML timeline: the fault's span, across the lanes it hits
      local span = { t = w:now(), label = run.last_fault, node = a.node }
      run.spans[#run.spans + 1] = span
      if undo then
        local u = undo
        undo = function()
          span.t2 = w:now()
          u()
        end
      else
        span.t2 = span.t
      end
      if a.permanent then run:fault("%s: this fault never heals (--liveness)", short_of(run, a.node)) end
      -- a node stopped on purpose stays stopped unless the scenario starts it again
      if a.kind == "stop" and not a.heal then undo = nil end
      if undo then
        if a.heal and not permanent(a) then
          at(a.heal, function()
            undo_at_end[a] = nil
            undo()
          end)
        end
        if not permanent(a) then undo_at_end[a] = undo end
      end
    end)
  end
  local printed, failed = 0, nil
  local function pull()
    local recs = w:records(printed + 1)
    for _, r in ipairs(recs) do
      printed = printed + 1
      local e = entry_of(run, r)
      run.events[#run.events + 1] = e
      if e.kind == "master" and e.master and e.master == e.node then run.master = index_of(e.master) end
      if out.timeline and e.kind ~= "committed" and (not cfg.only or not e.node or cfg.only[e.node]) then
        out.lines[#out.lines + 1] = line_of(run, e)
      end
    end
  end
  local function run_to(t)
    while true do
      table.sort(todo, function(x, y) return x.t < y.t or (x.t == y.t and x.seq < y.seq) end)
      local nxt = todo[1]
      if not nxt or nxt.t > t then break end
      table.remove(todo, 1)
      local ok, why = w:run(nxt.t)
      pull()
      if not ok then return false, why end
      nxt.fn()
      pull()
    end
    local ok, why = w:run(t)
    pull()
    return ok, why
  end
  local ok, why = run_to(cfg.duration)
  local verdict = { seed = seed }
  if not ok then
    failed = { kind = "safety", why = why, t = w:now() }
  else
    -- every fault heals (but the minority's under --liveness), then the cluster settles
    local pending = {}
    for _, item in ipairs(todo) do pending[#pending + 1] = item end
    todo = {}
    local undos = {}
    for _, a in ipairs(actions) do
      if undo_at_end[a] then undos[#undos + 1] = undo_at_end[a] end
    end
    if #undos > 0 then run:fault("end of the faults: everything heals%s", cfg.liveness and " (but the minority's)" or "") end
    for _, u in ipairs(undos) do u() end
    for i = 1, #cfg.nodes do
      local running, left = w:running(i)
      if not running and not left and not down_for_good[i] then
        run:fault("restart %s", short_of(run, i))
        w:start(i)
      end
    end
    pull()
    local healed_at = w:now()
    local ignore = {}
    for i in pairs(down_for_good) do ignore[#ignore + 1] = i end
    table.sort(ignore)
    local settled, term, version, master
    local t = healed_at
    while t < healed_at + SETTLE_BOUND_MS do
      t = t + 100
      local rok, rwhy = w:run(t)
      pull()
      if not rok then
        failed = { kind = "safety", why = rwhy, t = w:now() }
        break
      end
      local s, a2, b2, c2 = w:settled(ignore)
      if s then
        settled, term, version, master = true, a2, b2, c2
        break
      end
      why = a2
    end
    if not failed then
      if settled then
        verdict.settled = {
          after_ms = w:now() - healed_at, bound_ms = SETTLE_BOUND_MS, term = term, version = version,
          master = short_of(run, master),
        }
      else
        local ever = false
        for _, e in ipairs(run.events) do
          if e.kind == "master" and e.master then ever = true break end
        end
        failed = {
          kind = "liveness", t = w:now(),
          why = ("no single master with every node in step within %s of the faults healing: %s%s"):format(
            fmt_dur(SETTLE_BOUND_MS), tostring(why), ever and ""
              or " (no master was ever elected: can these nodes make a quorum of election.initial_master_nodes?)"),
        }
      end
    end
    if #ignore > 0 then
      local m = {}
      for _, i in ipairs(ignore) do m[#m + 1] = short_of(run, i) end
      verdict.permanent = m
    end
  end
  -- the user's expectations
  verdict.expectations = {}
  local history = make_history(run)
  if not failed and cfg.scenario and cfg.scenario.expect then
    for _, name in ipairs(sorted_keys(cfg.scenario.expect)) do
      local pok, res, msg, t_bad = pcall(cfg.scenario.expect[name], history)
      local held = pok and res == true
      local why_bad = not pok and ("it raised an error: " .. tostring(res)) or (not held and tostring(msg or "returned false")) or nil
      verdict.expectations[#verdict.expectations + 1] = { name = name, held = held, why = why_bad,
        t = not held and (tonumber(t_bad) or parse_duration(t_bad)) or nil }
      if not held and not failed then
        failed = { kind = "expectation", name = name, why = why_bad,
          t = (tonumber(t_bad) or parse_duration(t_bad)) or w:now() }
      end
    end
  end
  if run.scenario_error then failed = { kind = "scenario", why = run.scenario_error, t = w:now() } end
  verdict.failed = failed
  verdict.steps = w:steps()
  verdict.end_ms = w:now()
  verdict.events = run.events
  w:close()
  return verdict, run
end

-- ---------------------------------------------------------------- the HTML timeline

local function html_escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

local function write_html(path, cfg, verdict, run)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  local lanes = #cfg.nodes
  local W, lane_h, left = 1400, 34, 90
  local total = math.max(verdict.end_ms, 1)
  local function x(t) return left + (W - left - 10) * t / total end
  local H = 40 + lanes * lane_h + 30
  local colors = { master = "#1b7f3b", node_down = "#c0392b", node_up = "#7f8c8d", quorum_lost = "#d35400",
    quorum_regained = "#2980b9", exec = "#8e44ad", hook_error = "#e74c3c", lua_error = "#e74c3c", killed = "#000",
    crashed = "#000", started = "#16a085", fault = "#f39c12", violation = "#ff0000" }
  local parts = {}
  local function p(s) parts[#parts + 1] = s end
  p("<!doctype html><html><head><meta charset=\"utf-8\"><title>clusterlua sim: seed " .. verdict.seed .. "</title>")
  p("<style>body{font:13px sans-serif;margin:16px}svg{border:1px solid #ccc}text{font:11px sans-serif}"
    .. "#tip{position:fixed;background:#ffe;border:1px solid #999;padding:4px;display:none;white-space:pre}</style></head><body>")
  p(("<h3>clusterlua sim %s — seed %d — %s</h3>"):format(html_escape(cfg.file), verdict.seed,
    verdict.failed and ("FAILED: " .. html_escape(verdict.failed.why)) or "every check held"))
  p(("<svg width=\"%d\" height=\"%d\">"):format(W, H))
  -- faults: a shaded span from the fault to its heal, across every lane (or the lane of
  -- the node it hits), and a dashed line at every fault record
  local open = {}
  local lane_of = {}
  for i, nd in ipairs(cfg.nodes) do lane_of[i] = 40 + (i - 1) * lane_h end
  for _, sp in ipairs(run.spans) do
    local t2 = sp.t2 or total
    local y1, h = 24, lanes * lane_h
    if sp.node and lane_of[sp.node] then y1, h = lane_of[sp.node] - 14, lane_h - 4 end
    p(("<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#f39c12\" opacity=\"0.18\"><title>%s – %s %s</title></rect>")
      :format(x(sp.t), y1, math.max(2, x(t2) - x(sp.t)), h, fmt_time(sp.t), fmt_time(t2), html_escape(sp.label or "")))
  end
  for _, e in ipairs(run.events) do
    if e.kind == "fault" then
      p(("<line x1=\"%.1f\" y1=\"20\" x2=\"%.1f\" y2=\"%d\" stroke=\"#f39c12\" stroke-dasharray=\"3,3\"><title>%s %s</title></line>")
        :format(x(e.t), x(e.t), H - 20, fmt_time(e.t), html_escape(e.what)))
    end
  end
  -- a node's process down: a grey bar
  local down_since = {}
  local function down_bar(n, t)
    local i
    for k, nd in ipairs(cfg.nodes) do if nd.short == n then i = k end end
    if i and down_since[n] then
      p(("<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"4\" fill=\"#555\"><title>%s down %s – %s</title></rect>"):format(
        x(down_since[n]), lane_of[i] + 12, math.max(1, x(t) - x(down_since[n])), html_escape(n), fmt_time(down_since[n]),
        fmt_time(t)))
    end
    down_since[n] = nil
  end
  for _, e in ipairs(run.events) do
    if e.node and (e.kind == "killed" or e.kind == "crashed" or e.kind == "stopped" or e.kind == "exited") then
      down_since[e.node] = e.t
    elseif e.node and e.kind == "started" then
      down_bar(e.node, e.t)
    end
  end
  for n in pairs(down_since) do down_bar(n, total) end
  for i, nd in ipairs(cfg.nodes) do
    local y = 40 + (i - 1) * lane_h
    p(("<text x=\"4\" y=\"%d\">%s</text><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>"):format(
      y + 4, html_escape(nd.short), left, y, W - 10, y))
    open[nd.short] = nil
  end
  -- master spans
  local idx = {}
  for i, nd in ipairs(cfg.nodes) do idx[nd.short] = i end
  local since = {}
  local function close_span(n, t)
    if since[n] then
      local y = 40 + (idx[n] - 1) * lane_h
      p(("<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"6\" fill=\"#1b7f3b\" opacity=\"0.5\"/>"):format(
        x(since[n]), y - 3, math.max(1, x(t) - x(since[n]))))
      since[n] = nil
    end
  end
  for _, e in ipairs(run.events) do
    if e.kind == "master" and e.node then
      if e.master == e.node then since[e.node] = since[e.node] or e.t else close_span(e.node, e.t) end
    elseif (e.kind == "killed" or e.kind == "crashed" or e.kind == "exited") and e.node then
      close_span(e.node, e.t)
    end
  end
  for n in pairs(since) do close_span(n, total) end
  for _, e in ipairs(run.events) do
    if e.node and idx[e.node] and e.kind ~= "committed" then
      local y = 40 + (idx[e.node] - 1) * lane_h
      p(("<circle cx=\"%.1f\" cy=\"%d\" r=\"3\" fill=\"%s\"><title>%s %s: %s</title></circle>"):format(
        x(e.t), y + 8, colors[e.kind] or "#555", fmt_time(e.t), html_escape(e.node), html_escape(describe(e))))
    end
  end
  p(("<text x=\"%d\" y=\"%d\">0</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>"):format(
    left, H - 6, W - 10, H - 6, fmt_time(total)))
  p("</svg><p>Green bars: master. Grey bars: the process is down. Orange: a fault, from its start to its heal "
    .. "(on one lane when it hits one node). Dots: events (hover for details).</p><pre>")
  for _, e in ipairs(run.events) do
    if e.kind ~= "committed" then p(html_escape(line_of(run, e)) .. "\n") end
  end
  p("</pre></body></html>\n")
  f:write(table.concat(parts))
  f:close()
  return true
end

-- ---------------------------------------------------------------- main

return function()
  local argv = {}
  for i = 1, #arg do argv[i] = arg[i] end
  local okp, o = pcall(parse_args, argv)
  if not okp then
    if type(o) == "table" and o.usage then
      io.stderr:write("clusterlua sim: ", o.usage, "\n", USAGE)
      return 2
    end
    error(o, 0)
  end
  if o.help then
    io.stdout:write(USAGE)
    return 0
  end
  if not o.file then
    io.stderr:write("clusterlua sim: a topology file is required\n", USAGE)
    return 2
  end
  local topo, terr = topology.load(o.file)
  if not topo then return die(tostring(terr):gsub("^E%u+: ", "")) end
  local hset, herr = hooks.prepare(topo)
  if not hset then return die("hooks: " .. tostring(herr)) end
  local cfg = { file = o.file, duration = o.duration, liveness = o.liveness }
  if o.scenario then
    local sc, serr = load_scenario(o.scenario)
    if not sc then return die("scenario: " .. tostring(serr)) end
    cfg.scenario = sc
    if sc.duration and not o.duration_given then cfg.duration = parse_duration(sc.duration) end
    if type(sc.nodes) == "number" and not o.nodes then o.nodes = sc.nodes end
  end
  if cfg.scenario and type(cfg.scenario.nodes) == "table" then
    -- the scenario names the nodes (a DNS topology's names, say); --nodes takes the first N
    cfg.nodes = {}
    for i, n in ipairs(cfg.scenario.nodes) do
      if not o.nodes or i <= o.nodes then
        local parsed = names.parse(n)
        cfg.nodes[#cfg.nodes + 1] = { full = parsed.full, short = parsed.short }
      end
    end
    -- nodes that share a short name (node@10.0.0.1, node@10.0.0.2) go by their full names
    local count = {}
    for _, nd in ipairs(cfg.nodes) do count[nd.short] = (count[nd.short] or 0) + 1 end
    for _, nd in ipairs(cfg.nodes) do
      if count[nd.short] > 1 then nd.short = nd.full end
    end
  else
    cfg.nodes = node_list(topo, o.nodes)
  end
  -- a scenario's nodes = N, or a static list of hosts, may ask for more than the world holds
  if #cfg.nodes > rehearse.MAX_NODES then
    return die(("%d nodes: a rehearsal simulates at most %d"):format(#cfg.nodes, rehearse.MAX_NODES))
  end
  cfg.stepdown_ms = topo.election and topo.election.lua_stepdown_ms or 30000
  -- DNS faults only where DNS is used
  cfg.nemeses = {}
  local uses_dns = false
  cfg.hosts_files = {}
  for _, tname in ipairs(sorted_keys(topo.topologies or {})) do
    local t = topo.topologies[tname]
    if t.strategy == "dns" or t.strategy == "dns_srv" then uses_dns = true end
    if t.strategy == "hosts_file" and type(t.config) == "table" and type(t.config.path) == "string" then
      cfg.hosts_files[#cfg.hosts_files + 1] = t.config.path
    end
  end
  for _, k in ipairs(NEMESES) do
    if (k ~= "dns" or uses_dns) and (k ~= "hosts_file" or #cfg.hosts_files > 0) then
      cfg.nemeses[#cfg.nemeses + 1] = k
    end
  end
  if o.only then
    cfg.only = {}
    for _, want in ipairs(o.only) do
      local found
      for _, nd in ipairs(cfg.nodes) do
        if nd.short == want or nd.full == want then found = nd.short end
      end
      if not found then return die(("--node: no simulated node named %s"):format(want)) end
      cfg.only[found] = true
    end
  end
  cfg.name_width = 1
  for _, nd in ipairs(cfg.nodes) do cfg.name_width = math.max(cfg.name_width, #nd.short) end
  if cfg.scenario then
    local idx = function(name)
      for i, nd in ipairs(cfg.nodes) do
        if nd.short == name or nd.full == name then return i end
      end
    end
    local faults, ferr = check_faults(cfg.scenario, o.scenario, idx)
    if not faults then return die("scenario: " .. tostring(ferr)) end
    -- a fault after the end would silently never happen
    for k, a in ipairs(faults) do
      if a.at >= cfg.duration then
        return die(("scenario: %s: faults[%d]: at %s is not before the end of the run (%s; see duration or --duration)")
          :format(o.scenario, k, fmt_time(a.at):gsub("^%s+", ""), fmt_dur(cfg.duration)))
      end
    end
    cfg.faults = faults
  end
  local seeds = {}
  if o.seeds then
    for s = 1, o.seeds do seeds[#seeds + 1] = s end
  else
    seeds[1] = o.seed
  end
  local function replay(seed)
    local parts = { "clusterlua sim", o.file, "--seed", tostring(seed) }
    if o.nodes then parts[#parts + 1] = "--nodes " .. o.nodes end
    if o.scenario then parts[#parts + 1] = "--scenario " .. o.scenario end
    parts[#parts + 1] = "--duration " .. fmt_dur(cfg.duration)
    if o.liveness then parts[#parts + 1] = "--liveness" end
    return table.concat(parts, " ")
  end
  local node_names = {}
  for i, nd in ipairs(cfg.nodes) do node_names[i] = nd.short end
  local uv = require "uv"
  local t0 = uv.hrtime()
  if #seeds > 1 and not o.json then
    io.stdout:write(("clusterlua sim %s: %d nodes (%s), seeds 1 to %d, %s of virtual time each, %s%s\n"):format(o.file,
      #cfg.nodes, table.concat((function()
        local t = {}
        for i, nd in ipairs(cfg.nodes) do t[i] = nd.short end
        return t
      end)(), ", "), #seeds, fmt_dur(cfg.duration), o.scenario and ("scenario " .. o.scenario) or "default nemeses",
      o.liveness and ", liveness mode" or ""))
  end
  local n_ok = 0
  local status = 0
  local json_runs = {}
  local config_error
  local total_virtual, total_steps = 0, 0
  for _, seed in ipairs(seeds) do
    local out = { timeline = not o.json and #seeds == 1, lines = {} }
    local verdict, run = run_seed(cfg, seed, out)
    total_virtual = total_virtual + verdict.end_ms
    total_steps = total_steps + verdict.steps
    -- a node that cannot even start is a configuration error, not a failed check
    for _, e in ipairs(verdict.events) do
      if e.kind == "start_failed" and e.t < 1000 then
        config_error = ("%s could not start: %s"):format(e.node, tostring(e.error))
        break
      end
    end
    if config_error then break end
    if verdict.failed then
      status = verdict.failed.kind == "scenario" and 2 or math.max(status, 1)
    else
      n_ok = n_ok + 1
    end
    if o.timeline and seed == seeds[#seeds] then
      local hok, herr2 = write_html(o.timeline, cfg, verdict, run)
      if not hok then return die("--timeline: " .. tostring(herr2)) end
    end
    if o.json then
      json_runs[#json_runs + 1] = {
        seed = seed, ok = verdict.failed == nil, failed = verdict.failed, settled = verdict.settled,
        expectations = verdict.expectations, events = verdict.events, end_ms = verdict.end_ms,
        permanent = verdict.permanent, replay = replay(seed),
      }
    else
      local w = io.stdout
      if #seeds == 1 then
        w:write(("clusterlua sim %s: %d nodes (%s), seed %d, %s of virtual time, %s%s\n"):format(o.file, #cfg.nodes,
          table.concat(node_names, ", "), seed, fmt_dur(cfg.duration),
          o.scenario and ("scenario " .. o.scenario) or "default nemeses", o.liveness and ", liveness mode" or ""))
        for _, l in ipairs(out.lines) do w:write(l, "\n") end
      end
      local f = verdict.failed
      if f then
        if f.kind == "expectation" then
          w:write(("FAILED seed %d: expectation %q does not hold at %s: %s\n"):format(seed, f.name, fmt_time(f.t), f.why))
        else
          w:write(("FAILED seed %d at %s (%s check): %s\n"):format(seed, fmt_time(f.t), f.kind, f.why))
        end
        w:write("  the events leading up to it:\n")
        local before = {}
        for _, e in ipairs(verdict.events) do
          if e.t <= f.t and e.kind ~= "committed" then before[#before + 1] = e end
        end
        for k = math.max(1, #before - 19), #before do w:write("  ", line_of(run, before[k]), "\n") end
      else
        local s = verdict.settled
        local checks = #seeds > 1 and "every check held"
          or ("at most one master per term; no vote twice in a term nor before its term is on disk; no committed "
            .. "state lost; no commit without a quorum; quorum_lost only when justified")
        w:write(("ok seed %d: %s; settled %s after the faults healed (bound %s): master %s, term %d, version %d%s\n"):format(
          seed, checks, fmt_dur(math.floor(s.after_ms)), fmt_dur(s.bound_ms), s.master, s.term, s.version,
          verdict.permanent and (" (" .. table.concat(verdict.permanent, ", ") .. " left down: --liveness)") or ""))
      end
      for _, x in ipairs(verdict.expectations) do
        w:write(("  expectation %s: %s\n"):format(x.name, x.held and "held" or ("FAILED: " .. tostring(x.why))))
      end
      if #seeds == 1 or f then w:write("replay: ", replay(seed), "\n") end
    end
  end
  if config_error then return die(config_error) end
  if #seeds > 1 and not o.json then io.stdout:write(("%d of %d seeds ok\n"):format(n_ok, #seeds)) end
  if status == 2 then io.stderr:write("clusterlua sim: the scenario failed (see above)\n") end
  if o.json then
    io.stdout:write(table.concat(to_json { file = o.file, nodes = node_names, duration_ms = cfg.duration,
      liveness = o.liveness or false, runs = json_runs, ok = status == 0 }), "\n")
  end
  if o.timing then
    local wall = (uv.hrtime() - t0) / 1e9
    io.stdout:flush()
    io.stderr:write(("timing: %d seed(s), %.1f s of virtual time in %.2f s of wall time (%.0fx real time), %d steps\n"):format(
      #seeds, total_virtual / 1000, wall, total_virtual / 1000 / math.max(wall, 1e-9), total_steps))
  end
  return status
end
