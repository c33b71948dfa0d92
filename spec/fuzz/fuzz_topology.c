/* libFuzzer target: the topology validator (lua/clusterlua/topology.lua, with the
 * built-in strategies' validate functions), run inside an embedded LuaJIT with the JIT
 * off and a line hook feeding Lua line-pair coverage to libFuzzer as extra counters.
 *
 * The input bytes are read as a recipe for a nested Lua table (keys and values drawn
 * from the topology vocabulary, odd numbers, raw strings) that goes to
 * topology.validate. Property: validation either returns a topology or raises a
 * {topology_error = "FILE: PATH: what"} error; never a Lua runtime error, and no
 * strategy validator fails with one either ("attempt to ...", "bad argument"). */

#define FUZZ_NAME "fuzz_topology"

static const char DRIVER[] =
    "local topology = require 'clusterlua.topology'\n"
    "loadfile = function() return nil, 'no files while fuzzing' end\n"
    "local KEYS = { 'cluster', 'topologies', 'election', 'nodes', 'hooks', 'transport', 'strategy', 'config',\n"
    "  'hosts', 'initial_master_nodes', 'heartbeat_ms', 'election_delay_ms', 'check_timeout_ms',\n"
    "  'lua_stepdown_ms', 'max_exclusions', 'max_nodes', 'max_voting_nodes', 'encrypt', 'max_frame', 'timeout_ms', 'mesh', 'send_queue_max',\n"
    "  'roles', 'port', 'group', 'ttl', 'interface', 'broadcast', 'interval', 'multicast_loop', 'expire',\n"
    "  'max_skew', 'file', 'path', 'name', 'query', 'poll_ms', 'interval_ms', 'resolver', 'servers', 'edge',\n"
    "  'node1@127.0.0.1:4370', 1, 2, 3, 0, -1, 1.5 }\n"
    "local STRS = { 'static', 'gossip', 'dns', 'dns_srv', 'hosts_file', 'node1@127.0.0.1:4370', 'node2',\n"
    "  'a@[::1]:99999', 'b@[::1]', 'c@h:0', 'd@:1', '@x', 'n@', '239.1.2.3', '255.255.255.255', '127.0.0.1',\n"
    "  '', 'x.lua', 'edge-1', 'master', '_srv._tcp.example', 'example.org', '1.2.3.4:53', 'bad cluster' }\n"
    "local NUMS = { 0, 1, -1, 0.5, 1e300, -1e300, 1/0, -1/0, 0/0, 2^53, 2^63, 65535, 65536, 1024,\n"
    "  1073741824, 1073741825, 100, 10, 2, 9, 1000, 2^31, -2^31 }\n"
    "return function(data)\n"
    "  local pos = 0\n"
    "  local function byte() pos = pos + 1 return data:byte(pos) or 0 end\n"
    "  local function pick(t) return t[byte() % #t + 1] end\n"
    "  local value\n"
    "  function value(depth)\n"
    "    local b = byte()\n"
    "    local kind = b % 9\n"
    "    if kind == 0 then return nil\n"
    "    elseif kind == 1 then return b >= 128\n"
    "    elseif kind == 2 then return pick(NUMS)\n"
    "    elseif kind == 3 then return (byte() * 256 + byte()) - 1000\n"
    "    elseif kind == 4 then return pick(STRS)\n"
    "    elseif kind == 5 then local n = byte() % 24 local s = data:sub(pos + 1, pos + n) pos = pos + n return s\n"
    "    elseif depth > 5 then return {}\n"
    "    else\n"
    "      local t, n = {}, byte() % 7\n"
    "      for i = 1, n do\n"
    "        local kb = byte()\n"
    "        local k = kb < 200 and KEYS[kb % #KEYS + 1] or i\n"
    "        t[k] = value(depth + 1)\n"
    "      end\n"
    "      return t\n"
    "    end\n"
    "  end\n"
    "  local t = value(0)\n"
    "  local ok, res = pcall(topology.validate, '/nonexistent-fuzz/topology.lua', t)\n"
    "  if ok then\n"
    "    assert(type(res) == 'table' and type(res.topologies) == 'table', 'validate returned ' .. tostring(res))\n"
    "    return 1\n"
    "  end\n"
    "  if type(res) ~= 'table' or type(res.topology_error) ~= 'string' then\n"
    "    error('validator raised a runtime error: ' .. tostring(res), 0)\n"
    "  end\n"
    "  local e = res.topology_error\n"
    "  if e:find('attempt to', 1, true) or e:find('bad argument', 1, true) then\n"
    "    error('a validator failed inside: ' .. e, 0)\n"
    "  end\n"
    "  return 0\n"
    "end\n";

#include "lua_fuzz_harness.h"
