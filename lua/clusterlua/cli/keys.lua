-- `clusterlua keys [--admin HOST:PORT] [--token-file PATH] [--json] [--timeout MS]
--                  list | install KEY|- | use FINGERPRINT | remove FINGERPRINT`
--
-- Rotates the cluster's keys through one node's admin endpoint, which applies the
-- change on every member and reports per node (GET /_keys, POST /_keys/install|use|
-- remove). Exit status: 0 when every member acknowledged, 1 when some did not (or the
-- node refused, or is unreachable), 2 usage. Options may come anywhere on the line.
local http = require "clusterlua.http"
local cjson = require "cjson.safe"
local admin_cli = require "clusterlua.cli.admin_cli"

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
  local o, e = admin_cli.parse(argv, "keys", { timeout = 10000, words = true })
  if not o then return nil, e end
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
  local o, base, token = admin_cli.start(argv, "keys", USAGE, parse_args)
  if not o then return base end
  local admin = o.admin
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
