-- A real headless browser for specs: Debian's chromium driven through chromedriver's
-- WebDriver (W3C) over HTTP. Missing chromium or chromedriver is an error, never a skip
-- (`make deps` installs both). Every call must run inside proc.go (a coroutine).
local uv = require "uv"
local cjson = require "cjson.safe"
local http = require "clusterlua.http"
local proc = require "helpers.proc"
local async = require "clusterlua.async"

local M = {}

M.CHROMIUM = "/usr/bin/chromium"
M.DRIVER = "/usr/bin/chromedriver"

local function exists(path) return uv.fs_stat(path) ~= nil end

--- poll(pred, timeout_ms) -> true | nil: proc.wait_until for code inside proc.go (a
-- coroutine, where the WebDriver calls are): pred is asked every 25 ms
function M.poll(pred, timeout_ms)
  local deadline = proc.now() + timeout_ms
  while true do
    if pred() then return true end
    if proc.now() >= deadline then return nil end
    async.sleep(25)
  end
end

--- start() -> driver (a chromedriver process on a free loopback port)
function M.start()
  assert(exists(M.CHROMIUM), M.CHROMIUM .. " is missing: run `make deps` (Debian package chromium)")
  assert(exists(M.DRIVER), M.DRIVER .. " is missing: run `make deps` (Debian package chromium-driver)")
  local port = proc.free_port "tcp"
  local d = { port = port, base = ("http://127.0.0.1:%d"):format(port) }
  d.p = proc.start(M.DRIVER, { "--port=" .. port })
  d.dir = proc.tmpdir()
  return setmetatable(d, { __index = M })
end

function M:call(method, path, body)
  local st, text = http.request(method, self.base .. path, {
    body = type(body) == "string" and body or body and cjson.encode(body) or nil,
    headers = body and { ["Content-Type"] = "application/json" } or nil,
    timeout = 30000, max_body = 64 * 1024 * 1024,
  })
  if not st then return nil, text end
  local j = cjson.decode(text)
  if st ~= 200 then
    local v = type(j) == "table" and j.value or {}
    return nil, ("%s %s -> %d: %s"):format(method, path, st, tostring(type(v) == "table" and v.message or text):sub(1, 300))
  end
  return j and j.value
end

--- session() -> session id: a new headless browser
function M:session()
  assert(M.poll(function()
    local v = self:call("GET", "/status")
    return v and v.ready
  end, 10000), "chromedriver did not start")
  local v, err = self:call("POST", "/session", { capabilities = { alwaysMatch = {
    browserName = "chrome",
    ["goog:chromeOptions"] = { binary = M.CHROMIUM, args = { "--headless=new", "--no-sandbox", "--disable-gpu",
      "--disable-dev-shm-usage", "--window-size=1280,900", "--user-data-dir=" .. self.dir .. "/profile" } },
    ["goog:loggingPrefs"] = { browser = "ALL" },
  } } })
  assert(v, err)
  self.sid = v.sessionId
  return self.sid
end

function M:go(url) return assert(self:call("POST", "/session/" .. self.sid .. "/url", { url = url })) end

--- js(script, ...) -> what the script returns (a function body: use `return`)
function M:js(script, ...)
  -- built by hand: cjson would send an empty args list as an object
  local args = {}
  for i = 1, select("#", ...) do args[i] = cjson.encode((select(i, ...))) end
  local body = '{"script":' .. cjson.encode(script) .. ',"args":[' .. table.concat(args, ",") .. "]}"
  local v, err = self:call("POST", "/session/" .. self.sid .. "/execute/sync", body)
  if err then error(err, 2) end
  return v
end

--- the browser's console since the last call: { {level=, message=}, ... }
function M:console() return assert(self:call("POST", "/session/" .. self.sid .. "/se/log", { type = "browser" })) end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function unbase64(s)
  local map = {}
  for i = 1, 64 do map[B64:byte(i)] = i - 1 end
  local out, bits, n = {}, 0, 0
  for i = 1, #s do
    local v = map[s:byte(i)]
    if v then
      bits = bits * 64 + v
      n = n + 6
      if n >= 8 then
        n = n - 8
        local b = math.floor(bits / 2 ^ n)
        out[#out + 1] = string.char(b)
        bits = bits - b * 2 ^ n
      end
    end
  end
  return table.concat(out)
end

--- screenshot(path): the page as PNG
function M:screenshot(path)
  local b64 = assert(self:call("GET", "/session/" .. self.sid .. "/screenshot"))
  local png = unbase64(b64)
  assert(png:sub(2, 4) == "PNG", "not a PNG")
  local f = assert(io.open(path, "wb"))
  f:write(png)
  f:close()
  return #png
end

function M:quit()
  if self.sid then self:call("DELETE", "/session/" .. self.sid) end
  self.sid = nil
end

function M:stop()
  if self.p then self.p:stop(3000) end
  if self.dir then proc.rmtree(self.dir) end
end

return M
