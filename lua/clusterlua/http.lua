-- A small HTTP/1.1 client over luv, for `clusterlua status` and for specs.
--
--   local http = require "clusterlua.http"
--   -- inside a coroutine:
--   local status, body, headers = http.request("GET", "http://127.0.0.1:9200/_nodes",
--                                              { timeout = 2000, headers = { ["X-A"] = "b" } })
--   -- on failure: nil, "ENAME: message", "ENAME" (the luv convention)
--
-- One request per connection (Connection: close), so there is no pool to go stale.
-- Responses are bounded (max_body, default 64 MiB); a response without a length is
-- read until the server closes. Names resolve through uv.getaddrinfo, never blocking.
local uv = require "uv"

local M = {}
local unpack = unpack or table.unpack
local function pack(...) return { n = select("#", ...), ... } end

local DEFAULT_TIMEOUT = 10000
local DEFAULT_MAX_BODY = 64 * 1024 * 1024

local function fail(name, msg) return nil, name .. ": " .. msg, name end

local friendly = {
  ECONNREFUSED = "connection refused", ECONNRESET = "connection reset by peer",
  ETIMEDOUT = "timed out", EHOSTUNREACH = "host unreachable", ENETUNREACH = "network unreachable",
  EPIPE = "broken pipe", EADDRNOTAVAIL = "address not available", EINVAL = "invalid argument",
  EAI_NONAME = "unknown host", EAI_AGAIN = "temporary DNS failure", EAI_FAIL = "DNS failure",
}

-- luv reports "ECONNREFUSED" (or "ECONNREFUSED: connection refused"): -> nil,
-- "ECONNREFUSED: connection refused (to 127.0.0.1:9200)", "ECONNREFUSED"
local function luv_fail(err, where)
  err = tostring(err)
  local name = err:match("^(E[%u%d_]+)") or "EIO"
  local msg = err:match("^E[%u%d_]+:%s*(.+)$") or friendly[name] or err
  if msg == name then msg = friendly[name] or "error" end
  return nil, name .. ": " .. msg .. (where and (" (" .. where .. ")") or ""), name
end

--- parse_url(url) -> {host=, port=, target=} or nil, "EINVAL: ...", "EINVAL"
function M.parse_url(url)
  if type(url) ~= "string" then return fail("EINVAL", "url must be a string") end
  local rest = url:match("^[Hh][Tt][Tt][Pp]://(.*)$")
  if not rest then
    if url:match("^%a[%w+.-]*://") then return fail("EINVAL", "only http:// URLs are supported: " .. url) end
    rest = url -- "host:port/path" is accepted for convenience
  end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  target = target:gsub("#.*$", "")
  if authority:find("@", 1, true) then return fail("EINVAL", "credentials in URLs are not supported") end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return fail("EINVAL", "no host in URL: " .. url) end
  port = tonumber(port ~= "" and port or "80")
  if not port or port < 1 or port > 65535 then return fail("EINVAL", "bad port in URL: " .. url) end
  if target:find("[%s%c]") then return fail("EINVAL", "spaces or control characters in the URL path") end
  return { host = host, port = port, target = target }
end

-- Parses a complete header section; returns status, headers (lower-case names; repeated
-- headers joined with ", ") or nil, message.
local function parse_head(head)
  local status_line, rest = head:match("^([^\r\n]*)\r?\n(.*)$")
  status_line = status_line or head
  local status = status_line:match("^HTTP/%d%.%d (%d%d%d)")
  if not status then return nil, "malformed status line: " .. status_line:sub(1, 80) end
  local headers = {}
  for line in (rest or ""):gmatch("([^\r\n]+)") do
    local k, v = line:match("^([^:%s]+):%s*(.-)%s*$")
    if not k then return nil, "malformed header line: " .. line:sub(1, 80) end
    k = k:lower()
    headers[k] = headers[k] and (headers[k] .. ", " .. v) or v
  end
  return tonumber(status), headers
end

