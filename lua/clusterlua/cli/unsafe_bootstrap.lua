-- clusterlua unsafe-bootstrap --data DIR [--yes]
--
-- DANGEROUS. When a quorum of the voting configuration is lost for good (the disks are
-- gone), this rewrites one surviving node's state so that it alone forms the voting
-- configuration, like Elasticsearch's `elasticsearch-node unsafe-bootstrap`. Any other
-- node that still holds the old configuration could elect a master of its own: never
-- run it while other nodes of the old cluster may come back, and wipe their data
-- directories before they rejoin. Updates the survivor never accepted are lost.
local cnode = require "clusterlua.cnode"

local function die(code, msg)
  io.stderr:write("clusterlua unsafe-bootstrap: ", msg, "\n")
  return code
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read "*a"
  f:close()
  return s
end

local function write_atomic(path, data)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  f:write(data)
  f:flush()
  f:close()
  -- fsync through luv: io has no fsync
  local uv = require "uv"
  local fd = uv.fs_open(tmp, "r+", 384)
  if fd then
    uv.fs_fsync(fd)
    uv.fs_close(fd)
  end
  local ok, rerr = os.rename(tmp, path)
  if not ok then return nil, rerr end
  return true
end

return function()
  local argv = {}
  for i = 1, #arg do argv[i] = arg[i] end
  local data, yes
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--data" then
      data = argv[i + 1]
      i = i + 1
    elseif a:match "^%-%-data=" then
      data = a:sub(8)
    elseif a == "--yes" or a == "-y" then
      yes = true
    elseif a == "--help" or a == "-h" then
      io.stdout:write("usage: clusterlua unsafe-bootstrap --data DIR [--yes]\n",
        "Makes this (stopped) node's state the only voting member: for permanent quorum loss only.\n")
      return 0
    else
      return die(2, "unknown argument '" .. a .. "' (usage: clusterlua unsafe-bootstrap --data DIR [--yes])")
    end
    i = i + 1
  end
  if not data then return die(2, "--data DIR is required") end
  local id = read(data .. "/node_id")
  if not id then return die(1, data .. "/node_id: not found; is this a node's data directory?") end
  id = id:gsub("%s+$", "")
  local path = data .. "/cluster_state"
  local bytes = read(path)
  if not bytes then return die(1, path .. ": not found; this node never joined a cluster") end
  local info, ierr = cnode.persisted_info(bytes)
  if not info then return die(1, path .. ": " .. ierr:gsub("^EINVAL: ", "")) end
  io.stdout:write(([[
You are about to make this node the only voting member of cluster %s.
  its state: term %d, version %d (%s), %d voting node(s), %d node(s) known
This is UNSAFE: if any other node of this cluster still runs or comes back with its data,
two masters and two diverging cluster states can result, and updates this node never
received are lost for good. Stop every node first; wipe the others' data directories
before they rejoin.
]]):format(info.cluster_id, info.term, info.version, info.committed and "committed" or "accepted only",
    info.voting_nodes, info.nodes))
  if not yes then
    io.stdout:write "Type 'yes' to continue: "
    io.stdout:flush()
    local answer = io.stdin:read "*l"
    if answer ~= "yes" then return die(1, "aborted: nothing was changed") end
  end
  local out, err = cnode.unsafe_bootstrap(bytes, id)
  if not out then return die(1, err:gsub("^EINVAL: ", "")) end
  local backup = path .. ".before-unsafe-bootstrap"
  local ok, werr = write_atomic(backup, bytes)
  if not ok then return die(1, "cannot write " .. backup .. ": " .. tostring(werr)) end
  ok, werr = write_atomic(path, out)
  if not ok then return die(1, "cannot write " .. path .. ": " .. tostring(werr)) end
  io.stdout:write("Done. The old state is kept in ", backup, ". Start this node; it will elect itself.\n")
  return 0
end
