/* clusterlua.c.crypto: the few primitives Lua code needs to authenticate its own
 * traffic (gossip announcements) with the cluster cookie, through libsodium.
 *
 *   derive_key(cookie, purpose) -> 32-byte key, the same as the transport's
 *                                  cl_transport_derive_key (so C and Lua agree)
 *   hmac_sha256(key, data)      -> 32-byte MAC
 *   verify(key, data, mac)      -> boolean, compared in constant time
 *   random(n)                   -> n random bytes (1..1024)
 *   fingerprint(key)            -> the key's 16-hex-digit fingerprint (Argon2id: tens of
 *                                  ms; for tools and benchmarks, never on a hot path)
 *   keyring_parse(text, strict) -> { key1, key2, ... } (primary first) | nil, message:
 *                                  the keyring file format, by the C parser (keyring.h)
 *
 * Keys are Lua strings: they cannot be wiped, so callers should derive them once
 * and keep them, never the cookie, and never log either. */
#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>

#include "lua/lua_modules.h"
#include "transport/keyring.h"
#include "transport/transport.h"

static int l_fingerprint(lua_State *L) {
  size_t len;
  const char *key = luaL_checklstring(L, 1, &len);
  if (len == 0) return luaL_argerror(L, 1, "empty key");
  char fp[CL_FP_LEN + 1];
  if (cl_keyring_fingerprint((const uint8_t *)key, len, fp)) return luaL_error(L, "crypto_pwhash failed (out of memory?)");
  lua_pushstring(L, fp);
  return 1;
}

static int l_keyring_parse(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int strict = lua_toboolean(L, 2);
  cl_keyring_list l;
  char err[200];
  if (cl_keyring_parse(text, len, strict, &l, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_createtable(L, (int)l.n, 0);
  for (size_t i = 0; i < l.n; i++) {
    lua_pushlstring(L, l.key[i].p, l.key[i].len);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static int l_derive_key(lua_State *L) {
  size_t clen;
  const char *cookie = luaL_checklstring(L, 1, &clen);
  size_t plen;
  const char *purpose = luaL_checklstring(L, 2, &plen);
  if (clen == 0) return luaL_argerror(L, 1, "empty cookie");
  /* the transport formats the label into a 128-byte buffer: refuse what it would cut */
  if (plen == 0 || plen > 100) return luaL_argerror(L, 2, "purpose of 1..100 bytes expected");
  uint8_t out[32];
  cl_transport_derive_key((const uint8_t *)cookie, clen, purpose, out);
  lua_pushlstring(L, (const char *)out, sizeof out);
  sodium_memzero(out, sizeof out);
  return 1;
}

static void mac_of(lua_State *L, uint8_t out[32]) {
  size_t klen, dlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *data = luaL_checklstring(L, 2, &dlen);
  if (klen == 0) luaL_argerror(L, 1, "empty key");
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const uint8_t *)key, klen);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)data, dlen);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

static int l_hmac_sha256(lua_State *L) {
  uint8_t out[32];
  mac_of(L, out);
  lua_pushlstring(L, (const char *)out, sizeof out);
  return 1;
}

static int l_verify(lua_State *L) {
  size_t mlen;
  const char *mac = luaL_checklstring(L, 3, &mlen);
  uint8_t out[32];
  mac_of(L, out);
  int ok = mlen == sizeof out && sodium_memcmp(out, mac, sizeof out) == 0;
  sodium_memzero(out, sizeof out);
  lua_pushboolean(L, ok);
  return 1;
}

static int l_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1 || n > 1024) return luaL_argerror(L, 1, "1..1024 bytes expected");
  uint8_t buf[1024];
  randombytes_buf(buf, (size_t)n);
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}

/* base64url without padding: printable, and safe on a command line and in a file */
static int l_base64url(lua_State *L) {
  size_t n;
  const char *bin = luaL_checklstring(L, 1, &n);
  if (n > 4096) return luaL_argerror(L, 1, "at most 4096 bytes");
  char out[sodium_base64_ENCODED_LEN(4096, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(out, sizeof out, (const unsigned char *)bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  lua_pushstring(L, out);
  sodium_memzero(out, sizeof out);
  return 1;
}

int luaopen_clusterlua_c_crypto(lua_State *L) {
  /* idempotent and thread-safe; the module may be loaded before anything else ran it */
  if (sodium_init() < 0) return luaL_error(L, "libsodium failed to initialise");
  static const luaL_Reg fns[] = {
      {"derive_key", l_derive_key}, {"keyring_parse", l_keyring_parse}, {"fingerprint", l_fingerprint},
      {"hmac_sha256", l_hmac_sha256},
      {"verify", l_verify},
      {"random", l_random},
      {"base64url", l_base64url},
      {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  return 1;
}
