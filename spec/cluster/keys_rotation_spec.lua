-- Key rotation without downtime (issue 20): a 5-node cluster with messages and RPC
-- flowing rotates its key with `clusterlua keys install / use / remove`; nobody sees a
-- node_down, no message and no call is lost, and every connection ends up under the new
-- key. A node that only holds the old key is refused with both sides' fingerprints in
-- its log; a node that was down during a rotation rejoins with its keyring file when it
-- still shares a key. No log holds a key.
local uv = require "uv"
local cjson = require "cjson.safe"
local cluster = require "helpers.cluster"
local proc = require "helpers.proc"

local function esc(s) return (s:gsub("%p", "%%%0")) end


-- Every node sends a numbered message to every peer each tick and makes one call; a
-- receiver reports any gap at once. When the stop file appears, each node sends its
-- last number to every peer ("fin"), which checks it got them all.
local HOOKS = cluster.HOOKS_PRELUDE .. [[
local got, started = {}, false
local STOP = os.getenv("KEYS_SPEC_STOP")
cl.handle("k.msg", function(v, from)
  local last = got[from] or 0
  if v ~= last + 1 then out("gap", from, last, v) end
  got[from] = v
end)
cl.handle("k.rpc", function(v) return v + 1 end)
cl.handle("k.fin", function(v, from)
  out("fin", from, got[from] == v and "ok" or ("lost_" .. tostring(v - (got[from] or 0))))
end)
local function stopped()
  local f = io.open(STOP, "r")
  if f then f:close() return true end
  return false
end
local function traffic()
  local peers = cl.nodes()
  local seq, calls = 0, 0
  out("traffic_started", #peers)
  while not stopped() do
    seq = seq + 1
    for _, p in ipairs(peers) do
      local ok, err = cl.send(p, "k.msg", seq)
      if not ok then out("send_failed", p, err) end
    end
    local p = peers[seq % #peers + 1]
    local r, err = cl.call(p, "k.rpc", seq, { timeout = 5000 })
    if r == seq + 1 then calls = calls + 1 else out("call_failed", p, tostring(err)) end
    cl.sleep(5)
  end
  for _, p in ipairs(peers) do cl.send(p, "k.fin", seq) end
  out("traffic_done", seq, calls)
end
return {
  node_up = function(n)
    out("node_up", n)
    if not started and #cl.nodes() == 4 and not stopped() then
      started = true
      cl.spawn(traffic)
    end
  end,
  node_down = function(n, r) out("node_down", n, r) end,
}
]]

describe("key rotation across a running cluster", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("install, use, remove: no node_down, nothing lost, every connection under the new key; "
    .. "old-key and down nodes handled", function()
    local K1, K2, K3 = cluster.new_key(), cluster.new_key(), cluster.new_key()
    c = cluster.new { n = 5, hooks = HOOKS, cookie = K1, cluster = "keys" }
    local stop = c.dir .. "/stop"
    local env = { KEYS_SPEC_STOP = stop }
    -- node4 keeps its keys in a keyring file; the others start with --cookie
    local kf4 = c.dir .. "/keyring4"
    cluster.write(kf4, K1 .. "\n")
    assert(uv.fs_chmod(kf4, 384))
    for i = 1, 5 do c:start(i, i == 4 and { "--keyring-file", kf4 } or nil, env) end
    assert(c:wait_master(15000))
    for i = 1, 5 do assert.truthy(c.nodes[i]:wait_for_line("^EVENT traffic_started 4", 15000), c.nodes[i]:output()) end

    local function keys(args, stdin)
      local full = { "keys", "--admin", c.admin[1] }
      for _, a in ipairs(args) do full[#full + 1] = a end
      return proc.run(proc.bin, full, { stdin = stdin, timeout = 15000 })
    end
    local function list_json(i)
      local code, out = proc.run(proc.bin, { "keys", "list", "--json", "--admin", c.admin[i or 1] })
      return code, cjson.decode(out or ""), out
    end
    local code, doc = list_json()
    assert.equal(0, code)
    assert.equal(5, doc.nodes)
    assert.equal(1, #doc.keys)
    local fp1 = doc.keys[1].fingerprint
    assert.matches("^%x+$", fp1)
    assert.equal(16, #fp1)

    -- 1. install K2 (from standard input: a key on the command line shows in ps)
    local out
    code, out = keys({ "install", "-" }, K2 .. "\n")
    assert.equal(0, code, out)
    local fp2 = out:match("(%x+): installed on 5 of 5 nodes")
    assert.truthy(fp2, out)
    code, doc = list_json(3)
    assert.equal(0, code)
    local by = {}
    for _, k in ipairs(doc.keys) do by[k.fingerprint] = k end
    assert.same({ fingerprint = fp2, installed_on = 5, primary_on = 0 }, by[fp2])
    assert.same({ fingerprint = fp1, installed_on = 5, primary_on = 5 }, by[fp1])

    -- removing the primary is refused, with the reason, and changes nothing
    local ecode, _, eout = proc.run(proc.bin, { "keys", "remove", fp1, "--admin", c.admin[2] })
    assert.equal(1, ecode)
    assert.matches("refused: " .. esc(fp1) .. " is the primary key of " .. esc(c.names[2]), eout)

    -- 2. use K2
    code, out = keys({ "use", fp2 })
    assert.equal(0, code, out)
    assert.matches(esc(fp2) .. ": primary on 5 of 5 nodes", out)

    -- 3. remove K1
    code, out = keys({ "remove", fp1 })
    assert.equal(0, code, out)
    assert.matches(esc(fp1) .. ": removed from 5 of 5 nodes", out)

    -- every connection is under K2 within a second or so (the re-authentication)
    assert.truthy(proc.wait_until(function()
      for i = 1, 5 do
        local st, j = c:http(i, "GET", "/_nodes")
        if st ~= 200 then return false end
        for _, n in ipairs(j.nodes) do
          if not n.self and (n.status ~= "up" or n.fingerprint ~= fp2) then return false end
        end
      end
      return true
    end, 5000), "not every connection is under the new key")

    -- the data connections (messages and calls) were re-authenticated and re-keyed too:
    -- each node took part in one exchange per peer at least
    assert.truthy(proc.wait_until(function()
      for i = 1, 5 do
        local st, _, raw = c:http(i, "GET", "/metrics")
        local v = st and raw and tonumber(raw:match("clusterlua_data_connection_rekeys_total (%d+)"))
        if not v or v < 4 then return false end
      end
      return true
    end, 5000), "not every data connection was re-keyed")

    -- stop the traffic: every sender's last number reached every peer
    cluster.write(stop, "stop\n")
    for i = 1, 5 do
      local p = c.nodes[i]
      assert.truthy(p:wait_for_line("^EVENT traffic_done", 15000), p:output())
      for j = 1, 5 do
        if j ~= i then assert.truthy(p:wait_for_line("^EVENT fin " .. esc(c.names[j]) .. " ok", 10000), p:output()) end
      end
      for _, bad in ipairs { "^EVENT node_down", "^EVENT gap", "^EVENT call_failed", "^EVENT send_failed", "^EVENT fin .* lost" } do
        assert.is_nil(p:find_line(bad), ("node%d: %s"):format(i, tostring((p:find_line(bad)))))
      end
      local _, _, sent, calls = p:find_line("^EVENT traffic_done (%d+) (%d+)")
      assert.is_true(tonumber(sent) > 0 and tonumber(sent) == tonumber(calls), p:find_line("^EVENT traffic_done"))
    end
    -- node4's keyring file was rewritten: K2 alone, mode 0600
    local f = assert(io.open(kf4, "rb"))
    assert.equal(K2 .. "\n", f:read("*a"))
    f:close()
    assert.equal(384, uv.fs_stat(kf4).mode % 512)

    -- a node that holds only K1 is refused, and its log names both fingerprints
    local p5 = c.nodes[5]
    p5:kill "sigterm"
    assert.truthy(p5:wait_exit(5000))
    os.remove(c.dir .. "/data5/keyring")
    p5 = c:start(5, nil, env)
    local line = p5:wait_for_line("no key in common.*" .. esc(fp2) .. ".*" .. esc(fp1), 10000)
      or p5:wait_for_line("no key in common.*" .. esc(fp1) .. ".*" .. esc(fp2), 100)
    assert.truthy(line, p5:output())
    p5:kill "sigterm"
    assert.truthy(p5:wait_exit(5000))

    -- node4 is down while K3 is installed and made primary: not every node acknowledges
    -- (killed, not stopped: it stays a member that is down, rather than one that left)
    local p4 = c.nodes[4]
    p4:kill "sigkill"
    assert.truthy(p4:wait_exit(5000))
    code, out = keys({ "install", "-" }, K3)
    assert.equal(1, code, out)
    local fp3, acked, total = out:match("(%x+): installed on (%d+) of (%d+) nodes")
    assert.truthy(fp3, out)
    assert.is_true(tonumber(acked) < tonumber(total), out)
    assert.matches(esc(c.names[4]) .. ": down", out)
    code, out = keys({ "use", fp3 })
    assert.equal(1, code, out)
    -- it restarts with its keyring file (K2 only): it still shares K2, so it rejoins
    local mark = #c.nodes[1].lines
    p4 = c:start(4, { "--keyring-file", kf4 }, env)
    assert.truthy(c.nodes[1]:wait_for_line("^EVENT node_up " .. esc(c.names[4]), 10000, nil, mark), p4:output())
    assert.truthy(proc.wait_until(function()
      local st, j = c:http(1, "GET", "/_nodes")
      if st ~= 200 then return false end
      for _, n in ipairs(j.nodes) do if n.name == c.names[4] then return n.fingerprint == fp2 end end
      return false
    end, 5000))

    -- a node started with --cookie kept its changed keyring in DATA/keyring (0600) and
    -- prefers it at its next start, saying so: node3, restarted with the old cookie K1,
    -- comes back with K3 and K2 and rejoins
    assert.equal(384, uv.fs_stat(c.dir .. "/data3/keyring").mode % 512)
    local p3 = c.nodes[3]
    p3:kill "sigterm"
    assert.truthy(p3:wait_exit(5000))
    mark = #c.nodes[1].lines
    p3 = c:start(3, nil, env)
    assert.truthy(p3:wait_for_line("using the keyring in " .. esc(c.dir .. "/data3/keyring") .. " %(2 key%(s%)%) rather than the cookie given", 10000), p3:output())
    assert.truthy(c.nodes[1]:wait_for_line("^EVENT node_up " .. esc(c.names[3]), 10000, nil, mark), p3:output())

    -- no log, no output names a key
    local texts = {}
    for i = 1, 5 do
      local lf = io.open(c.dir .. "/node" .. i .. ".log", "rb")
      if lf then texts[#texts + 1] = lf:read("*a") lf:close() end
      texts[#texts + 1] = c.nodes[i]:output()
    end
    local all = table.concat(texts, "\n")
    assert.is_true(#all > 1000)
    for n, k in ipairs { K1, K2, K3 } do
      assert.is_nil(all:find(k, 1, true), "key " .. n .. " appears in a log")
    end
    -- (under make test-asan: no node reported a memory error, a leak or undefined behaviour)
    assert.is_nil(all:find("Sanitizer", 1, true), all:match("[^\n]*Sanitizer[^\n]*"))
    assert.is_nil(all:find("runtime error:", 1, true), all:match("[^\n]*runtime error:[^\n]*"))
  end)
end)

describe("bad keys", function()
  local c
  after_each(function()
    if c then c:cleanup() end
    c = nil
  end)

  it("a bad keyring file stops the start with a clear error and leaves nothing behind", function()
    c = cluster.new { n = 1, cluster = "keys" }
    local function try(name, content, mode, extra)
      local path = c.dir .. "/" .. name
      cluster.write(path, content)
      assert(uv.fs_chmod(path, mode or 384))
      local data = c.dir .. "/data-" .. name
      local args = { "--name", c.names[1], "--keyring-file", path, "--data", data }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      args[#args + 1] = c.topology
      local code, out, err = proc.run(proc.bin, args)
      assert.equal(2, code, out .. err)
      assert.is_nil(uv.fs_stat(data), name .. " left a data directory")
      return err
    end
    assert.matches("readable by group or others.*chmod 600", try("readable", "abcdefghijklmnopqrst\n", 416))
    assert.matches("is empty", try("empty", ""))
    assert.matches("is empty", try("blank", "\n\n  \n"))
    assert.matches("line 1: the key is 5 bytes long: a key needs at least 16", try("short", "short\n"))
    assert.matches("line 2: the same key as an earlier line", try("dup", "abcdefghijklmnopqrst\nabcdefghijklmnopqrst\n"))
    assert.matches("is 10485760 bytes: at most 65536", try("huge", ("k"):rep(10 * 1024 * 1024)))
    assert.matches("either %-%-keyring%-file or %-%-cookie", try("both", "abcdefghijklmnopqrst\n", nil, { "--cookie", "x" }))
  end)

  it("refused admin requests change nothing, and removing the primary says why", function()
    local K = cluster.new_key()
    c = cluster.new { n = 1, cookie = K, cluster = "keys" }
    c:start(1)
    assert(c:wait_master(10000))
    local st, before = c:http(1, "GET", "/_keys?local")
    assert.equal(200, st)
    local fp = before.keys[1].fingerprint
    local cases = {
      { "/_keys/install", '{"key":"short"}', "at least 16" },
      { "/_keys/install", '{"key":"abcdefghijklmnopq","extra":1}', 'unknown member "extra"' },
      { "/_keys/install", 'not json', "not JSON" },
      { "/_keys/install", '', "JSON object" },
      { "/_keys/install", '{"key":"abcdefghijklmnopq","key":"abcdefghijklmnopr"}', "not JSON" },
      { "/_keys/use", '{"fingerprint":"0123456789abcdef"}', "no key with fingerprint 0123456789abcdef" },
      { "/_keys/use", '{"fingerprint":"XYZ"}', "16 lowercase hex digits" },
      { "/_keys/remove", '{"fingerprint":"' .. fp .. '"}', "is the primary key of" },
      { "/_keys/remove", '{"fingerprnt":"' .. fp .. '"}', 'unknown member "fingerprnt"' },
    }
    for _, case in ipairs(cases) do
      local code, j, raw = c:http(1, "POST", case[1], case[2])
      assert.equal(400, code, raw)
      local msg = j.error or (j.results and j.results[1] and j.results[1].error) or raw
      assert.truthy(msg:find(case[3], 1, true), case[2] .. " -> " .. tostring(raw))
    end
    local _, after = c:http(1, "GET", "/_keys?local")
    assert.equal(1, #after.keys)
    assert.equal(fp, after.keys[1].fingerprint)
    assert.is_nil(uv.fs_stat(c.dir .. "/data1/keyring"), "a refused request wrote the keyring")
  end)
end)
