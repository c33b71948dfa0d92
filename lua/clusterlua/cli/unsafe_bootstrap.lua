-- clusterlua unsafe-bootstrap --data DIR [--yes]
--
-- DANGEROUS. When a quorum of the voting configuration is lost for good (the disks are
-- gone), this rewrites one surviving node's state so that it alone forms the voting
-- configuration of a new cluster (a new cluster id), like Elasticsearch's
-- `elasticsearch-node unsafe-bootstrap`. Any other node that still holds the old
-- configuration could elect a master of its own; the new id makes the new cluster refuse
-- it instead of merging it silently. Wipe the other nodes' data directories before they
-- rejoin. Updates the survivor never accepted are lost.
local cnode = require "clusterlua.c.node"

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

-- write, fsync, rename, fsync the directory, as the node persists its state; mode 0600
-- like the node's own files (io.open would leave the umask's 0644)
local function write_atomic(path, data)
  local uv = require "uv"
  local tmp = path .. ".tmp"
  local fd, err = uv.fs_open(tmp, "w", 384)
  if not fd then return nil, err end
  -- an existing .tmp keeps its mode through O_TRUNC: set it
  local ok, werr = uv.fs_fchmod(fd, 384)
  local off = 0
  while ok and off < #data do
    local n, e = uv.fs_write(fd, data:sub(off + 1), off)
    if not n then ok, werr = nil, e else off = off + n end
  end
  if ok then ok, werr = uv.fs_fsync(fd) end
  uv.fs_close(fd)
  if not ok then return nil, werr end
  local rok, rerr = os.rename(tmp, path)
  if not rok then return nil, rerr end
  local dir = path:match "^(.*)/[^/]*$" or "."
  local dfd = uv.fs_open(dir, "r", 0)
  if dfd then
    uv.fs_fsync(dfd)
    uv.fs_close(dfd)
  end
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
You are about to make this node the only voting member of a NEW cluster, made from the
state it holds of cluster %s.
  its state: term %d, version %d (%s), %d voting node(s), %d node(s) known
The new cluster gets a new cluster id: nodes that still hold the old cluster's data are
refused by it (as another cluster's) and, if they come back, may elect a master of
their own with the old cluster id. This is UNSAFE: updates this node never received are
lost for good. Stop every node first; wipe the others' data directories before they
rejoin (they then join the new cluster as new nodes).
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
  local new = cnode.persisted_info(out)
  io.stdout:write(("Done. New cluster id %s (was %s). The old state is kept in %s.\n"):format(
    new and new.cluster_id or "?", info.cluster_id, backup),
    "Start this node; it will elect itself. Wipe the other nodes' data directories before they rejoin.\n")
  return 0
end
