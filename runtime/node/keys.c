/* The node's keyring on the control loop (see keys.h): the keys (the only place a node
 * keeps them), their fingerprints (computed in worker threads, off the loop), the
 * transport's derived copy, the keyring file and Lua's copy. keys_rotate.c applies a
 * change on every member of the cluster. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "node/keys.h"
#include "node/keys_internal.h"
#include "node/node_internal.h"
#include "transport/keyring.h"

/* a fingerprint being computed: for the ring, and for whoever waits on it */
typedef struct {
  uv_work_t w;
  uint64_t gen;
  uint32_t id;
  uint8_t *k;
  size_t len;
  char fp[CL_FP_LEN + 1];
  int rc;
  uint64_t op_id;                          /* a local install waits on it (0: none) */
  char ack_to[CL_NODE_NAME_MAX + 1];       /* a member's install answer waits on it */
  uint64_t ack_id;
  cl_node *n;
} fpjob;

int cl_keys_live(const cl_node *n) { return n->keys.live && n->keys.started && n->t; }
const cl_nkey *cl_keys_at(const cl_node *n, int i) {
  return i >= 0 && (size_t)i < n->keys.n_keys ? &n->keys.keys[i] : NULL;
}
void cl_keys_set_fp_hook(cl_node *n, cl_keys_fp_hook h) { n->keys.hook = h; }

/* ---- the ring ---- */

static cl_nkey *by_id(cl_node_keys *K, uint32_t id) {
  for (size_t i = 0; i < K->n_keys; i++)
    if (K->keys[i].id == id) return &K->keys[i];
  return NULL;
}

int cl_keys_by_fp(const cl_node *n, const char *fp) {
  const cl_node_keys *K = &n->keys;
  for (size_t i = 0; i < K->n_keys; i++)
    if (K->keys[i].fp[0] && strcmp(K->keys[i].fp, fp) == 0) return (int)i;
  return -1;
}

int cl_keys_pending(const cl_node *n) {
  const cl_node_keys *K = &n->keys;
  for (size_t i = 0; i < K->n_keys; i++)
    if (!K->keys[i].fp[0]) return 1;
  return 0;
}

static void fp_list(const cl_node_keys *K, char *out, size_t outlen) {
  size_t w = 0;
  out[0] = 0;
  for (size_t i = 0; i < K->n_keys && w + 1 < outlen; i++) {
    int r = snprintf(out + w, outlen - w, "%s%s", i ? ", " : "", K->keys[i].fp[0] ? K->keys[i].fp : "(pending)");
    if (r < 0) break;
    w += (size_t)r;
  }
}

static void fill_tk(cl_node_keys *K) {
  for (size_t i = 0; i < K->n_keys; i++) {
    K->tk[i].key = K->keys[i].k;
    K->tk[i].len = K->keys[i].len;
    K->tk[i].id = K->keys[i].id;
    K->tk[i].fp = K->keys[i].fp;
  }
}

json_t *cl_keys_brief_json(const cl_node *n) {
  const cl_node_keys *K = &n->keys;
  json_t *a = json_array();
  for (size_t i = 0; i < K->n_keys; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "fp", K->keys[i].fp[0] ? json_string(K->keys[i].fp) : json_null());
    json_object_set_new(o, "primary", json_boolean(i == 0));
    json_array_append_new(a, o);
  }
  return a;
}

static void fp_work(uv_work_t *w) {
  fpjob *j = w->data;
  j->rc = cl_keyring_fingerprint(j->k, j->len, j->fp);
}

static void fp_done(uv_work_t *w, int status) {
  fpjob *j = w->data;
  cl_node *n = j->n;
  cl_node_keys *K = &n->keys;
  if (K->live && j->gen == K->gen) {
    cl_nkey *k = by_id(K, j->id);
    if (status == 0 && j->rc == 0) {
      if (k) {
        memcpy(k->fp, j->fp, sizeof k->fp);
        if (K->started && n->t) cl_transport_key_fingerprint(n->t, j->id, j->fp);
      }
    } else {
      cl_log(CL_LOG_ERROR, "keys", NULL, "cannot compute a key's fingerprint (out of memory?)");
    }
    /* whoever waits on it (keys_rotate.c: an install to fan out, a member's answer) */
    if (K->hook) K->hook(n, j->id, k && k->fp[0] ? k->fp : NULL, j->op_id, j->ack_to[0] ? j->ack_to : NULL, j->ack_id);
  }
  sodium_memzero(j->k, j->len);
  free(j->k);
  free(j);
}

void cl_keys_fp_start(cl_node *n, cl_nkey *k, uint64_t op_id, const char *ack_to, uint64_t ack_id) {
  fpjob *j = calloc(1, sizeof *j);
  if (!j) return;
  j->k = malloc(k->len);
  if (!j->k) {
    free(j);
    return;
  }
  memcpy(j->k, k->k, k->len);
  j->len = k->len;
  j->id = k->id;
  j->gen = n->keys.gen;
  j->n = n;
  j->op_id = op_id;
  if (ack_to) snprintf(j->ack_to, sizeof j->ack_to, "%s", ack_to);
  j->ack_id = ack_id;
  j->w.data = j;
  if (uv_queue_work(&n->c->loop, &j->w, fp_work, fp_done) != 0) {
    sodium_memzero(j->k, j->len);
    free(j->k);
    free(j);
  }
}

