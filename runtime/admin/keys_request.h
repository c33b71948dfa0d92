/* The bodies of the keys routes (keys_request.c): pure, so they can be fuzzed. */
#ifndef CL_KEYS_REQUEST_H
#define CL_KEYS_REQUEST_H
#include <stddef.h>
#include <stdint.h>

#include "transport/keyring.h"

/* op: CL_KEYS_INSTALL, _USE or _REMOVE (node/keys.h). body: JSON
 *   install {"key": "..."}            the key as a JSON string (>= 16 bytes)
 *   use     {"fingerprint": "..."}    16 lowercase hex digits
 *   remove  {"fingerprint": "..."}
 * Unknown members are refused (a misspelt "fingerprnt" must not pass for nothing).
 * On success arg holds the key or the fingerprint (arglen bytes, not NUL-terminated;
 * arg must hold CL_KEY_MAX bytes) and 0 is returned; else -1 with err. */
int cl_keys_request_parse(int op, const char *body, size_t len, uint8_t *arg, size_t *arglen, char *err,
                          size_t errlen);

#endif
