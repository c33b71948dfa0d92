-- Seeded mutation fuzzing of the Lua decoders that face the network or the user, inside
-- `make test` (the libFuzzer targets spec/fuzz/fuzz_gossip.c and fuzz_topology.c run the
-- same properties coverage-guided under `make fuzz`). RELI_FUZZ_CASES scales it.
local gossip = require "clusterlua.strategy.gossip"
local topology = require "clusterlua.topology"
local crypto = require "clusterlua.c.crypto"
local lib = require "reliability.lib"

local CASES = tonumber(os.getenv "RELI_FUZZ_CASES" or "") or 20000
local REASONS = { malformed = true, version = true, wrong_cluster = true, bad_mac = true }

local function mutate(s)
  local r = math.random(6)
  local pos = math.random(0, #s)
  if r == 1 and #s > 0 then -- flip a byte
    local i = math.random(#s)
    return s:sub(1, i - 1) .. string.char(math.random(0, 255)) .. s:sub(i + 1)
  elseif r == 2 then return s:sub(1, pos) -- truncate
  elseif r == 3 then return s:sub(1, pos) .. string.char(math.random(0, 255)) .. s:sub(pos + 1) -- insert
  elseif r == 4 then return s:sub(1, pos) .. s:sub(pos + 2) -- delete
  elseif r == 5 then return s .. s:sub(1, math.random(0, 40)) -- extend
  else -- a length byte set to something else
    if #s < 3 then return s end
    return s:sub(1, 1) .. string.char(math.random(0, 255)) .. s:sub(3)
  end
end

describe("seeded fuzzing of Lua decoders", function()
  it(("gossip.decode: %d mutated packets, with and without a valid MAC"):format(CASES), function()
    math.randomseed(lib.seed)
    local key = string.rep("k", 32)
    local seeds = {}
    for i, n in ipairs { "node1@127.0.0.1:4371", "a@[::1]:80", "e.x@host", "n@h:65535" } do
      seeds[i] = gossip.encode(key, "fuzz", n, 1700000000000 + i, crypto.random(8))
    end
    local decoded, reasons = 0, {}
    for _ = 1, CASES do
      local pkt = seeds[math.random(#seeds)]
      for _ = 1, math.random(1, 4) do pkt = mutate(pkt) end
      if math.random() < 0.5 and #pkt > 32 then
        local body = pkt:sub(1, -33)
        pkt = body .. crypto.hmac_sha256(key, body)
      end
      local ok, msg, why = pcall(gossip.decode, key, "fuzz", pkt)
      assert.is_true(ok, ("decode raised on %q (seed %d): %s"):format(pkt, lib.seed, tostring(msg)))
      if msg then
        decoded = decoded + 1
        -- timestamps past 2^53 do not survive a Lua number
        if msg.ts < 2 ^ 53 then assert.equal(pkt, gossip.encode(key, "fuzz", msg.name, msg.ts, msg.nonce)) end
      else
        assert.is_true(REASONS[why] == true, "undocumented reason " .. tostring(why))
        reasons[why] = (reasons[why] or 0) + 1
      end
    end
    io.stdout:write(("fuzz gossip: %d cases, %d decoded, malformed %d, version %d, wrong_cluster %d, bad_mac %d\n")
      :format(CASES, decoded, reasons.malformed or 0, reasons.version or 0, reasons.wrong_cluster or 0,
        reasons.bad_mac or 0))
  end)

  it(("topology.validate: %d random topology tables"):format(math.floor(CASES / 4)), function()
    math.randomseed(lib.seed)
    local KEYS = { "cluster", "topologies", "election", "nodes", "hooks", "transport", "strategy", "config",
      "hosts", "initial_master_nodes", "heartbeat_ms", "check_timeout_ms", "max_exclusions", "encrypt",
      "max_frame", "timeout_ms", "mesh", "roles", "port", "group", "ttl", "interface", "broadcast", "interval",
      "expire", "max_skew", "file", "name", "query", "edge", 1, 2, 0, -1 }
    local STRS = { "static", "gossip", "dns", "dns_srv", "hosts_file", "node1@127.0.0.1:4370", "node2",
      "a@[::1]:99999", "c@h:0", "@x", "239.1.2.3", "255.255.255.255", "127.0.0.1", "", "edge-1", "bad cluster" }
    local NUMS = { 0, 1, -1, 0.5, 1e300, 1 / 0, -1 / 0, 0 / 0, 2 ^ 53, 65535, 65536, 1024, 1073741825, 10, 2 }
    local function value(depth)
      local kind = math.random(0, 8)
      if kind == 0 then return nil
      elseif kind == 1 then return math.random() < 0.5
      elseif kind == 2 then return NUMS[math.random(#NUMS)]
      elseif kind == 3 then return math.random(-1000, 70000)
      elseif kind == 4 then return STRS[math.random(#STRS)]
      elseif kind == 5 then return crypto.random(math.random(1, 16))
      elseif depth > 4 then return {}
      end
      local t = {}
      for i = 1, math.random(0, 6) do
        local k = math.random() < 0.85 and KEYS[math.random(#KEYS)] or i
        t[k] = value(depth + 1)
      end
      return t
    end
    local real_loadfile = loadfile
    loadfile = function() return nil, "no files while fuzzing" end
    local valid, refused = 0, 0
    local ok_all, err_all = pcall(function()
      for _ = 1, math.floor(CASES / 4) do
        local t = value(0)
        local ok, res = pcall(topology.validate, "/nonexistent-fuzz/topology.lua", t)
        if ok then
          valid = valid + 1
        else
          assert(type(res) == "table" and type(res.topology_error) == "string",
            "validator raised a runtime error: " .. tostring(res))
          assert(not res.topology_error:find("attempt to", 1, true), res.topology_error)
          refused = refused + 1
        end
      end
    end)
    loadfile = real_loadfile
    assert.is_true(ok_all, tostring(err_all) .. " (seed " .. lib.seed .. ")")
    io.stdout:write(("fuzz topology: %d tables, %d valid, %d refused with a topology error\n"):format(
      math.floor(CASES / 4), valid, refused))
  end)
end)
