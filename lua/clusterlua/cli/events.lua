-- `clusterlua events [--admin HOST:PORT] [--token-file PATH] [--since ID] [--follow] [--json]`
--
-- Prints a node's events (GET /_events), one line per event, like `serf monitor`:
-- without --follow the history the node keeps, then exits; with it, the history and
-- then every new event until interrupted (a broken stream is resumed from the last
-- event seen, after a second). Exit status: 0 done or interrupted, 1 endpoint
-- unreachable or refusing, 2 usage.
local uv = require "uv"
local cjson = require "cjson.safe"
local http = require "clusterlua.http"
local admin_cli = require "clusterlua.cli.admin_cli"

local USAGE = [[
usage: clusterlua events [--admin HOST:PORT] [--token-file PATH] [--since ID] [--follow] [--json]
  --admin HOST:PORT   the node's admin endpoint (or set CLUSTERLUA_ADMIN)
  --token-file PATH   bearer token for an endpoint bound off loopback
                      (or set CLUSTERLUA_ADMIN_TOKEN)
  --since ID          only the events after this id (as printed with --json)
  --follow            keep printing new events until interrupted
  --json              one JSON object per line: {"id":..., "event":..., fields...}
]]

local function err(fmt, ...) io.stderr:write("clusterlua events: ", fmt:format(...), "\n") end

local function parse_args(argv)
  return admin_cli.parse(argv, "events", {
    option = function(o, k, value, v)
      if k == "--since" then
        local e
        o.since, e = value()
        if o.since and not o.since:match "^%d+%-%d+$" then e = "--since needs an event id such as 1733400000000000-17" end
        return e
      elseif k == "--follow" and not v then
        o.follow = true
        return
      end
      return false
    end,
  })
end

local function iso(ms)
  if type(ms) ~= "number" then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(ms / 1000)) .. (".%03dZ"):format(ms % 1000)
end

