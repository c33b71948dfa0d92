-- Coroutine helpers over luv: wait without callbacks.
local M = {}
return M
