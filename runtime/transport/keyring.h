/* The cluster keyring: one primary key (used for what this node starts: handshakes,
 * gossip announcements) and the others it accepts. Parsing and fingerprints only; no
 * I/O, so the parser can be fuzzed. Keys are never logged: they are named by their
 * fingerprint. */
#ifndef CL_KEYRING_H
#define CL_KEYRING_H
#include <stddef.h>
#include <stdint.h>

#define CL_KEYRING_MAX 16          /* keys a node holds at once */
#define CL_KEY_MIN 16              /* bytes: what an operator installs or writes in a file */
#define CL_KEY_MAX 1024            /* bytes */
#define CL_KEYRING_FILE_MAX 65536  /* a keyring file larger than this is refused unread */
#define CL_FP_LEN 16               /* lowercase hex digits of a fingerprint */

typedef struct {
  size_t n;
  struct {
    const char *p; /* points into the parsed text */
    size_t len;
  } key[CL_KEYRING_MAX];
} cl_keyring_list;

/* Parses a keyring file: one key a line ("\n" or "\r\n"), the first the primary; blank
 * lines are skipped. strict: every key at least CL_KEY_MIN bytes and no whitespace at
 * either end (what an operator writes); not strict: what the node itself carried over
 * from --cookie into DATA/keyring, where a short cookie only earns a warning.
 * Refused, with err naming the line: an empty file, a file over CL_KEYRING_FILE_MAX,
 * a NUL byte, a short or long key, a duplicate key, more than CL_KEYRING_MAX keys.
 * Returns 0 or -1. */
int cl_keyring_parse(const char *text, size_t len, int strict, cl_keyring_list *out, char *err,
                     size_t errlen);

/* One key checked the way an installed key is (strict rules above). 0 or -1 with err. */
int cl_keyring_check_key(const uint8_t *key, size_t len, char *err, size_t errlen);

/* The key's fingerprint: the first 8 bytes of Argon2id (libsodium crypto_pwhash) under
 * a fixed salt, opslimit 2 and 8 MiB, as 16 lowercase hex digits. Slow on purpose (tens
 * of milliseconds): a fingerprint is shown on admin pages and in logs, and must be no
 * shortcut to guessing a weak cookie. Thread-safe; call it off the loop. 0 or -1. */
int cl_keyring_fingerprint(const uint8_t *key, size_t len, char out[CL_FP_LEN + 1]);
/* 1 if s is 16 lowercase hex digits. */
int cl_keyring_fp_valid(const char *s);

#endif