local function value_str(v)
  if type(v) == "table" then
    local parts = {}
    for _, x in ipairs(v) do parts[#parts + 1] = tostring(x) end
    return table.concat(parts, ",")
  end
  if v == cjson.null then return "-" end
  local s = tostring(v):gsub("\n.*", " ...")
  if s:find "[%s\"]" then s = ("%q"):format(s) end
  return s
end

-- the fields that name the event come first, the rest by name
local FIRST = { "node", "master", "previous", "term", "version", "reason", "topology", "hook", "why", "error" }

local function line(id, kind, data, json)
  local d = cjson.decode(data)
  if type(d) ~= "table" then d = { raw = data } end
  if json then
    d.id, d.event = id, kind
    return (cjson.encode(d) or "{}") .. "\n"
  end
  local out, seen = { iso(d.time), kind }, { time = true }
  for _, k in ipairs(FIRST) do
    if d[k] ~= nil then
      out[#out + 1] = k .. "=" .. value_str(d[k])
      seen[k] = true
    end
  end
  local rest = {}
  for k in pairs(d) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, k in ipairs(rest) do out[#out + 1] = k .. "=" .. value_str(d[k]) end
  return table.concat(out, " ") .. "\n"
end

-- Splits SSE text into events; returns what is left (an incomplete block).
local function parse_sse(buf, on_event)
  buf = buf:gsub("\r\n", "\n")
  while true do
    local i = buf:find("\n\n", 1, true)
    if not i then return buf end
    local block = buf:sub(1, i - 1)
    buf = buf:sub(i + 2)
    local id, kind, data = nil, "message", {}
    for l in (block .. "\n"):gmatch "([^\n]*)\n" do
      if l ~= "" and l:sub(1, 1) ~= ":" then
        local f, v = l:match "^([^:]*):? ?(.*)$"
        if f == "id" then id = v elseif f == "event" then kind = v elseif f == "data" then data[#data + 1] = v end
      end
    end
    if #data > 0 then on_event(id, kind, table.concat(data, "\n")) end
  end
end

local function split_hostport(admin)
  local host, port = admin:match "^%[([^%]]+)%]:(%d+)$"
  if not host then host, port = admin:match "^([^:]+):(%d+)$" end
  return host, tonumber(port)
end

-- One streaming request; calls on_event for each event and done(err_or_nil, status)
-- when the stream ends. Returns a function that aborts it.
local function open_stream(host, port, token, since, on_event, done, on_open)
  local tcp = uv.new_tcp()
  local finished = false
  local function finish(e, st)
    if finished then return end
    finished = true
    if not tcp:is_closing() then tcp:close() end
    done(e, st)
  end
  uv.getaddrinfo(host, tostring(port), { socktype = "stream" }, function(gerr, res)
    if gerr or not res or not res[1] then return finish("cannot resolve " .. host .. ": " .. tostring(gerr)) end
    tcp:connect(res[1].addr, port, function(cerr)
      if cerr then return finish(("cannot reach %s:%d: %s"):format(host, port, cerr)) end
      local hh = host:find(":", 1, true) and ("[" .. host .. "]") or host
      local req = { "GET /_events HTTP/1.1", ("Host: %s:%d"):format(hh, port), "Accept: text/event-stream",
        "User-Agent: clusterlua-events" }
      if token then req[#req + 1] = "Authorization: Bearer " .. token end
      if since then req[#req + 1] = "Last-Event-ID: " .. since end
      tcp:write(table.concat(req, "\r\n") .. "\r\n\r\n")
      local buf, head, status = "", false, nil
      tcp:read_start(function(rerr, data)
        if rerr then return finish("stream broken: " .. rerr, status) end
        if not data then return finish(head and "the node closed the stream" or "connection closed", status) end
        buf = buf .. data
        if not head then
          local e = buf:find("\r\n\r\n", 1, true)
          if not e then
            if #buf > 65536 then finish("bad answer", nil) end
            return
          end
          status = tonumber(buf:match "^HTTP/1%.%d (%d%d%d)")
          local body = buf:sub(e + 4)
          head, buf = true, body
          if status ~= 200 then
            -- the error body (small JSON) usually comes with the head
            local msg = buf:gsub("%s+$", "")
            return finish(("GET /_events answered %s%s"):format(tostring(status), msg ~= "" and (": " .. msg) or ""),
              status)
          end
        end
        on_open()
        buf = parse_sse(buf, on_event)
      end)
    end)
  end)
  return function() finish("interrupted", 0) end
end

local function events(argv)
  local o, code, token = admin_cli.start(argv, "events", USAGE, parse_args)
  if not o then return code end
  local admin = o.admin
  local host, port = split_hostport(admin:gsub("^https?://", ""):gsub("/+$", ""))
  if not host then
    err("--admin %s: expected HOST:PORT", admin)
    return 2
  end
  local function print_event(id, kind, data)
    io.stdout:write(line(id, kind, data, o.json))
    io.stdout:flush()
  end

  if not o.follow then
    return http.run(function()
      local headers = { Accept = "text/event-stream" }
      if token then headers.Authorization = "Bearer " .. token end
      local path = "/_events?follow=false" .. (o.since and ("&since=" .. o.since) or "")
      local hh = host:find(":", 1, true) and ("[" .. host .. "]") or host
      local st, body = http.request("GET", ("http://%s:%d%s"):format(hh, port, path), { headers = headers, timeout = 5000 })
      if not st then
        err("cannot reach the admin endpoint at %s: %s", admin, body)
        return 1
      end
      if st ~= 200 then
        err("GET /_events answered %d: %s", st, (body or ""):gsub("%s+$", ""))
        return 1
      end
      local rest = parse_sse(body, print_event)
      if rest:match "%S" then parse_sse(rest .. "\n\n", print_event) end
      return 0
    end)
  end

  -- --follow: stream until interrupted; resume from the last id after a break
  local last = o.since
  local code = 0
  local abort
  local sig = uv.new_signal()
  local timer = uv.new_timer()
  local stopping = false
  local connected_once = false -- a first failure to connect ends the command
  local function stop(c)
    stopping = true
    code = c
    if abort then abort() end
    if not sig:is_closing() then sig:close() end
    if not timer:is_closing() then timer:close() end
  end
  sig:start("sigint", function() stop(0) end)
  local connect
  local function on_done(why, status)
    if stopping then return end
    if status == 401 or status == 400 or status == 404 then
      err("%s", why)
      return stop(1)
    end
    if not connected_once then
      err("%s", why)
      return stop(1)
    end
    io.stderr:write(("clusterlua events: %s; resuming in 1 s\n"):format(why))
    timer:start(status == 429 and 5000 or 1000, 0, connect)
  end
  connect = function()
    abort = open_stream(host, port, token, last, function(id, kind, data)
      if id then last = id end
      print_event(id, kind, data)
    end, on_done, function() connected_once = true end)
  end
  connect()
  uv.run()
  return code
end

return setmetatable({ parse_args = parse_args, line = line, parse_sse = parse_sse }, {
  __call = function(_, _, argv) return events(argv or arg or {}) end,
})
