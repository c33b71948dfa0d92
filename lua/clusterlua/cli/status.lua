-- `clusterlua status [--admin HOST:PORT] [--json] [--all | --limit N] [--status S]
--                   [--name PATTERNS] [--role ROLES] [--token-file PATH] [--timeout MS]`
--
-- Asks one node's admin endpoint for its view of the cluster (GET /_nodes,
-- /_cluster/health and, when served, the coordination part of /_cluster/state) and
-- prints a summary, then a table: this node, the unhealthy nodes, then the rest, at
-- most --limit rows (50) unless --all, so that a 1,000-node cluster stays readable.
-- Exit status: 0 shown, 1 endpoint unreachable or answering errors, 2 usage.
local http = require "clusterlua.http"
local cjson = require "cjson.safe"
local admin_cli = require "clusterlua.cli.admin_cli"

local DEFAULT_LIMIT = 50

local USAGE = [[
usage: clusterlua status [--admin HOST:PORT] [--json] [--all | --limit N] [--status S]
                         [--name PATTERNS] [--role ROLES] [--token-file PATH] [--timeout MS]
  --admin HOST:PORT   the node's admin endpoint (or set CLUSTERLUA_ADMIN)
  --json              print the raw answers as one JSON document
  --all               list every node (default: at most --limit rows)
  --limit N           at most N node rows, unhealthy nodes first (default 50)
  --status S          only nodes with these statuses: up, down, configured,
                      disconnected, unhealthy (comma-separated)
  --name PATTERNS     only nodes whose name matches (comma-separated, '*' wildcard;
                      a pattern without '@' also matches short names: edge-*)
  --role ROLES        only nodes with one of these roles (comma-separated)
  --token-file PATH   bearer token for an endpoint bound off loopback
                      (or set CLUSTERLUA_ADMIN_TOKEN)
  --timeout MS        per request (default 5000)
]]

local function err(fmt, ...) io.stderr:write("clusterlua status: ", fmt:format(...), "\n") end

local function parse_args(argv)
  local o, e = admin_cli.parse(argv, "status", {
    timeout = 5000,
    option = function(o, k, value, v)
      if k == "--limit" then
        local t, e = value()
        o.limit = tonumber(t)
        if not e and (not o.limit or o.limit < 1 or o.limit % 1 ~= 0) then
          e = "--limit needs a whole number of rows, 1 or more"
        end
        return e
      elseif k == "--status" or k == "--name" or k == "--role" then
        local t, e = value()
        if not e and t == "" then e = k .. " needs a value" end
        o[k:sub(3)] = t
        return e
      elseif k == "--all" and not v then
        o.all = true
        return
      end
      return false
    end,
  })
  if not o then return nil, e end
  if o.all and o.limit then return nil, "give --all or --limit, not both" end
  return o
end

