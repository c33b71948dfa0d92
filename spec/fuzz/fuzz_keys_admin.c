/* libFuzzer target: the bodies of the keys admin routes (runtime/admin/keys_request.c),
 * POST /_keys/install, /_keys/use and /_keys/remove. Input: [route byte][body].
 * Properties: a refusal always says why and hands back nothing; an accepted install
 * gives a key that passes the installed-key rules, an accepted use/remove gives a
 * well-formed fingerprint. A request is only ever acted on after this returns 0, so a
 * refused body changes nothing. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "admin/keys_request.h"
#include "node/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const int ops[] = {CL_KEYS_INSTALL, CL_KEYS_USE, CL_KEYS_REMOVE};
  int op = ops[data[0] % 3];
  uint8_t arg[CL_KEY_MAX];
  size_t arglen = 12345;
  char err[300] = "";
  int r = cl_keys_request_parse(op, (const char *)data + 1, size - 1, arg, &arglen, err, sizeof err);
  if (r != 0) {
    assert(err[0] != 0 && arglen == 0);
    return 0;
  }
  char why[200];
  if (op == CL_KEYS_INSTALL) {
    assert(cl_keyring_check_key(arg, arglen, why, sizeof why) == 0);
  } else {
    char fp[CL_FP_LEN + 1];
    assert(arglen == CL_FP_LEN);
    memcpy(fp, arg, CL_FP_LEN);
    fp[CL_FP_LEN] = 0;
    assert(cl_keyring_fp_valid(fp));
  }
  return 0;
}
