-- `clusterlua --name NAME@HOST[:PORT] ... topology.lua`: turn the command line and the
-- topology file into a running node. Every mistake ends the process with a message that
-- names what was wrong, before anything starts.
local core = require "clusterlua.c.core"
local names = require "clusterlua.names"

local function die(msg)
  io.stderr:write("clusterlua: ", msg, "\n")
  io.stderr:flush()
  return 2
end

-- A keyring file: one key a line, the first the primary (keyring.h has the rules).
local KEYRING_FILE_MAX = 65536
local function read_keyring(path)
  local text, err = require("clusterlua.secret_file").read("--keyring-file", path, KEYRING_FILE_MAX)
  if not text then return nil, err end
  local keys, perr = require("clusterlua.c.crypto").keyring_parse(text, true)
  if not keys then return nil, ("--keyring-file: %s: %s"):format(path, perr) end
  return keys
end

local function read_cookie(opts)
  if opts.cookie and opts.cookie ~= "" then return opts.cookie end
  if opts.cookie_file then return require("clusterlua.secret_file").read("--cookie-file", opts.cookie_file) end
  local env = os.getenv "CLUSTERLUA_COOKIE"
  if env and env ~= "" then return env end
  return nil, "no cookie: give --cookie, --cookie-file or CLUSTERLUA_COOKIE"
end

return function(file)
  local opts = core.options()
  local me, err = names.parse(opts.name)
  if not me then return die("--name: " .. err:gsub("^EINVAL: ", "")) end
  local cookie, keys, cerr
  if opts.keyring_file then
    if opts.cookie or opts.cookie_file then return die("give either --keyring-file or --cookie/--cookie-file, not both") end
    keys, cerr = read_keyring(opts.keyring_file)
    if not keys then return die(cerr) end
  else
    cookie, cerr = read_cookie(opts)
    if not cookie then return die(cerr) end
  end
  local cl = require "clusterlua"
  local ok, serr = cl.start {
    file = file,
    name = me.full,
    cookie = cookie,
    keys = keys,
    keyring_file = opts.keyring_file,
    data = opts.data,
    admin = opts.admin,
    admin_token_file = opts.admin_token_file,
    roles = opts.roles,
    initial_master_nodes = opts.initial_master_nodes,
  }
  if not ok then return die(serr:gsub("^E%u+: ", "")) end
  return 0
end
