-- clusterlua.http (the small HTTP/1.1 client) and `clusterlua status`, against tiny
-- luv servers started here on loopback.
local uv = require "uv"
local cjson = require "cjson"
local http = require "clusterlua.http"
local proc = require "helpers.proc"
local go = proc.go

-- A server that hands each complete request (head and Content-Length body) to
-- handler(req, client); req = {method, target, headers, body, raw}.
local function serve(handler)
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  local seen = {}
  local clients = {}
  assert(server:listen(64, function()
    local c = uv.new_tcp()
    server:accept(c)
    clients[#clients + 1] = c
    local buf = ""
    c:read_start(function(e, data)
      if e or not data then
        if not c:is_closing() then c:close() end
        return
      end
      buf = buf .. data
      local he = buf:find("\r\n\r\n", 1, true)
      if not he then return end
      local head = buf:sub(1, he - 1)
      local method, target = head:match("^(%u+) (%S+) HTTP/1%.1")
      local headers = {}
      for k, v in head:gmatch("\r\n([^:]+):%s*([^\r]*)") do headers[k:lower()] = v end
      local len = tonumber(headers["content-length"] or "0")
      if #buf < he + 3 + len then return end
      local req = { method = method, target = target, headers = headers, body = buf:sub(he + 4, he + 3 + len), raw = buf }
      buf = ""
      seen[#seen + 1] = req
      handler(req, c)
    end)
  end))
  local port = server:getsockname().port
  return {
    port = port,
    url = "http://127.0.0.1:" .. port,
    seen = seen,
    close = function()
      for _, c in ipairs(clients) do if not c:is_closing() then c:close() end end
      server:close()
    end,
  }
end

local function respond(c, status, body, extra)
  c:write(("HTTP/1.1 %d X\r\nContent-Length: %d\r\nContent-Type: application/json\r\n%s\r\n%s")
    :format(status, #body, extra or "", body))
end

local function free_port()
  local t = uv.new_tcp()
  t:bind("127.0.0.1", 0)
  local p = t:getsockname().port
  t:close()
  return p
end

describe("clusterlua.http", function()
  it("GETs a body with its status and lower-cased headers", function()
    local s = serve(function(req, c) respond(c, 200, '{"ok":true}', "X-Thing: a\r\nX-Thing: b\r\n") end)
    go(function()
      local status, body, headers = http.request("GET", s.url .. "/_nodes?pretty", { headers = { Accept = "application/json" } })
      assert.equal(200, status)
      assert.equal('{"ok":true}', body)
      assert.equal("application/json", headers["content-type"])
      assert.equal("a, b", headers["x-thing"])
      local r = s.seen[1]
      assert.equal("GET", r.method)
      assert.equal("/_nodes?pretty", r.target)
      assert.equal("127.0.0.1:" .. s.port, r.headers.host)
      assert.equal("application/json", r.headers.accept)
      assert.equal("close", r.headers.connection)
    end)
    s.close()
  end)

  it("sends a body with its length and returns error statuses as answers", function()
    local s = serve(function(req, c) respond(c, 400, '{"error":"' .. req.body .. '"}') end)
    go(function()
      local status, body = http.request("POST", s.url .. "/x", { body = "abc" })
      assert.equal(400, status)
      assert.equal('{"error":"abc"}', body)
      assert.equal("3", s.seen[1].headers["content-length"])
    end)
    s.close()
  end)

  it("decodes a chunked answer", function()
    local s = serve(function(_, c)
      c:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
      local t = uv.new_timer()
      t:start(20, 0, function()
        t:close()
        c:write("6\r\n world\r\n0\r\n\r\n")
      end)
    end)
    go(function()
      local status, body = http.request("GET", s.url .. "/")
      assert.equal(200, status)
      assert.equal("hello world", body)
    end)
    s.close()
  end)

  it("reads an answer without a length until the server closes", function()
    local s = serve(function(_, c)
      c:write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", function() c:close() end)
    end)
    go(function()
      local status, body = http.request("GET", s.url .. "/")
      assert.equal(200, status)
      assert.equal("all of it", body)
    end)
    s.close()
  end)

  it("skips an interim 100 answer", function()
    local s = serve(function(_, c)
      c:write("HTTP/1.1 100 Continue\r\n\r\n")
      respond(c, 201, "made")
    end)
    go(function()
      local status, body = http.request("PUT", s.url .. "/", { body = "x" })
      assert.equal(201, status)
      assert.equal("made", body)
    end)
    s.close()
  end)

  it("reports a refused connection as ECONNREFUSED", function()
    local port = free_port()
    go(function()
      local ok, msg, name = http.request("GET", "http://127.0.0.1:" .. port .. "/")
      assert.is_nil(ok)
      assert.equal("ECONNREFUSED", name)
      assert.matches("^ECONNREFUSED: .*127%.0%.0%.1:" .. port, msg)
    end)
  end)

  it("times out on a server that never answers, within the bound", function()
    local s = serve(function() end)
    go(function()
      local t0 = uv.hrtime()
      local ok, msg, name = http.request("GET", s.url .. "/", { timeout = 200 })
      local ms = (uv.hrtime() - t0) / 1e6
      assert.is_nil(ok)
      assert.equal("ETIMEDOUT", name)
      assert.matches("^ETIMEDOUT: ", msg)
      assert.is_true(ms >= 190 and ms < 2000, "took " .. ms .. " ms")
    end)
    s.close()
  end)

  it("refuses malformed, truncated and oversized answers", function()
    local mode
    local s = serve(function(_, c)
      if mode == "garbage" then c:write("SMTP ready\r\n\r\n")
      elseif mode == "short" then
        c:write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", function() c:close() end)
      elseif mode == "big" then respond(c, 200, ("x"):rep(2000))
      elseif mode == "badchunk" then c:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
      end
    end)
    go(function()
      mode = "garbage"
      local ok, msg, name = http.request("GET", s.url .. "/")
      assert.is_nil(ok); assert.equal("EPROTO", name); assert.matches("status line", msg)
      mode = "short"
      ok, msg, name = http.request("GET", s.url .. "/")
      assert.is_nil(ok); assert.equal("EPROTO", name); assert.matches("3 of 10", msg)
      mode = "big"
      ok, msg, name = http.request("GET", s.url .. "/", { max_body = 1000 })
      assert.is_nil(ok); assert.equal("EMSGSIZE", name)
      mode = "badchunk"
      ok, msg, name = http.request("GET", s.url .. "/")
      assert.is_nil(ok); assert.equal("EPROTO", name); assert.matches("chunk", msg)
    end)
    s.close()
  end)

  it("refuses bad URLs and bad arguments", function()
    go(function()
      local ok, msg, name = http.request("GET", "https://127.0.0.1/")
      assert.is_nil(ok); assert.equal("EINVAL", name); assert.matches("only http://", msg)
      ok, msg, name = http.request("GET", "http://:80/")
      assert.is_nil(ok); assert.equal("EINVAL", name)
      ok, msg, name = http.request("GET", "http://127.0.0.1:99999/")
      assert.is_nil(ok); assert.equal("EINVAL", name)
      assert.has_error(function() http.request("get", "http://127.0.0.1/") end)
      assert.has_error(function()
        http.request("GET", "http://127.0.0.1:1/", { headers = { ["X-A"] = "b\r\nInjected: yes" } })
      end)
    end)
    assert.has_error(function() http.request("GET", "http://127.0.0.1:1/") end,
      "bad argument to 'request': must be called from a coroutine")
  end)

  it("parses URLs, including IPv6 literals and bare host:port", function()
    assert.same({ host = "::1", port = 9200, target = "/a?b=c" }, http.parse_url("http://[::1]:9200/a?b=c"))
    assert.same({ host = "localhost", port = 80, target = "/" }, http.parse_url("http://localhost"))
    assert.same({ host = "10.0.0.1", port = 9200, target = "/?x" }, http.parse_url("10.0.0.1:9200?x"))
  end)
end)

describe("clusterlua status", function()
  local status_cli = require "clusterlua.cli.status"

  -- Runs the CLI with argv, capturing what it prints.
  local function run_cli(argv, env_admin)
    local out, errout = {}, {}
    local saved_out, saved_err, saved_getenv = io.stdout, io.stderr, os.getenv
    io.stdout = { write = function(self, ...) for _, v in ipairs({ ... }) do out[#out + 1] = tostring(v) end return self end,
      flush = function() end }
    io.stderr = { write = function(self, ...) for _, v in ipairs({ ... }) do errout[#errout + 1] = tostring(v) end return self end,
      flush = function() end }
    os.getenv = function(k)
      if k == "CLUSTERLUA_ADMIN" then return env_admin end
      if k == "CLUSTERLUA_ADMIN_TOKEN" then return nil end
      return saved_getenv(k)
    end
    local ok, rc = pcall(status_cli, "status", argv)
    io.stdout, io.stderr, os.getenv = saved_out, saved_err, saved_getenv
    if not ok then error(rc, 0) end
    return rc, table.concat(out), table.concat(errout)
  end

  local NODES = cjson.encode({ nodes = {
    { name = "node1@127.0.0.1:4371", id = "id1", address = "127.0.0.1:4371", roles = { "master" }, connected = true,
      self = true, last_heartbeat_ms = 0 },
    { name = "node2@127.0.0.1:4372", id = "id2", address = "127.0.0.1:4372", roles = { "master", "data" },
      connected = true, last_heartbeat_ms = 120 },
    { name = "node3@127.0.0.1:4373", id = "id3", address = "127.0.0.1:4373", roles = { "data" }, connected = false,
      last_heartbeat_ms = 5300 },
  } })
  local HEALTH = cjson.encode({ cluster_name = "edge", status = "yellow", master = "node2@127.0.0.1:4372", term = 4,
    version = 17, number_of_nodes = 2, quorum = 2, voting_config = { "node1@127.0.0.1:4371", "node2@127.0.0.1:4372" },
    lua_lag_ms = 1, hook_aborts = 0 })
  local STATE = cjson.encode({ metadata = { cluster_coordination = { term = 4, last_committed_config = { "id1", "id2" },
    voting_config_exclusions = { { node_id = "id3", node_name = "node3@127.0.0.1:4373" } } } } })

  local function fake_node(token)
    return serve(function(req, c)
      if token and req.headers.authorization ~= "Bearer " .. token then
        return respond(c, 401, '{"error":"missing or invalid bearer token"}')
      end
      local path = req.target:match("^[^?]*")
      if path == "/_nodes" then respond(c, 200, NODES .. "\n")
      elseif path == "/_cluster/health" then respond(c, 200, HEALTH .. "\n")
      elseif path == "/_cluster/state" then respond(c, 200, STATE .. "\n")
      else respond(c, 404, '{"error":"no handler"}') end
    end)
  end

  it("prints the nodes table and the health line", function()
    local s = fake_node()
    local rc, out, err = run_cli({ "status", "--admin", "127.0.0.1:" .. s.port })
    s.close()
    assert.equal(0, rc, err)
    assert.matches("NODE%s+ADDRESS%s+ROLES%s+STATUS%s+MASTER%s+VOTING%s+LAST HEARTBEAT", out)
    assert.matches("node1@127%.0%.0%.1:4371 %(this node%)%s+127%.0%.0%.1:4371%s+master%s+up%s+yes%s+%-", out)
    assert.matches("node2@127%.0%.0%.1:4372%s+127%.0%.0%.1:4372%s+master,data%s+up%s+%*%s+yes%s+120 ms ago", out)
    assert.matches("node3@127%.0%.0%.1:4373%s+127%.0%.0%.1:4373%s+data%s+down%s+no%s+5%.3 s ago", out)
    assert.matches("cluster edge: yellow%s+master node2@127%.0%.0%.1:4372%s+term 4%s+version 17%s+quorum 2 of 2 voting", out)
    assert.matches("excluded from voting: node3@127%.0%.0%.1:4373", out)
    assert.equal("/_cluster/state?filter_path=metadata.cluster_coordination", s.seen[3].target)
  end)

  it("lists this node first, then the nodes that are down, then the rest, by name within each", function()
    local function node(name, up, self) return { name = name .. "@127.0.0.1:1", connected = up, self = self } end
    local out = status_cli.render({ nodes = { node("b", true), node("z", true, true), node("d", false), node("a", true),
      node("c", false) } }, nil, nil)
    local order = {}
    for name in out:gmatch "\n(%a)@" do order[#order + 1] = name end
    assert.same({ "z", "c", "d", "a", "b" }, order, out)
  end)

  it("prints the combined JSON with --json (and takes CLUSTERLUA_ADMIN)", function()
    local s = fake_node()
    local rc, out = run_cli({ "status", "--json" }, "127.0.0.1:" .. s.port)
    s.close()
    assert.equal(0, rc)
    local doc = cjson.decode(out)
    assert.equal("node2@127.0.0.1:4372", doc.health.master)
    assert.equal(3, #doc.nodes.nodes)
    assert.equal(4, doc.state.metadata.cluster_coordination.term)
  end)

  it("sends the bearer token from --token-file", function()
    local s = fake_node("tok123")
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("tok123\n")
    f:close()
    local rc, out = run_cli({ "status", "--admin=127.0.0.1:" .. s.port, "--token-file", path })
    local rc2, _, err2 = run_cli({ "status", "--admin=127.0.0.1:" .. s.port })
    os.remove(path)
    s.close()
    assert.equal(0, rc)
    assert.matches("cluster edge", out)
    assert.equal(1, rc2)
    assert.matches("bearer token", err2)
  end)

  it("says how to name the endpoint and exits 2 without one", function()
    local rc, out, err = run_cli({ "status" }, nil)
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches("no admin endpoint: pass %-%-admin HOST:PORT or set CLUSTERLUA_ADMIN", err)
    rc, _, err = run_cli({ "status", "--bogus" }, nil)
    assert.equal(2, rc)
    assert.matches("unknown option %-%-bogus", err)
  end)

  it("exits 1 with a clear error when the endpoint is unreachable", function()
    local port = free_port()
    local rc, out, err = run_cli({ "status", "--admin", "127.0.0.1:" .. port, "--timeout", "1000" })
    assert.equal(1, rc)
    assert.equal("", out)
    assert.matches("cannot reach the admin endpoint at 127%.0%.0%.1:" .. port .. ": ECONNREFUSED", err)
  end)
end)