-- Decodes a chunked body from buf. Returns body when complete, false when more data is
-- needed, or nil, message when malformed.
local function dechunk(buf, max_body)
  local parts, size, pos = {}, 0, 1
  while true do
    local line_end = buf:find("\r\n", pos, true)
    if not line_end then return false end
    local hex = buf:sub(pos, line_end - 1):match("^(%x+)")
    if not hex or #hex > 12 then return nil, "malformed chunk size" end
    local n = tonumber(hex, 16)
    if n == 0 then
      -- trailers end with an empty line
      local tail = buf:find("\r\n\r\n", line_end, true)
      if buf:sub(line_end, line_end + 3) == "\r\n\r\n" or tail then return table.concat(parts) end
      return false
    end
    size = size + n
    if size > max_body then return nil, "response body exceeds " .. max_body .. " bytes" end
    local data_start = line_end + 2
    if #buf < data_start + n + 1 then return false end
    parts[#parts + 1] = buf:sub(data_start, data_start + n - 1)
    if buf:sub(data_start + n, data_start + n + 1) ~= "\r\n" then return nil, "malformed chunk" end
    pos = data_start + n + 2
  end
end

local function resolve(host, port, cb)
  -- numeric addresses need no lookup (and must not depend on the resolver)
  if host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true) then return cb(nil, host) end
  if host == "localhost" then return cb(nil, "127.0.0.1") end
  local ok, err = pcall(uv.getaddrinfo, host, tostring(port), { socktype = "stream" }, function(e, res)
    if e or not res or not res[1] then return cb(e or "EAI_NONAME: no address for " .. host) end
    cb(nil, res[1].addr)
  end)
  if not ok then cb(err) end
end

