-- `clusterlua keys [--admin HOST:PORT] [--token-file PATH] [--json] [--timeout MS]
--                  list | install KEY|- | use FINGERPRINT | remove FINGERPRINT`
--
-- Rotates the cluster's keys through one node's admin endpoint, which applies the
-- change on every member and reports per node (GET /_keys, POST /_keys/install|use|
-- remove). Exit status: 0 when every member acknowledged, 1 when some did not (or the
-- node refused, or is unreachable), 2 usage. Options may come anywhere on the line.
local http = require "clusterlua.http"
local cjson = require "cjson.safe"

local USAGE = [[
usage: clusterlua keys [--admin HOST:PORT] [--token-file PATH] [--json] [--timeout MS] COMMAND
  list                 every key of the cluster: fingerprint, on how many nodes it is
                       installed and primary
  install KEY | -      install a key on every node (`-`: read it from standard input,
                       so it does not show in `ps`); at least 16 bytes (`clusterlua cookie`)
  use FINGERPRINT      make that key the primary on every node
  remove FINGERPRINT   remove that key from every node (not while it is a primary)
  --admin HOST:PORT    any node's admin endpoint (or set CLUSTERLUA_ADMIN)
  --token-file PATH    bearer token, when the endpoint has one (or CLUSTERLUA_ADMIN_TOKEN)
  --json               print the endpoint's JSON answer
  --timeout MS         for the request (default 10000)
A rotation: install NEW, use NEW, check `list` shows it primary on every node, remove OLD.
]]

local function err(fmt, ...) io.stderr:write("clusterlua keys: ", fmt:format(...), "\n") end