local function urlencode(v)
  return (v:gsub("[^%w%-%._~,%*]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

-- GET /_nodes's query: the filters; for the table, the unhealthy first and one page
-- (the server counts the rest in its summary)
local function nodes_path(o, table_view)
  local q = {}
  for _, k in ipairs { "status", "name", "role" } do
    if o[k] then q[#q + 1] = k .. "=" .. urlencode(o[k]) end
  end
  if table_view then
    q[#q + 1] = "sort=status"
    if not o.all then q[#q + 1] = "size=" .. (o.limit or DEFAULT_LIMIT) end
  end
  return #q > 0 and ("/_nodes?" .. table.concat(q, "&")) or "/_nodes"
end

local read_token = admin_cli.read_token

-- GET path -> decoded, raw | nil, message, kind ("unreachable" | "http")
local function get(base, path, o, token)
  local headers = { Accept = "application/json" }
  if token then headers.Authorization = "Bearer " .. token end
  local status, body = http.request("GET", base .. path, { timeout = o.timeout, headers = headers })
  if not status then return nil, body, "unreachable" end
  local doc = cjson.decode(body)
  if status == 401 then
    return nil, "the endpoint wants a bearer token (--token-file PATH or CLUSTERLUA_ADMIN_TOKEN)", "http", status
  end
  if status ~= 200 then
    local why = type(doc) == "table" and type(doc.error) == "string" and doc.error or body:sub(1, 200)
    return nil, ("GET %s answered %d: %s"):format(path, status, why), "http", status
  end
  if type(doc) ~= "table" then return nil, ("GET %s: the answer is not JSON"):format(path), "http", status end
  return doc, body
end

local function roles_str(r)
  if type(r) == "table" then return #r > 0 and table.concat(r, ",") or "-" end
  return type(r) == "string" and r or "-"
end

local function age_str(ms)
  if type(ms) ~= "number" then return "-" end
  if ms < 1000 then return ("%d ms ago"):format(ms) end
  if ms < 120000 then return ("%.1f s ago"):format(ms / 1000) end
  return ("%d min ago"):format(math.floor(ms / 60000))
end

local function table_out(rows)
  local w = {}
  for _, r in ipairs(rows) do
    for c, cell in ipairs(r) do w[c] = math.max(w[c] or 0, #cell) end
  end
  local out = {}
  for _, r in ipairs(rows) do
    local cells = {}
    for c, cell in ipairs(r) do
      cells[c] = c < #r and (cell .. (" "):rep(w[c] - #cell)) or cell
    end
    out[#out + 1] = table.concat(cells, "  ")
  end
  return table.concat(out, "\n") .. "\n"
end

local STATUSES = { "up", "down", "configured", "disconnected" }

local function node_status(n)
  if type(n.status) == "string" then return n.status end
  return (n.connected == true or n.self == true) and "up" or "down"
end

-- The summary GET /_nodes sends; from the list itself when the node is older and sent
-- none (it then sent every node, so the counts are exact).
local function summary_of(doc, list)
  local s = type(doc) == "table" and type(doc.summary) == "table" and doc.summary or nil
  if s and type(s.by_status) == "table" then return s end
  s = { total = #list, by_status = {}, unhealthy = 0, number_of_connections = 0 }
  for _, st in ipairs(STATUSES) do s.by_status[st] = 0 end
  for _, n in ipairs(list) do
    local st = node_status(n)
    s.by_status[st] = (s.by_status[st] or 0) + 1
    if st ~= "up" then s.unhealthy = s.unhealthy + 1 end
    if n.connected == true and n.self ~= true then s.number_of_connections = s.number_of_connections + 1 end
  end
  s.matched = #list
  return s
end

-- nodes: GET /_nodes's answer; health, coord: optional; opts: limit (rows, nil = all),
-- filtered (the answer was filtered: say so)
local function render(nodes, health, coord, opts)
  opts = opts or {}
  local list = type(nodes) == "table" and type(nodes.nodes) == "table" and nodes.nodes or {}
  local summary = summary_of(nodes, list)
  -- this node first, then the nodes that are not up (what an operator looks for), then
  -- the rest; by name within each group (the server's sort=status order)
  local function rank(n)
    if n.self == true then return 0 end
    return node_status(n) == "up" and 2 or 1
  end
  table.sort(list, function(a, b)
    local ra, rb = rank(a), rank(b)
    if ra ~= rb then return ra < rb end
    return tostring(a.name) < tostring(b.name)
  end)
  local shown = #list
  if opts.limit and shown > opts.limit then shown = opts.limit end
  local master = health and type(health.master) == "string" and health.master or nil
  if not master and type(summary.master) == "string" then master = summary.master end
  -- the voting configuration: names from health; ids from the committed state
  local voting, have_voting = {}, false
  if health and type(health.voting_config) == "table" then
    have_voting = true
    for _, n in ipairs(health.voting_config) do voting[n] = true end
  end
  if coord and type(coord.last_committed_config) == "table" then
    have_voting = true
    for _, id in ipairs(coord.last_committed_config) do voting[id] = true end
  end

  local out = {}
  local function num(v) return type(v) == "number" and ("%d"):format(v) or "?" end
  if health then
    local vc = type(health.voting_config) == "table" and #health.voting_config or nil
    out[#out + 1] = ("cluster %s: %s  master %s  term %s  version %s  quorum %s%s\n"):format(
      tostring(health.cluster_name or "?"), tostring(health.status or "?"), master or "(none)",
      num(health.term), num(health.version), num(health.quorum), vc and (" of " .. vc .. " voting") or "")
  end
  -- the counts: every node this node knows, by status (zero counts left out)
  local by = type(summary.by_status) == "table" and summary.by_status or {}
  local parts = { ("%s up"):format(num(by.up or 0)) }
  for _, st in ipairs(STATUSES) do
    if st ~= "up" and type(by[st]) == "number" and by[st] > 0 then parts[#parts + 1] = ("%d %s"):format(by[st], st) end
  end
  for st, c in pairs(by) do
    local known = false
    for _, k in ipairs(STATUSES) do known = known or k == st end
    if not known and type(c) == "number" and c > 0 then parts[#parts + 1] = ("%d %s"):format(c, tostring(st)) end
  end
  local members = health and health.number_of_nodes or summary.number_of_nodes
  local extra = { ("nodes %s known: %s"):format(num(summary.total), table.concat(parts, ", ")) }
  if type(members) == "number" then extra[#extra + 1] = ("members %d"):format(members) end
  if type(summary.number_of_connections) == "number" then
    extra[#extra + 1] = ("connections %d"):format(summary.number_of_connections)
  end
  if health then
    if type(health.lua_lag_ms) == "number" then extra[#extra + 1] = ("lua lag %d ms"):format(health.lua_lag_ms) end
    if type(health.hook_aborts) == "number" and health.hook_aborts > 0 then
      extra[#extra + 1] = ("hook aborts %d"):format(health.hook_aborts)
    end
  end
  if coord and type(coord.voting_config_exclusions) == "table" and #coord.voting_config_exclusions > 0 then
    local names = {}
    for _, e in ipairs(coord.voting_config_exclusions) do names[#names + 1] = tostring(e.node_name or e.node_id) end
    extra[#extra + 1] = "excluded from voting: " .. table.concat(names, ", ")
  end
  out[#out + 1] = table.concat(extra, "  ") .. "\n"
  local matched = type(summary.matched) == "number" and summary.matched or #list
  if opts.filtered then out[#out + 1] = ("%d matching (%s)\n"):format(matched, opts.filtered) end

  local rows = { { "NODE", "ADDRESS", "ROLES", "STATUS", "MASTER", "VOTING", "LAST HEARTBEAT" } }
  local unhealthy_shown = 0
  for i = 1, shown do
    local n = list[i]
    local name = tostring(n.name or "?")
    local in_vc = voting[name] or (n.id ~= nil and n.id ~= cjson.null and voting[n.id])
    local st = node_status(n)
    if st ~= "up" and n.self ~= true then unhealthy_shown = unhealthy_shown + 1 end
    rows[#rows + 1] = {
      name .. (n.self == true and " (this node)" or ""),
      type(n.address) == "string" and n.address ~= "" and n.address or "-",
      roles_str(n.roles),
      -- "configured": listed by discovery but not a member (older nodes send no status)
      st,
      (master and name == master) and "*" or "",
      have_voting and (in_vc and "yes" or "no") or "?",
      n.self == true and "-" or age_str(n.last_heartbeat_ms),
    }
  end
  out[#out + 1] = "\n" .. table_out(rows)
  local hidden = matched - shown
  if hidden > 0 then
    -- the unhealthy come first, so the hidden ones are unhealthy only past a full page
    local hidden_bad = (not opts.filtered and type(summary.unhealthy) == "number")
      and summary.unhealthy - unhealthy_shown or nil
    local why = (hidden_bad and hidden_bad > 0) and (", %d of them unhealthy"):format(hidden_bad)
      or (hidden_bad == 0 and ", all up" or "")
    out[#out + 1] = ("... and %d more%s (--all lists every node%s)\n"):format(hidden, why,
      opts.filtered and "" or ", --status unhealthy only those")
  end
  return table.concat(out)
end

local function status(argv)
  local o, base, token = admin_cli.start(argv, "status", USAGE, parse_args)
  if not o then return base end
  local admin = o.admin

  return http.run(function()
    local nodes, raw_nodes, kind = get(base, nodes_path(o, not o.json), o, token)
    if not nodes then
      if kind == "unreachable" then err("cannot reach the admin endpoint at %s: %s", admin, raw_nodes)
      else err("%s", raw_nodes) end
      return 1
    end
    local health, raw_health = get(base, "/_cluster/health", o, token)
    if not health then err("%s", raw_health) end
    -- optional: older or partial nodes may not serve the state yet
    local state, raw_state = get(base, "/_cluster/state?filter_path=metadata.cluster_coordination", o, token)
    local coord = state and type(state.metadata) == "table" and state.metadata.cluster_coordination or nil
    if type(coord) ~= "table" then coord = nil end
    if o.json then
      io.stdout:write('{"nodes":', (raw_nodes:gsub("%s+$", "")), ',"health":',
        health and (raw_health:gsub("%s+$", "")) or "null", ',"state":',
        state and (raw_state:gsub("%s+$", "")) or "null", "}\n")
    else
      local filtered = {}
      for _, k in ipairs { "status", "name", "role" } do
        if o[k] then filtered[#filtered + 1] = k .. " " .. o[k] end
      end
      io.stdout:write(render(nodes, health, coord, { limit = not o.all and (o.limit or DEFAULT_LIMIT) or nil,
        filtered = #filtered > 0 and table.concat(filtered, ", ") or nil }))
    end
    io.stdout:flush()
    return health and 0 or 1
  end)
end

-- main.c calls require("clusterlua.cli.status")("status") with the global arg table
return setmetatable({ render = render, parse_args = parse_args, read_token = read_token, nodes_path = nodes_path }, {
  __call = function(_, _, argv) return status(argv or arg or {}) end,
})
