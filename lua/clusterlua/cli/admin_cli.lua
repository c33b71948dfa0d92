-- What the commands that talk to a node's admin endpoint share (`clusterlua status`,
-- `events`, `keys`): one option loop with the common options, the admin token, and the
-- start of a run (a usage error exits 2, --help prints the usage, the endpoint comes
-- from --admin or CLUSTERLUA_ADMIN).
local M = {}

--- parse(argv, cmd, spec) -> options | nil, message
-- main.c sets arg[0] = cmd (Lua's script convention); a caller may also pass
-- { cmd, ... }: options start after the command name either way. Options may come
-- anywhere on the line, as --opt VALUE or --opt=VALUE. Common: --admin, --token-file,
-- --json, -h/--help, and --timeout MS when spec.timeout gives its default.
-- spec.option(o, k, value): the command's own options; value() returns the option's
-- value (or nil, message); returns false for an option it does not know, else nothing
-- or an error message. spec.words: other words are collected in o.words.
function M.parse(argv, cmd, spec)
  spec = spec or {}
  local o = { timeout = spec.timeout, words = spec.words and {} or nil }
  local i = (argv[0] ~= cmd and argv[1] == cmd) and 2 or 1
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
    elseif k == "--timeout" and spec.timeout then
      local t
      t, e = value()
      o.timeout = tonumber(t)
      if not e and (not o.timeout or o.timeout <= 0) then e = "--timeout needs a number of milliseconds" end
    elseif k == "--json" and not v then o.json = true
    elseif k == "-h" or k == "--help" then o.help = true
    else
      local r = spec.option and spec.option(o, k, value, v)
      if r == false or not spec.option then
        if spec.words and (a == "-" or not a:match("^%-")) then
          o.words[#o.words + 1] = a
        else
          e = "unknown option " .. a
        end
      else
        e = r
      end
    end
    if e then return nil, e end
    i = i + 1
  end
  return o
end

--- read_token(o) -> token | false (none) | nil, message
function M.read_token(o)
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

--- start(argv, cmd, usage, parse_args) -> o, base URL, token | nil, exit status
-- Parses, answers --help, finds the endpoint and the token; on a mistake prints it
-- (as `clusterlua CMD: ...`) with the usage.
function M.start(argv, cmd, usage, parse_args)
  local function err(fmt, ...) io.stderr:write("clusterlua ", cmd, ": ", fmt:format(...), "\n") end
  local o, e = parse_args(argv)
  if not o then
    err("%s", e)
    io.stderr:write(usage)
    return nil, 2
  end
  if o.help then
    io.stdout:write(usage)
    return nil, 0
  end
  local admin = o.admin or os.getenv("CLUSTERLUA_ADMIN")
  if not admin or admin == "" then
    err("no admin endpoint: pass --admin HOST:PORT or set CLUSTERLUA_ADMIN")
    return nil, 2
  end
  o.admin = admin
  local token, terr = M.read_token(o)
  if token == nil then
    err("%s", terr)
    return nil, 2
  end
  local base = admin:match("^https?://") and admin:gsub("/+$", "") or ("http://" .. admin)
  return o, base, token
end

return M