--- request(method, url, opts) -> status, body, headers | nil, "ENAME: msg", "ENAME"
-- opts: body (string), headers (table name -> value), timeout (ms for the whole
-- exchange, default 10000), max_body (bytes). Must run inside a coroutine.
function M.request(method, url, opts)
  opts = opts or {}
  if type(method) ~= "string" or not method:match("^%u+$") then
    error("bad argument #1 to 'request' (HTTP method expected, e.g. \"GET\")", 2)
  end
  if type(opts) ~= "table" then error("bad argument #3 to 'request' (table expected)", 2) end
  local co, ismain = coroutine.running()
  if not co or ismain then error("bad argument to 'request': must be called from a coroutine", 2) end
  local u, perr, pname = M.parse_url(url)
  if not u then return nil, perr, pname end
  local body = opts.body or ""
  if type(body) ~= "string" then error("bad argument #3 to 'request' (opts.body must be a string)", 2) end
  local timeout = opts.timeout or DEFAULT_TIMEOUT
  local max_body = opts.max_body or DEFAULT_MAX_BODY

  local hostport = u.host:find(":", 1, true) and ("[" .. u.host .. "]") or u.host
  if u.port ~= 80 then hostport = hostport .. ":" .. u.port end
  local lines = { method .. " " .. u.target .. " HTTP/1.1", "Host: " .. hostport, "Connection: close",
    "User-Agent: clusterlua" }
  local has_len = false
  for k, v in pairs(opts.headers or {}) do
    k, v = tostring(k), tostring(v)
    if k:find("[\r\n:]") or v:find("[\r\n]") then
      error("bad argument #3 to 'request' (header " .. k .. " has a line break or colon)", 2)
    end
    if k:lower() == "content-length" then has_len = true end
    if k:lower() ~= "host" and k:lower() ~= "connection" then lines[#lines + 1] = k .. ": " .. v end
  end
  if (#body > 0 or method == "POST" or method == "PUT") and not has_len then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  local raw = table.concat(lines, "\r\n") .. "\r\n\r\n" .. body

  local tcp, timer
  local finished = false
  local chunks, got = {}, 0
  local head_done, status, headers, body_start, want

  local function cleanup()
    if timer and not timer:is_closing() then timer:close() end
    if tcp and not tcp:is_closing() then tcp:close() end
  end
  local function finish(...)
    if finished then return end
    finished = true
    cleanup()
    -- resume later, from the loop, so a synchronous failure does not resume the
    -- coroutine before it has yielded
    local res = pack(...)
    local defer = uv.new_timer()
    defer:start(0, 0, function()
      defer:close()
      local ok, err = coroutine.resume(co, unpack(res, 1, res.n))
      if not ok then error(err, 0) end
    end)
  end

  local function try_complete(eof)
    local buf = table.concat(chunks)
    chunks = { buf }
    if not head_done then
      local e = buf:find("\r\n\r\n", 1, true)
      if not e then
        if #buf > 65536 then return finish(fail("EPROTO", "response header section too large")) end
        if eof then return finish(fail("EPROTO", "connection closed before a complete response")) end
        return
      end
      local st, h = parse_head(buf:sub(1, e - 1))
      if not st then return finish(fail("EPROTO", h)) end
      if st >= 100 and st < 200 then -- interim (100 Continue): drop and wait for the real one
        chunks, got = { buf:sub(e + 4) }, #buf - e - 3
        return try_complete(eof)
      end
      head_done, status, headers, body_start = true, st, h, e + 4
      if method == "HEAD" or st == 204 or st == 304 then want = 0
      elseif h["content-length"] then
        want = tonumber(h["content-length"]:match("^%s*(%d+)%s*$"))
        if not want then return finish(fail("EPROTO", "bad Content-Length")) end
        if want > max_body then return finish(fail("EMSGSIZE", "response body exceeds " .. max_body .. " bytes")) end
      end
    end
    local rest = buf:sub(body_start)
    if headers["transfer-encoding"] and headers["transfer-encoding"]:lower():find("chunked") then
      local b, err = dechunk(rest, max_body)
      if b == nil then return finish(fail(err:find("exceeds") and "EMSGSIZE" or "EPROTO", err)) end
      if b then return finish(status, b, headers) end
      if eof then return finish(fail("EPROTO", "connection closed inside a chunked body")) end
      return
    end
    if want then
      if #rest >= want then return finish(status, rest:sub(1, want), headers) end
      if eof then return finish(fail("EPROTO", ("connection closed after %d of %d body bytes"):format(#rest, want))) end
      return
    end
    if #rest > max_body then return finish(fail("EMSGSIZE", "response body exceeds " .. max_body .. " bytes")) end
    if eof then return finish(status, rest, headers) end
  end

  timer = uv.new_timer()
  timer:start(timeout, 0, function()
    finish(fail("ETIMEDOUT", ("no complete answer from %s:%d within %d ms"):format(u.host, u.port, timeout)))
  end)

  local where = ("%s:%d"):format(u.host, u.port)
  resolve(u.host, u.port, function(rerr, addr)
    if finished then return end
    if rerr then return finish(luv_fail(rerr, "resolving " .. u.host)) end
    tcp = uv.new_tcp()
    local ok, cerr = pcall(tcp.connect, tcp, addr, u.port, function(err)
      if finished then return end
      if err then return finish(luv_fail(err, where)) end
      tcp:write(raw, function(werr)
        if werr and not finished then finish(luv_fail(werr, where)) end
      end)
      tcp:read_start(function(rerr2, data)
        if finished then return end
        if rerr2 then
          -- a reset after a complete answer still counts as the answer
          if head_done then return try_complete(true) end
          return finish(luv_fail(rerr2, where))
        end
        if data then
          got = got + #data
          if got > max_body + 65536 + 1024 then
            return finish(fail("EMSGSIZE", "response exceeds " .. max_body .. " bytes"))
          end
          chunks[#chunks + 1] = data
          try_complete(false)
        else
          try_complete(true)
        end
      end)
    end)
    if not ok then return finish(luv_fail(cerr, where)) end
  end)

  return coroutine.yield()
end

--- run(fn, ...) -> fn's results: runs fn in a coroutine and pumps the loop until it
-- returns. For main chunks (the CLI); never call it from inside a loop callback.
function M.run(fn, ...)
  local res
  local co = coroutine.create(function(...) res = pack(pcall(fn, ...)) end)
  local ok, err = coroutine.resume(co, ...)
  if not ok then error(err, 0) end
  while coroutine.status(co) ~= "dead" do uv.run("once") end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

return M
