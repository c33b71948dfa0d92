/* Keyring file parsing and key fingerprints (see keyring.h). */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "transport/keyring.h"

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

int cl_keyring_check_key(const uint8_t *key, size_t len, char *err, size_t errlen) {
  if (len < CL_KEY_MIN) {
    snprintf(err, errlen, "the key is %zu bytes long: a key needs at least %d (`clusterlua cookie` makes one)",
             len, CL_KEY_MIN);
    return -1;
  }
  if (len > CL_KEY_MAX) {
    snprintf(err, errlen, "the key is %zu bytes long: at most %d", len, CL_KEY_MAX);
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    if (key[i] == 0 || key[i] == '\n' || key[i] == '\r') {
      snprintf(err, errlen, "the key holds a NUL or line-break byte at offset %zu", i);
      return -1;
    }
  }
  if (is_space(key[0]) || is_space(key[len - 1])) {
    snprintf(err, errlen, "the key begins or ends with whitespace (a copy-and-paste slip?)");
    return -1;
  }
  return 0;
}

int cl_keyring_parse(const char *text, size_t len, int strict, cl_keyring_list *out, char *err,
                     size_t errlen) {
  out->n = 0;
  if (len > CL_KEYRING_FILE_MAX) {
    snprintf(err, errlen, "the keyring is %zu bytes: at most %d (%d keys of at most %d bytes)", len,
             CL_KEYRING_FILE_MAX, CL_KEYRING_MAX, CL_KEY_MAX);
    return -1;
  }
  size_t i = 0, line = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && text[j] != '\n') j++;
    line++;
    size_t l = j - i;
    if (l && text[i + l - 1] == '\r') l--;
    const char *k = text + i;
    i = j + 1;
    if (memchr(k, 0, l)) {
      snprintf(err, errlen, "line %zu: the key holds a NUL byte", line);
      return -1;
    }
    size_t blank = 0;
    while (blank < l && is_space((unsigned char)k[blank])) blank++;
    if (blank == l) continue; /* blank line */
    if (memchr(k, '\r', l)) {
      snprintf(err, errlen, "line %zu: the key holds a carriage return", line);
      return -1;
    }
    if (strict) {
      char why[160];
      if (cl_keyring_check_key((const uint8_t *)k, l, why, sizeof why)) {
        snprintf(err, errlen, "line %zu: %s", line, why);
        return -1;
      }
    } else if (l > CL_KEY_MAX) {
      snprintf(err, errlen, "line %zu: the key is %zu bytes long: at most %d", line, l, CL_KEY_MAX);
      return -1;
    }
    for (size_t q = 0; q < out->n; q++) {
      if (out->key[q].len == l && memcmp(out->key[q].p, k, l) == 0) {
        snprintf(err, errlen, "line %zu: the same key as an earlier line (each key once)", line);
        return -1;
      }
    }
    if (out->n == CL_KEYRING_MAX) {
      snprintf(err, errlen, "line %zu: more than %d keys", line, CL_KEYRING_MAX);
      return -1;
    }
    out->key[out->n].p = k;
    out->key[out->n].len = l;
    out->n++;
  }
  if (out->n == 0) {
    snprintf(err, errlen, "no key: the keyring is empty (one key a line, the first the primary)");
    return -1;
  }
  return 0;
}

int cl_keyring_fingerprint(const uint8_t *key, size_t len, char out[CL_FP_LEN + 1]) {
  /* 16 bytes (crypto_pwhash_SALTBYTES); the literal's NUL is not used */
  static const char salt[crypto_pwhash_SALTBYTES + 1] = "clusterlua keyfp";
  uint8_t h[16];
  out[0] = 0;
  if (crypto_pwhash(h, sizeof h, (const char *)key, len, (const uint8_t *)salt, 2, 8u << 20, crypto_pwhash_ALG_ARGON2ID13) != 0)
    return -1;
  sodium_bin2hex(out, CL_FP_LEN + 1, h, CL_FP_LEN / 2);
  sodium_memzero(h, sizeof h);
  return 0;
}

int cl_keyring_fp_valid(const char *s) {
  if (!s || strlen(s) != CL_FP_LEN) return 0;
  for (int i = 0; i < CL_FP_LEN; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}
