-- A raw Server-Sent Events client for GET /_events, on luv: it keeps every event it
-- reads (.events: { {id=, event=, data=, raw=}, ... } in order), the status and the
-- head, and whether the server closed the stream. paused = true never reads at all
-- (a stuck client), with a small receive buffer so the server's bound is what fills.
local uv = require "uv"
local cjson = require "cjson.safe"

local M = {}

--- open(hostport, opts) -> stream; opts: path (default /_events), headers (table),
--- paused (never read), rcvbuf (bytes)
function M.open(hostport, opts)
  opts = opts or {}
  local host, port = hostport:match "^(.+):(%d+)$"
  local s = { events = {}, buf = "", head = nil, status = nil, closed = false, bytes = 0, comments = 0 }
  local tcp = uv.new_tcp()
  s.tcp = tcp
  if opts.rcvbuf then pcall(uv.recv_buffer_size, tcp, opts.rcvbuf) end
  tcp:connect(host, tonumber(port), function(err)
    if err then
      s.closed, s.err = true, err
      return
    end
    local lines = { ("GET %s HTTP/1.1"):format(opts.path or "/_events"), "Host: " .. hostport, "Accept: text/event-stream" }
    for k, v in pairs(opts.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
    tcp:write(table.concat(lines, "\r\n") .. "\r\n\r\n")
    if opts.paused then return end
    tcp:read_start(function(rerr, data)
      if rerr or not data then
        s.closed = true
        if not tcp:is_closing() then tcp:close() end
        return
      end
      s.bytes = s.bytes + #data
      s.buf = s.buf .. data
      if not s.head then
        local e = s.buf:find("\r\n\r\n", 1, true)
        if not e then return end
        s.head = s.buf:sub(1, e + 3)
        s.status = tonumber(s.head:match "^HTTP/1%.%d (%d+)")
        s.buf = s.buf:sub(e + 4)
      end
      if s.status ~= 200 then s.body = s.buf return end
      while true do
        local i = s.buf:find("\n\n", 1, true)
        if not i then break end
        local block = s.buf:sub(1, i - 1)
        s.buf = s.buf:sub(i + 2)
        local ev = { raw = block }
        local data_lines = {}
        for l in (block .. "\n"):gmatch "([^\n]*)\n" do
          if l:sub(1, 1) == ":" then s.comments = s.comments + 1
          else
            local f, v = l:match "^([^:]*): ?(.*)$"
            if f == "id" then ev.id = v elseif f == "event" then ev.event = v elseif f == "data" then data_lines[#data_lines + 1] = v end
          end
        end
        if #data_lines > 0 then
          ev.data = cjson.decode(table.concat(data_lines, "\n"))
          s.events[#s.events + 1] = ev
        end
      end
    end)
  end)
  function s.close()
    if not tcp:is_closing() then tcp:close() end
  end
  function s.find(kind, pred)
    for i, e in ipairs(s.events) do
      if e.event == kind and (not pred or pred(e.data or {})) then return e, i end
    end
  end
  return s
end

--- "INC-SEQ" -> inc, seq (numbers; the incarnation as a string, it is beyond 2^53)
function M.split(id)
  local inc, seq = tostring(id):match "^(%d+)%-(%d+)$"
  return inc, tonumber(seq)
end

return M
