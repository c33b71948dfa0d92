-- Events born in Lua (reloads, hook errors and aborts, strategy errors) for the admin
-- endpoint's event stream (GET /_events). The node sets the sink when it starts (it
-- sends them to the control loop through the command queue, never waiting); before
-- that, and in a plain script, they go nowhere. Kept apart so that the scheduler and
-- the supervisor can report without requiring the node.
local M = {}

M.sink = nil -- function(kind, fields)

--- event(kind, fields): fields is a table of strings and numbers
function M.event(kind, fields)
  local sink = M.sink
  if sink then pcall(sink, kind, fields) end
end

return M