/* After every change: the transport, the file, Lua. Returns NULL or why the file could
 * not be written (the change itself stands). */
const char *cl_keys_ring_changed(cl_node *n, char *err, size_t errlen) {
  cl_node_keys *K = &n->keys;
  fill_tk(K);
  char terr[160];
  if (n->t && cl_transport_set_keys(n->t, K->tk, K->n_keys, terr, sizeof terr) != 0)
    cl_log(CL_LOG_ERROR, "keys", NULL, "the transport refused the keyring: %s", terr);
  size_t len = 0;
  for (size_t i = 0; i < K->n_keys; i++) len += K->keys[i].len + 1;
  uint8_t *text = malloc(len ? len : 1);
  const char *why = NULL;
  if (!text) {
    snprintf(err, errlen, "out of memory");
    return err;
  }
  size_t w = 0;
  for (size_t i = 0; i < K->n_keys; i++) {
    memcpy(text + w, K->keys[i].k, K->keys[i].len);
    w += K->keys[i].len;
    text[w++] = '\n';
  }
  char fps[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1];
  fp_list(K, fps, sizeof fps);
  if (K->path[0]) {
    char werr[256];
    if (cl_node_write_atomic(K->path, text, w, werr, sizeof werr) != 0) {
      snprintf(err, errlen, "the keyring changed but could not be written: %s", werr);
      cl_log(CL_LOG_ERROR, "keys", NULL, "%s", err);
      why = err;
    } else {
      cl_log(CL_LOG_INFO, "keys", NULL, "keyring changed: %zu key(s), primary first: %s; written to %s", K->n_keys,
             fps, K->path);
    }
  } else {
    cl_log(CL_LOG_INFO, "keys", NULL, "keyring changed: %zu key(s), primary first: %s (kept in memory only)",
           K->n_keys, fps);
  }
  /* Lua derives its strategies' keys (gossip) from the ring */
  cl_node_emit(n, CL_EVT_NODE_KEYRING, NULL, text, w, 0, 0, CL_Q_FORCE);
  sodium_memzero(text, w);
  free(text);
  return why;
}

/* 0 and *added; or -1 with err. */
int cl_keys_install(cl_node *n, const uint8_t *k, size_t len, cl_nkey **out, int *added, char *err, size_t errlen) {
  cl_node_keys *K = &n->keys;
  *added = 0;
  char why[200];
  if (cl_keyring_check_key(k, len, why, sizeof why)) {
    snprintf(err, errlen, "%s", why);
    return -1;
  }
  for (size_t i = 0; i < K->n_keys; i++)
    if (K->keys[i].len == len && sodium_memcmp(K->keys[i].k, k, len) == 0) {
      *out = &K->keys[i];
      return 0; /* installed already: nothing to do */
    }
  if (K->n_keys == CL_KEYRING_MAX) {
    snprintf(err, errlen, "the keyring is full (%d keys): remove one first", CL_KEYRING_MAX);
    return -1;
  }
  cl_nkey *nk = &K->keys[K->n_keys];
  nk->k = malloc(len);
  if (!nk->k) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memcpy(nk->k, k, len);
  nk->len = len;
  nk->id = ++K->next_id;
  nk->fp[0] = 0;
  K->n_keys++;
  *out = nk;
  *added = 1;
  return 0;
}

static int find_fp(const cl_node *n, const char *fp, char *err, size_t errlen) {
  const cl_node_keys *K = &n->keys;
  if (!cl_keyring_fp_valid(fp)) {
    snprintf(err, errlen, "\"%.40s\" is not a fingerprint (16 lowercase hex digits, as `clusterlua keys list` shows)", fp);
    return -1;
  }
  int i = cl_keys_by_fp(n, fp);
  if (i < 0) {
    char fps[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1];
    fp_list(K, fps, sizeof fps);
    snprintf(err, errlen, "no key with fingerprint %s on %s (it holds %s)%s", fp, n->cfg->name, fps,
             cl_keys_pending(n) ? "; some fingerprints are still being computed: retry in a moment" : "");
    return -1;
  }
  return i;
}

int cl_keys_use(cl_node *n, const char *fp, char *err, size_t errlen) {
  cl_node_keys *K = &n->keys;
  int i = find_fp(n, fp, err, errlen);
  if (i < 0) return -1;
  if (i == 0) return 0;
  cl_nkey k = K->keys[i];
  memmove(&K->keys[1], &K->keys[0], (size_t)i * sizeof k);
  K->keys[0] = k;
  return 1;
}

