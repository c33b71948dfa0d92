-- A custom discovery strategy: the nodes are listed in a JSON file, e.g. one a
-- provisioning tool writes:  { "nodes": ["node1@127.0.0.1:4371", "node2@127.0.0.1:4372"] }
--
-- It follows the strategy contract (docs/strategies.md): validate(config),
-- start(ctx, config, previous_state), stop(ctx) -> state. It reaches the world only
-- through ctx (timers here), so the runtime can stop it, reload it, and one day host
-- it in the simulator unchanged. Edit this file while the node runs: it is reloaded
-- in place, and the nodes it declared stay connected.
local cjson = require "cjson.safe"

local M = {}

function M.validate(config)
  for k in pairs(config) do
    if k ~= "path" and k ~= "interval" then
      return nil, ("%s: unknown key (expected one of: interval, path)"):format(tostring(k))
    end
  end
  if type(config.path) ~= "string" or config.path == "" then
    return nil, "path: expected the path of a JSON file like {\"nodes\": [...]}"
  end
  if config.interval ~= nil and (type(config.interval) ~= "number" or config.interval < 100) then
    return nil, "interval: expected milliseconds >= 100"
  end
  return true
end

-- One instance per topology that uses this file; the ctx identifies it.
local instances = setmetatable({}, { __mode = "k" })

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "ENOENT: " .. tostring(err) end
  local text = f:read "*a"
  f:close()
  local doc, jerr = cjson.decode(text)
  if type(doc) ~= "table" or type(doc.nodes) ~= "table" then
    return nil, ("EINVAL: %s: expected {\"nodes\": [...]}%s"):format(path, jerr and (": " .. jerr) or "")
  end
  for i, n in ipairs(doc.nodes) do
    if type(n) ~= "string" or not n:match "^[%w_%-%.]+@.+$" then
      return nil, ("EINVAL: %s: nodes[%d] is not a node name"):format(path, i)
    end
  end
  return doc.nodes, text
end

function M.start(ctx, config, state)
  local inst = { list = state and state.list, text = nil }
  instances[ctx] = inst
  -- what the previous version declared stays declared until we know better
  if inst.list then ctx.set_nodes(inst.list) end
  local function poll()
    local list, text_or_err = read(config.path)
    if not list then
      -- a failed read is not "no nodes": keep the last set, report, retry next poll
      ctx.error(text_or_err)
      return
    end
    if text_or_err == inst.text then return end
    inst.list, inst.text = list, text_or_err
    ctx.log("info", ("%d node(s) listed in %s"):format(#list, config.path))
    ctx.set_nodes(list)
  end
  poll()
  ctx.every(config.interval or 2000, poll)
end

function M.stop(ctx)
  local inst = instances[ctx]
  instances[ctx] = nil
  return inst and { list = inst.list }
end

return M
