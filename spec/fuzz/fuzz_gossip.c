/* libFuzzer target: the gossip strategy's packet decoder (lua/clusterlua/strategy/
 * gossip.lua), run inside an embedded LuaJIT with the interpreter only (JIT off) and a
 * line hook that feeds Lua line-pair coverage to libFuzzer as extra counters, so the
 * fuzzer is guided by the Lua code it cannot instrument.
 *
 * Input: [mode][bytes...]. Mode even: bytes are the packet. Mode odd: bytes are a
 * packet body and the harness appends its correct HMAC (key "k"*32), so mutations also
 * reach what is parsed after the MAC check. Properties: decode never raises; it returns
 * a message or one of the documented reasons; a decoded packet re-encodes to itself. */

#define FUZZ_NAME "fuzz_gossip"

static const char DRIVER[] =
    "local crypto = require 'clusterlua.c.crypto'\n"
    "local g = require 'clusterlua.strategy.gossip'\n"
    "local key = string.rep('k', 32)\n"
    "local REASONS = { malformed = true, version = true, wrong_cluster = true, bad_mac = true }\n"
    "return function(data)\n"
    "  local mode = data:byte(1) or 0\n"
    "  local pkt = data:sub(2)\n"
    "  if mode % 2 == 1 then pkt = pkt .. crypto.hmac_sha256(key, pkt) end\n"
    "  local msg, why = g.decode(key, 'fuzz', pkt)\n"
    "  if msg then\n"
    "    assert(type(msg.name) == 'string' and type(msg.ts) == 'number' and #msg.nonce == g.NONCE_LEN, 'bad message')\n"
    "    if msg.ts < 2^53 then\n"
    "      assert(g.encode(key, 'fuzz', msg.name, msg.ts, msg.nonce) == pkt, 'decoded packet does not re-encode to itself')\n"
    "    end\n"
    "    return 1\n"
    "  end\n"
    "  assert(REASONS[why], 'undocumented reason: ' .. tostring(why))\n"
    "  return 0\n"
    "end\n";

#include "lua_fuzz_harness.h"