int cl_keys_remove(cl_node *n, const char *fp, char *err, size_t errlen) {
  cl_node_keys *K = &n->keys;
  if (cl_keyring_fp_valid(fp) && cl_keys_by_fp(n, fp) < 0) return 0; /* gone already: nothing to do */
  int i = find_fp(n, fp, err, errlen);
  if (i < 0) return -1;
  if (i == 0) {
    snprintf(err, errlen,
             "%s is the primary key of %s: it signs everything this node starts; make another key primary "
             "first (`clusterlua keys use FINGERPRINT`)",
             fp, n->cfg->name);
    return -1;
  }
  sodium_memzero(K->keys[i].k, K->keys[i].len);
  free(K->keys[i].k);
  memmove(&K->keys[i], &K->keys[i + 1], (K->n_keys - (size_t)i - 1) * sizeof(cl_nkey));
  K->n_keys--;
  memset(&K->keys[K->n_keys], 0, sizeof(cl_nkey));
  return 1;
}

int cl_node_keys_load(cl_node *node, cl_node_config *cfg, const cl_transport_key **keys, size_t *n) {
  cl_node_keys *K = &node->keys;
  cl_node_keys_stop(node);
  K->gen++;
  K->next_id = 0;
  snprintf(K->path, sizeof K->path, "%s", cfg->keyring_path ? cfg->keyring_path : "");
  if (cfg->keyring && cfg->keyring_len) {
    cl_keyring_list l;
    char err[200];
    if (cl_keyring_parse(cfg->keyring, cfg->keyring_len, 0, &l, err, sizeof err)) {
      snprintf(cfg->err, sizeof cfg->err, "EINVAL: keyring: %s", err);
      return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
      K->keys[i].k = malloc(l.key[i].len);
      if (!K->keys[i].k) {
        snprintf(cfg->err, sizeof cfg->err, "ENOMEM: out of memory");
        cl_node_keys_stop(node);
        return -1;
      }
      memcpy(K->keys[i].k, l.key[i].p, l.key[i].len);
      K->keys[i].len = l.key[i].len;
      K->keys[i].id = ++K->next_id;
      K->n_keys++;
    }
  } else if (cfg->cookie && cfg->cookie_len) {
    K->keys[0].k = malloc(cfg->cookie_len);
    if (!K->keys[0].k) {
      snprintf(cfg->err, sizeof cfg->err, "ENOMEM: out of memory");
      return -1;
    }
    memcpy(K->keys[0].k, cfg->cookie, cfg->cookie_len);
    K->keys[0].len = cfg->cookie_len;
    K->keys[0].id = ++K->next_id;
    K->n_keys = 1;
  } else {
    snprintf(cfg->err, sizeof cfg->err, "EINVAL: a cookie or a keyring is required");
    return -1;
  }
  K->live = 1;
  fill_tk(K);
  *keys = K->tk;
  *n = K->n_keys;
  return 0;
}

void cl_keys_fp_start_all(cl_node *n) {
  cl_node_keys *K = &n->keys;
  if (K->fp_started) return;
  K->fp_started = 1;
  for (size_t i = 0; i < K->n_keys; i++)
    if (!K->keys[i].fp[0]) cl_keys_fp_start(n, &K->keys[i], 0, NULL, 0);
}

void cl_node_keys_housekeep(cl_node *n, uint64_t now, uint64_t still_ms) {
  cl_node_keys *K = &n->keys;
  if (K->started && !K->fp_started && cl_keys_fp_due(now - K->fp_since_ms, still_ms)) cl_keys_fp_start_all(n);
}

void cl_node_keys_started(cl_node *n) {
  cl_node_keys *K = &n->keys;
  K->started = 1;
  K->fp_started = 0;
  K->fp_since_ms = uv_now(&n->c->loop);
}

void cl_node_keys_stop(cl_node *n) {
  cl_node_keys *K = &n->keys;
  K->live = 0;
  K->gen++;
  for (size_t i = 0; i < K->n_keys; i++) {
    if (K->keys[i].k) sodium_memzero(K->keys[i].k, K->keys[i].len);
    free(K->keys[i].k);
  }
  memset(K->keys, 0, sizeof K->keys);
  memset(K->tk, 0, sizeof K->tk);
  K->n_keys = 0;
}

json_t *cl_node_keys_json(cl_node *n) {
  json_t *a = json_array();
  if (!n->t) return a;
  cl_transport_key_stat st[CL_KEYRING_MAX];
  size_t k = cl_transport_key_stats(n->t, st, CL_KEYRING_MAX);
  for (size_t i = 0; i < k && i < CL_KEYRING_MAX; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "fingerprint", st[i].fp[0] ? json_string(st[i].fp) : json_null());
    json_object_set_new(o, "primary", json_boolean(st[i].primary));
    json_object_set_new(o, "handshakes", json_integer((json_int_t)st[i].handshakes));
    json_object_set_new(o, "auth_failures", json_integer((json_int_t)st[i].auth_failures));
    json_object_set_new(o, "connections", json_integer((json_int_t)st[i].connections));
    json_array_append_new(a, o);
  }
  return a;
}
