/* libFuzzer target: the keyring file parser (runtime/transport/keyring.c), in both its
 * strict (--keyring-file) and lenient (DATA/keyring) modes. Input: [mode byte][file].
 * Properties: a refusal always says why; an accepted file gives 1..16 keys, each within
 * the file, none empty, none with a NUL or a line break, no two alike, and in strict
 * mode each at least 16 bytes with no whitespace at either end. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "transport/keyring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int strict = data[0] & 1;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  cl_keyring_list l;
  char err[200] = "";
  if (cl_keyring_parse(text, len, strict, &l, err, sizeof err) != 0) {
    assert(err[0] != 0);
    return 0;
  }
  assert(l.n >= 1 && l.n <= CL_KEYRING_MAX);
  for (size_t i = 0; i < l.n; i++) {
    const char *k = l.key[i].p;
    size_t n = l.key[i].len;
    assert(n >= 1 && n <= CL_KEY_MAX);
    assert(k >= text && k + n <= text + len);
    assert(!memchr(k, 0, n) && !memchr(k, '\n', n) && !memchr(k, '\r', n));
    if (strict) {
      assert(n >= CL_KEY_MIN);
      assert(k[0] != ' ' && k[0] != '\t' && k[n - 1] != ' ' && k[n - 1] != '\t');
    }
    for (size_t j = 0; j < i; j++) assert(!(l.key[j].len == n && memcmp(l.key[j].p, k, n) == 0));
  }
  return 0;
}