local function parse_args(argv)
  local o = { timeout = 10000, words = {} }
  local i = (argv[0] ~= "keys" and argv[1] == "keys") and 2 or 1
  while argv[i] do
    local a = argv[i]
    local k, v = a:match("^(%-%-[%w-]+)=(.*)$")
    k = k or a
    local function value()
      if v then return v end
      i = i + 1
      if argv[i] == nil then return nil, k .. " needs a value" end
      return argv[i]
    end
    local e
    if k == "--admin" then o.admin, e = value()
    elseif k == "--token-file" then o.token_file, e = value()
    elseif k == "--timeout" then
      local t
      t, e = value()
      o.timeout = tonumber(t)
      if not e and (not o.timeout or o.timeout <= 0) then e = "--timeout needs a number of milliseconds" end
    elseif k == "--json" and not v then o.json = true
    elseif k == "-h" or k == "--help" then o.help = true
    elseif a == "-" or not a:match("^%-") then o.words[#o.words + 1] = a
    else e = "unknown option " .. a end
    if e then return nil, e end
    i = i + 1
  end
  if o.help then return o end
  local cmd, arg1, extra = o.words[1], o.words[2], o.words[3]
  if not cmd then return nil, "which command? list, install, use or remove" end
  if extra then return nil, "too many arguments: " .. extra end
  if cmd == "list" then
    if arg1 then return nil, "list takes no argument" end
  elseif cmd == "install" then
    if not arg1 then return nil, "install needs the key, or - to read it from standard input" end
  elseif cmd == "use" or cmd == "remove" then
    if not arg1 then return nil, cmd .. " needs a fingerprint (`clusterlua keys list` shows them)" end
  else
    return nil, "unknown command '" .. cmd .. "' (list, install, use, remove)"
  end
  o.cmd, o.arg = cmd, arg1
  return o
end

local function read_token(o)
  if o.token_file then
    local f, e = io.open(o.token_file, "rb")
    if not f then return nil, "cannot read the token file: " .. tostring(e) end
    local t = f:read("*a") or ""
    f:close()
    t = t:match("^%s*(.-)%s*$")
    if t == "" then return nil, "the token file " .. o.token_file .. " is empty" end
    return t
  end
  local t = os.getenv("CLUSTERLUA_ADMIN_TOKEN")
  if t and t ~= "" then return t end
  return false
end

local function pad(s, n) return s .. (" "):rep(math.max(0, n - #s)) end

local function render_list(doc)
  local n = tonumber(doc.nodes) or 0
  local out = { pad("FINGERPRINT", 18) .. pad("INSTALLED", 11) .. "PRIMARY" }
  for _, k in ipairs(type(doc.keys) == "table" and doc.keys or {}) do
    out[#out + 1] = pad(tostring(k.fingerprint), 18) .. pad(("[%d/%d]"):format(tonumber(k.installed_on) or 0, n), 11)
      .. ("[%d/%d]"):format(tonumber(k.primary_on) or 0, n)
  end
  out[#out + 1] = ""
  out[#out + 1] = ("%d of %d nodes answered"):format(tonumber(doc.acknowledged) or 0, n)
  for _, r in ipairs(type(doc.results) == "table" and doc.results or {}) do
    if r.ok ~= true then out[#out + 1] = ("  %s: %s"):format(tostring(r.node), tostring(r.error)) end
  end
  return table.concat(out, "\n") .. "\n"
end

local function render_change(doc)
  local out = {}
  for _, r in ipairs(type(doc.results) == "table" and doc.results or {}) do
    out[#out + 1] = ("  %s: %s"):format(tostring(r.node), r.ok == true and "ok" or tostring(r.error))
  end
  local msg = type(doc.message) == "string" and doc.message:gsub("^%x+ ", "") or "?"
  out[#out + 1] = ("%s: %s"):format(tostring(doc.fingerprint), msg)
  return table.concat(out, "\n") .. "\n"
end

local function keys(argv)
  local o, e = parse_args(argv)
  if not o then
    err("%s", e)
    io.stderr:write(USAGE)
    return 2
  end
  if o.help then
    io.stdout:write(USAGE)
    return 0
  end
  local admin = o.admin or os.getenv("CLUSTERLUA_ADMIN")
  if not admin or admin == "" then
    err("no admin endpoint: pass --admin HOST:PORT or set CLUSTERLUA_ADMIN")
    return 2
  end
  local base = admin:match("^https?://") and admin:gsub("/+$", "") or ("http://" .. admin)
  local token, terr = read_token(o)
  if token == nil then
    err("%s", terr)
    return 2
  end
  local method, path, body = "GET", "/_keys", nil
  if o.cmd == "install" then
    local key = o.arg
    if key == "-" then
      key = io.stdin:read("*a") or ""
      key = key:gsub("\r?\n$", "")
      if key == "" then
        err("no key on standard input")
        return 2
      end
    end
    method, path, body = "POST", "/_keys/install", cjson.encode({ key = key })
  elseif o.cmd == "use" or o.cmd == "remove" then
    method, path, body = "POST", "/_keys/" .. o.cmd, cjson.encode({ fingerprint = o.arg })
  end
  return http.run(function()
    local headers = { Accept = "application/json", ["Content-Type"] = body and "application/json" or nil }
    if token then headers.Authorization = "Bearer " .. token end
    local status, text = http.request(method, base .. path, { timeout = o.timeout, headers = headers, body = body })
    if not status then
      err("cannot reach the admin endpoint at %s: %s", admin, tostring(text))
      return 1
    end
    local doc = cjson.decode(text)
    if status == 401 then
      err("the endpoint wants a bearer token (--token-file PATH or CLUSTERLUA_ADMIN_TOKEN)")
      return 1
    end
    if type(doc) ~= "table" then
      err("%s %s answered %d, not JSON", method, path, status)
      return 1
    end
    if status == 400 or (status ~= 200 and status ~= 502) then
      local why = type(doc.error) == "string" and doc.error
      if not why and type(doc.results) == "table" and doc.results[1] then why = doc.results[1].error end
      err("refused: %s", tostring(why or ("HTTP " .. status)))
      return 1
    end
    if o.json then
      if o.cmd == "list" then
        -- in the documented order: {"nodes": N, "keys": [{"fingerprint", "installed_on", "primary_on"}]}
        local ks = {}
        for i, k in ipairs(type(doc.keys) == "table" and doc.keys or {}) do
          ks[i] = ('{"fingerprint":%s,"installed_on":%d,"primary_on":%d}'):format(cjson.encode(tostring(k.fingerprint)),
            tonumber(k.installed_on) or 0, tonumber(k.primary_on) or 0)
        end
        io.stdout:write(('{"nodes":%d,"keys":[%s]}\n'):format(tonumber(doc.nodes) or 0, table.concat(ks, ",")))
      else
        io.stdout:write(text:gsub("%s+$", ""), "\n")
      end
    else
      io.stdout:write(o.cmd == "list" and render_list(doc) or render_change(doc))
    end
    io.stdout:flush()
    return (status == 200 and doc.ok == true) and 0 or 1
  end)
end

-- main.c calls require("clusterlua.cli.keys")("keys") with the global arg table
return setmetatable({ parse_args = parse_args, render_list = render_list }, {
  __call = function(_, _, argv) return keys(argv or arg or {}) end,
})
