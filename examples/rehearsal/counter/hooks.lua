-- The counter example's hooks: a master duty that updates the metadata, an RPC handler.
local cl = require "clusterlua"

cl.handle("ping", function(v) return { pong = v, from = cl.self().name } end)

cl.on_master("counter", function(cancelled)
  while not cancelled() do
    local v, err = cl.update(function(md)
      md.counter = (md.counter or 0) + 1
      return md
    end)
    if not v then cl.log("warn", "counter: update failed: " .. tostring(err)) end
    cl.sleep(1000)
  end
end)

return {
  node_up = function(node)
    local r, err = cl.call(node, "ping", 1, { timeout = 1000 })
    if not r then cl.log("warn", ("ping %s: %s"):format(node, tostring(err))) end
  end,
}
