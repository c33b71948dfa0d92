/* Parsing the bodies of POST /_keys/install|use|remove (see keys_request.h). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "admin/keys_request.h"
#include "node/keys.h"

int cl_keys_request_parse(int op, const char *body, size_t len, uint8_t *arg, size_t *arglen, char *err,
                          size_t errlen) {
  *arglen = 0;
  const char *want = op == CL_KEYS_INSTALL ? "key" : "fingerprint";
  if (!body || len == 0) {
    snprintf(err, errlen, "the body must be a JSON object {\"%s\": \"...\"}", want);
    return -1;
  }
  json_error_t je;
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!j) {
    snprintf(err, errlen, "the body is not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    return -1;
  }
  int rc = -1;
  const char *k;
  json_t *v;
  if (!json_is_object(j)) {
    snprintf(err, errlen, "the body must be a JSON object {\"%s\": \"...\"}", want);
    goto out;
  }
  json_object_foreach(j, k, v) {
    if (strcmp(k, want) != 0) {
      snprintf(err, errlen, "unknown member \"%.40s\": the body is {\"%s\": \"...\"}", k, want);
      goto out;
    }
  }
  v = json_object_get(j, want);
  if (!json_is_string(v)) {
    snprintf(err, errlen, "\"%s\" is missing or not a string", want);
    goto out;
  }
  const char *s = json_string_value(v);
  size_t l = json_string_length(v);
  if (op == CL_KEYS_INSTALL) {
    char why[200];
    if (cl_keyring_check_key((const uint8_t *)s, l, why, sizeof why)) {
      snprintf(err, errlen, "\"key\": %s", why);
      goto out;
    }
  } else if (l != CL_FP_LEN || !cl_keyring_fp_valid(s)) {
    snprintf(err, errlen, "\"fingerprint\" must be 16 lowercase hex digits, as `clusterlua keys list` shows");
    goto out;
  }
  memcpy(arg, s, l);
  *arglen = l;
  rc = 0;
out:
  json_decref(j);
  return rc;
}
