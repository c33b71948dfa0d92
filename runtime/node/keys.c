/* The node's keyring on the control loop (see keys.h).
 *
 * Rotation across the cluster goes over the cluster's own connections (channel
 * CL_CH_KEYS), not through every node's admin endpoint: the connections are already
 * authenticated and encrypted, every member has them while only some run --admin (and
 * nobody knows the others' admin addresses or tokens), and the answer per node comes
 * back on the same path. An authenticated member may change every node's keyring: it
 * holds a cluster key, which is the same trust as joining. A key travels only inside
 * the AEAD session, so an install is refused when the transport does not encrypt.
 *
 *   request {"t":"q","id":N,"op":"install|use|remove|list","key":base64 | "fp":FP}
 *   answer  {"t":"a","id":N,"ok":bool,"error":"...","keys":[{"fp":FP,"primary":bool}]}
 *
 * A member answers an install only once the new key's fingerprint is computed, so a
 * `use` that follows finds it everywhere. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "node/keys.h"
#include "node/node_internal.h"
#include "transport/keyring.h"

#define OP_WAIT_MS 3000
/* The start-up keys' fingerprints are computed this long after the node starts (or at
 * once when a keys request needs them): tens of ms of CPU and 8 MiB each must not
 * compete with connecting and electing a master (benchmark rows 3 and 6). */
#define FP_DELAY_MS 1000

typedef struct {
  uint8_t *k;
  size_t len;
  uint32_t id;
  char fp[CL_FP_LEN + 1]; /* "" until computed */
} nkey;

typedef struct op {
  struct op *next;
  uint64_t id;
  int kind, local_only, finished, refused_local;
  cl_keys_done done;
  void *ud;
  char fp[CL_FP_LEN + 1];
  uv_timer_t timer;
  json_t *results; /* array of {"node", "ok", "error"?, "keys"?} */
  size_t nodes, waiting;
  char (*targets)[CL_NODE_NAME_MAX + 1];
  int *answered;
  size_t n_targets;
  /* waiting for this node's fingerprints (computed just after start) before it runs */
  int deferred;
  uint8_t arg[CL_KEY_MAX];
  size_t arglen;
} op;

/* a member's request that arrived before our fingerprints were known */
typedef struct pmsg {
  struct pmsg *next;
  char from[CL_NODE_NAME_MAX + 1];
  size_t len;
  uint8_t data[];
} pmsg;

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
} fpjob;

static struct {
  cl_node *n;
  int live;
  uint64_t gen; /* bumped at stop: late workers are ignored */
  nkey keys[CL_KEYRING_MAX];
  size_t n_keys;
  uint32_t next_id;
  char path[4096];
  cl_transport_key tk[CL_KEYRING_MAX];
  op *ops;
  uint64_t next_op;
  uv_timer_t fp_timer;
  int fp_timer_live, fp_started;
  pmsg *held;
  size_t n_held;
} K;

/* ---- the ring ---- */

static nkey *by_id(uint32_t id) {
  for (size_t i = 0; i < K.n_keys; i++)
    if (K.keys[i].id == id) return &K.keys[i];
  return NULL;
}

static int by_fp(const char *fp) {
  for (size_t i = 0; i < K.n_keys; i++)
    if (K.keys[i].fp[0] && strcmp(K.keys[i].fp, fp) == 0) return (int)i;
  return -1;
}

static int pending_fps(void) {
  for (size_t i = 0; i < K.n_keys; i++)
    if (!K.keys[i].fp[0]) return 1;
  return 0;
}

static void fp_list(char *out, size_t outlen) {
  size_t w = 0;
  out[0] = 0;
  for (size_t i = 0; i < K.n_keys && w + 1 < outlen; i++) {
    int r = snprintf(out + w, outlen - w, "%s%s", i ? ", " : "", K.keys[i].fp[0] ? K.keys[i].fp : "(pending)");
    if (r < 0) break;
    w += (size_t)r;
  }
}

static void fill_tk(void) {
  for (size_t i = 0; i < K.n_keys; i++) {
    K.tk[i].key = K.keys[i].k;
    K.tk[i].len = K.keys[i].len;
    K.tk[i].id = K.keys[i].id;
    K.tk[i].fp = K.keys[i].fp;
  }
}

static json_t *ring_json_brief(void) {
  json_t *a = json_array();
  for (size_t i = 0; i < K.n_keys; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "fp", K.keys[i].fp[0] ? json_string(K.keys[i].fp) : json_null());
    json_object_set_new(o, "primary", json_boolean(i == 0));
    json_array_append_new(a, o);
  }
  return a;
}

static void fp_work(uv_work_t *w) {
  fpjob *j = w->data;
  j->rc = cl_keyring_fingerprint(j->k, j->len, j->fp);
}

static void op_fan_out(op *o);
static void op_fail_local(op *o, const char *why);
static void send_ack(const char *to, uint64_t id, const char *err);
static void run_deferred(void);

static void fp_done(uv_work_t *w, int status) {
  fpjob *j = w->data;
  if (K.live && j->gen == K.gen) {
    nkey *k = by_id(j->id);
    if (status == 0 && j->rc == 0) {
      if (k) {
        memcpy(k->fp, j->fp, sizeof k->fp);
        if (K.n && K.n->t) cl_transport_key_fingerprint(K.n->t, j->id, j->fp);
      }
    } else {
      cl_log(CL_LOG_ERROR, "keys", NULL, "cannot compute a key's fingerprint (out of memory?)");
    }
    if (j->op_id) {
      for (op *o = K.ops; o; o = o->next)
        if (o->id == j->op_id && !o->finished) {
          if (k && k->fp[0]) {
            memcpy(o->fp, k->fp, sizeof o->fp);
            op_fan_out(o);
          } else {
            op_fail_local(o, "the new key's fingerprint could not be computed");
          }
          break;
        }
    }
    if (j->ack_to[0]) send_ack(j->ack_to, j->ack_id, k && k->fp[0] ? NULL : "the key was removed again before its fingerprint was computed");
    if (!pending_fps()) run_deferred();
  }
  sodium_memzero(j->k, j->len);
  free(j->k);
  free(j);
}

static void fp_start(nkey *k, uint64_t op_id, const char *ack_to, uint64_t ack_id) {
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
  j->gen = K.gen;
  j->op_id = op_id;
  if (ack_to) snprintf(j->ack_to, sizeof j->ack_to, "%s", ack_to);
  j->ack_id = ack_id;
  j->w.data = j;
  if (uv_queue_work(&K.n->c->loop, &j->w, fp_work, fp_done) != 0) {
    sodium_memzero(j->k, j->len);
    free(j->k);
    free(j);
  }
}

/* After every change: the transport, the file, Lua. Returns NULL or why the file could
 * not be written (the change itself stands). */
static const char *ring_changed(char *err, size_t errlen) {
  cl_node *n = K.n;
  fill_tk();
  char terr[160];
  if (n->t && cl_transport_set_keys(n->t, K.tk, K.n_keys, terr, sizeof terr) != 0)
    cl_log(CL_LOG_ERROR, "keys", NULL, "the transport refused the keyring: %s", terr);
  size_t len = 0;
  for (size_t i = 0; i < K.n_keys; i++) len += K.keys[i].len + 1;
  uint8_t *text = malloc(len ? len : 1);
  const char *why = NULL;
  if (!text) {
    snprintf(err, errlen, "out of memory");
    return err;
  }
  size_t w = 0;
  for (size_t i = 0; i < K.n_keys; i++) {
    memcpy(text + w, K.keys[i].k, K.keys[i].len);
    w += K.keys[i].len;
    text[w++] = '\n';
  }
  char fps[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1];
  fp_list(fps, sizeof fps);
  if (K.path[0]) {
    char werr[256];
    if (cl_node_write_atomic(K.path, text, w, werr, sizeof werr) != 0) {
      snprintf(err, errlen, "the keyring changed but could not be written: %s", werr);
      cl_log(CL_LOG_ERROR, "keys", NULL, "%s", err);
      why = err;
    } else {
      cl_log(CL_LOG_INFO, "keys", NULL, "keyring changed: %zu key(s), primary first: %s; written to %s", K.n_keys,
             fps, K.path);
    }
  } else {
    cl_log(CL_LOG_INFO, "keys", NULL, "keyring changed: %zu key(s), primary first: %s (kept in memory only)",
           K.n_keys, fps);
  }
  /* Lua derives its strategies' keys (gossip) from the ring */
  cl_node_emit(n, CL_EVT_NODE_KEYRING, NULL, text, w, 0, 0, CL_Q_FORCE);
  sodium_memzero(text, w);
  free(text);
  return why;
}

/* 0 and *added; or -1 with err. */
static int apply_install(const uint8_t *k, size_t len, nkey **out, int *added, char *err, size_t errlen) {
  *added = 0;
  char why[200];
  if (cl_keyring_check_key(k, len, why, sizeof why)) {
    snprintf(err, errlen, "%s", why);
    return -1;
  }
  for (size_t i = 0; i < K.n_keys; i++)
    if (K.keys[i].len == len && sodium_memcmp(K.keys[i].k, k, len) == 0) {
      *out = &K.keys[i];
      return 0; /* installed already: nothing to do */
    }
  if (K.n_keys == CL_KEYRING_MAX) {
    snprintf(err, errlen, "the keyring is full (%d keys): remove one first", CL_KEYRING_MAX);
    return -1;
  }
  nkey *nk = &K.keys[K.n_keys];
  nk->k = malloc(len);
  if (!nk->k) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memcpy(nk->k, k, len);
  nk->len = len;
  nk->id = ++K.next_id;
  nk->fp[0] = 0;
  K.n_keys++;
  *out = nk;
  *added = 1;
  return 0;
}

static int find_fp(const char *fp, char *err, size_t errlen) {
  if (!cl_keyring_fp_valid(fp)) {
    snprintf(err, errlen, "\"%.40s\" is not a fingerprint (16 lowercase hex digits, as `clusterlua keys list` shows)", fp);
    return -1;
  }
  int i = by_fp(fp);
  if (i < 0) {
    char fps[CL_KEYRING_MAX * (CL_FP_LEN + 2) + 1];
    fp_list(fps, sizeof fps);
    snprintf(err, errlen, "no key with fingerprint %s on %s (it holds %s)%s", fp, K.n->cfg->name, fps,
             pending_fps() ? "; some fingerprints are still being computed: retry in a moment" : "");
    return -1;
  }
  return i;
}

static int apply_use(const char *fp, char *err, size_t errlen) {
  int i = find_fp(fp, err, errlen);
  if (i < 0) return -1;
  if (i == 0) return 0;
  nkey k = K.keys[i];
  memmove(&K.keys[1], &K.keys[0], (size_t)i * sizeof k);
  K.keys[0] = k;
  return 1;
}

static int apply_remove(const char *fp, char *err, size_t errlen) {
  if (cl_keyring_fp_valid(fp) && by_fp(fp) < 0) return 0; /* gone already: nothing to do */
  int i = find_fp(fp, err, errlen);
  if (i < 0) return -1;
  if (i == 0) {
    snprintf(err, errlen,
             "%s is the primary key of %s: it signs everything this node starts; make another key primary "
             "first (`clusterlua keys use FINGERPRINT`)",
             fp, K.n->cfg->name);
    return -1;
  }
  sodium_memzero(K.keys[i].k, K.keys[i].len);
  free(K.keys[i].k);
  memmove(&K.keys[i], &K.keys[i + 1], (K.n_keys - (size_t)i - 1) * sizeof(nkey));
  K.n_keys--;
  memset(&K.keys[K.n_keys], 0, sizeof(nkey));
  return 1;
}

/* ---- start and stop ---- */

int cl_node_keys_load(cl_node_config *cfg, const cl_transport_key **keys, size_t *n) {
  cl_node_keys_stop();
  K.gen++;
  K.next_id = 0;
  snprintf(K.path, sizeof K.path, "%s", cfg->keyring_path ? cfg->keyring_path : "");
  if (cfg->keyring && cfg->keyring_len) {
    cl_keyring_list l;
    char err[200];
    if (cl_keyring_parse(cfg->keyring, cfg->keyring_len, 0, &l, err, sizeof err)) {
      snprintf(cfg->err, sizeof cfg->err, "EINVAL: keyring: %s", err);
      return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
      K.keys[i].k = malloc(l.key[i].len);
      if (!K.keys[i].k) {
        snprintf(cfg->err, sizeof cfg->err, "ENOMEM: out of memory");
        cl_node_keys_stop();
        return -1;
      }
      memcpy(K.keys[i].k, l.key[i].p, l.key[i].len);
      K.keys[i].len = l.key[i].len;
      K.keys[i].id = ++K.next_id;
      K.n_keys++;
    }
  } else if (cfg->cookie && cfg->cookie_len) {
    K.keys[0].k = malloc(cfg->cookie_len);
    if (!K.keys[0].k) {
      snprintf(cfg->err, sizeof cfg->err, "ENOMEM: out of memory");
      return -1;
    }
    memcpy(K.keys[0].k, cfg->cookie, cfg->cookie_len);
    K.keys[0].len = cfg->cookie_len;
    K.keys[0].id = ++K.next_id;
    K.n_keys = 1;
  } else {
    snprintf(cfg->err, sizeof cfg->err, "EINVAL: a cookie or a keyring is required");
    return -1;
  }
  K.live = 1;
  fill_tk();
  *keys = K.tk;
  *n = K.n_keys;
  return 0;
}

static void fp_start_all(void) {
  if (K.fp_started) return;
  K.fp_started = 1;
  if (K.fp_timer_live) uv_timer_stop(&K.fp_timer);
  for (size_t i = 0; i < K.n_keys; i++)
    if (!K.keys[i].fp[0]) fp_start(&K.keys[i], 0, NULL, 0);
}

static void on_fp_timer(uv_timer_t *t) {
  (void)t;
  fp_start_all();
}

void cl_node_keys_started(cl_node *n) {
  K.n = n;
  K.fp_started = 0;
  if (!K.fp_timer_live) {
    uv_timer_init(&n->c->loop, &K.fp_timer);
    K.fp_timer_live = 1;
  }
  uv_timer_start(&K.fp_timer, on_fp_timer, FP_DELAY_MS, 0);
}

static void op_closed(uv_handle_t *h) {
  op *o = h->data;
  json_decref(o->results);
  free(o->targets);
  free(o->answered);
  free(o);
}

static void op_unlink_close(op *o) {
  for (op **pp = &K.ops; *pp; pp = &(*pp)->next)
    if (*pp == o) {
      *pp = o->next;
      break;
    }
  uv_close((uv_handle_t *)&o->timer, op_closed);
}

static void free_held(void) {
  while (K.held) {
    pmsg *m = K.held;
    K.held = m->next;
    sodium_memzero(m->data, m->len);
    free(m);
  }
  K.n_held = 0;
}

void cl_node_keys_stop(void) {
  K.live = 0;
  K.gen++;
  free_held();
  if (K.fp_timer_live) {
    uv_close((uv_handle_t *)&K.fp_timer, NULL);
    K.fp_timer_live = 0;
  }
  while (K.ops) op_unlink_close(K.ops);
  for (size_t i = 0; i < K.n_keys; i++) {
    if (K.keys[i].k) sodium_memzero(K.keys[i].k, K.keys[i].len);
    free(K.keys[i].k);
  }
  memset(K.keys, 0, sizeof K.keys);
  memset(K.tk, 0, sizeof K.tk);
  K.n_keys = 0;
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

/* ---- the operation, on this node and every member ---- */

static const char *op_name(int kind) {
  switch (kind) {
  case CL_KEYS_INSTALL: return "install";
  case CL_KEYS_USE: return "use";
  case CL_KEYS_REMOVE: return "remove";
  default: return "list";
  }
}

static int op_kind(const char *s) {
  if (!strcmp(s, "install")) return CL_KEYS_INSTALL;
  if (!strcmp(s, "use")) return CL_KEYS_USE;
  if (!strcmp(s, "remove")) return CL_KEYS_REMOVE;
  if (!strcmp(s, "list")) return CL_KEYS_LIST;
  return 0;
}

static void op_result(op *o, const char *node, const char *err, json_t *keys) {
  json_t *r = json_object();
  json_object_set_new(r, "node", json_string(node));
  json_object_set_new(r, "ok", json_boolean(err == NULL));
  if (err) json_object_set_new(r, "error", json_string(err));
  if (keys) json_object_set_new(r, "keys", keys);
  json_array_append_new(o->results, r);
}

static void op_finish(op *o) {
  if (o->finished) return;
  o->finished = 1;
  uv_timer_stop(&o->timer);
  for (size_t i = 0; i < o->n_targets; i++)
    if (!o->answered[i]) op_result(o, o->targets[i], "no answer within 3 s", NULL);
  size_t acked = 0, total = json_array_size(o->results);
  size_t idx;
  json_t *r;
  json_array_foreach(o->results, idx, r) if (json_is_true(json_object_get(r, "ok"))) acked++;
  json_t *ans = json_object();
  json_object_set_new(ans, "op", json_string(op_name(o->kind)));
  json_object_set_new(ans, "nodes", json_integer((json_int_t)total));
  json_object_set_new(ans, "acknowledged", json_integer((json_int_t)acked));
  json_object_set_new(ans, "ok", json_boolean(acked == total));
  if (o->kind != CL_KEYS_LIST) {
    json_object_set_new(ans, "fingerprint", json_string(o->fp));
    const char *verb = o->kind == CL_KEYS_INSTALL ? "installed on" : o->kind == CL_KEYS_USE ? "primary on" : "removed from";
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s %zu of %zu nodes", o->fp, verb, acked, total);
    json_object_set_new(ans, "message", json_string(msg));
  } else {
    /* fingerprint -> installed_on, primary_on, in order of first sight (this node's first) */
    json_t *keys = json_array();
    json_array_foreach(o->results, idx, r) {
      json_t *kl = json_object_get(r, "keys");
      size_t j;
      json_t *k;
      json_array_foreach(kl, j, k) {
        const char *fp = json_string_value(json_object_get(k, "fp"));
        if (!fp) fp = "pending";
        json_t *e = NULL;
        size_t q;
        json_t *x;
        json_array_foreach(keys, q, x) if (!strcmp(json_string_value(json_object_get(x, "fingerprint")), fp)) e = x;
        if (!e) {
          e = json_object();
          json_object_set_new(e, "fingerprint", json_string(fp));
          json_object_set_new(e, "installed_on", json_integer(0));
          json_object_set_new(e, "primary_on", json_integer(0));
          json_array_append_new(keys, e);
        }
        json_object_set_new(e, "installed_on", json_integer(json_integer_value(json_object_get(e, "installed_on")) + 1));
        if (json_is_true(json_object_get(k, "primary")))
          json_object_set_new(e, "primary_on", json_integer(json_integer_value(json_object_get(e, "primary_on")) + 1));
      }
    }
    json_object_set_new(ans, "keys", keys);
  }
  json_object_set(ans, "results", o->results);
  int status = o->refused_local ? 400 : acked == total ? 200 : 502;
  if (o->done) o->done(o->ud, status, ans);
  else json_decref(ans);
  op_unlink_close(o);
}

static void on_op_timer(uv_timer_t *t) {
  op *o = t->data;
  if (o->deferred) {
    o->deferred = 0;
    op_fail_local(o, "this node's key fingerprints are not computed yet (out of memory?): retry in a moment");
    return;
  }
  op_finish(o);
}

/* this node refused: nothing was sent anywhere */
static void op_fail_local(op *o, const char *why) {
  o->refused_local = 1;
  o->n_targets = 0;
  op_result(o, K.n->cfg->name, why, NULL);
  op_finish(o);
}

struct gather {
  op *o;
  size_t cap;
};

static void gather_peer(void *ud, const cl_peer_info *p) {
  struct gather *g = ud;
  op *o = g->o;
  if (!p->status) return;
  int up = strcmp(p->status, "up") == 0;
  if (!up && strcmp(p->status, "down") != 0) return; /* configured but never a member */
  if (!up) {
    op_result(o, p->name, "down: not reached (apply it there once it is back, or it rejoins only if it still shares a key)", NULL);
    return;
  }
  if (o->n_targets == g->cap) {
    size_t nc = g->cap ? g->cap * 2 : 8;
    void *t = realloc(o->targets, nc * sizeof *o->targets);
    if (!t) return;
    o->targets = t;
    int *a = realloc(o->answered, nc * sizeof *o->answered);
    if (!a) return;
    o->answered = a;
    g->cap = nc;
  }
  snprintf(o->targets[o->n_targets], sizeof o->targets[0], "%s", p->name);
  o->answered[o->n_targets] = 0;
  o->n_targets++;
}

/* This node has applied it (or, for list, answers now): ask every member. */
static void op_fan_out(op *o) {
  cl_node *n = K.n;
  op_result(o, n->cfg->name, NULL, ring_json_brief());
  if (o->local_only || !n->t) {
    op_finish(o);
    return;
  }
  struct gather g = {o, 0};
  cl_transport_foreach(n->t, gather_peer, &g);
  json_t *q = json_object();
  json_object_set_new(q, "t", json_string("q"));
  json_object_set_new(q, "id", json_integer((json_int_t)o->id));
  json_object_set_new(q, "op", json_string(op_name(o->kind)));
  if (o->kind == CL_KEYS_INSTALL) {
    /* the key itself, base64, only inside the AEAD session */
    int i = by_fp(o->fp);
    if (i >= 0) {
      size_t bl = sodium_base64_ENCODED_LEN(K.keys[i].len, sodium_base64_VARIANT_ORIGINAL);
      char *b = malloc(bl);
      if (b) {
        sodium_bin2base64(b, bl, K.keys[i].k, K.keys[i].len, sodium_base64_VARIANT_ORIGINAL);
        json_object_set_new(q, "key", json_string(b));
        sodium_memzero(b, bl);
        free(b);
      }
    }
  } else if (o->kind != CL_KEYS_LIST) {
    json_object_set_new(q, "fp", json_string(o->fp));
  }
  char *s = json_dumps(q, JSON_COMPACT);
  json_decref(q);
  for (size_t i = 0; i < o->n_targets; i++) {
    if (!s || cl_transport_send(n->t, o->targets[i], CL_CH_KEYS, s, strlen(s)) != 0) {
      o->answered[i] = 1;
      op_result(o, o->targets[i], "not reached: its connection went down", NULL);
    } else {
      o->waiting++;
    }
  }
  if (s) {
    sodium_memzero(s, strlen(s));
    free(s);
  }
  if (!o->waiting) {
    op_finish(o);
    return;
  }
  uv_timer_start(&o->timer, on_op_timer, OP_WAIT_MS, 0);
}

static void op_run(op *o, const uint8_t *arg, size_t arglen);

void cl_node_keys_op(cl_node *n, int kind, const uint8_t *arg, size_t arglen, int local_only, cl_keys_done done,
                     void *ud) {
  op *o = calloc(1, sizeof *o);
  if (!o) {
    done(ud, 500, json_pack("{s:s}", "error", "out of memory"));
    return;
  }
  o->id = ++K.next_op;
  o->kind = kind;
  o->local_only = local_only;
  o->done = done;
  o->ud = ud;
  o->results = json_array();
  uv_timer_init(&n->c->loop, &o->timer);
  o->timer.data = o;
  o->next = K.ops;
  K.ops = o;
  if (!K.live || !n->t) {
    op_fail_local(o, "the node is not running");
    return;
  }
  fp_start_all(); /* a keys request wants the fingerprints now */
  if (kind != CL_KEYS_INSTALL && pending_fps()) {
    /* keys are named by fingerprints: wait for ours (tens of ms) */
    size_t l = arglen < sizeof o->arg ? arglen : sizeof o->arg;
    if (l) memcpy(o->arg, arg, l);
    o->arglen = l;
    o->deferred = 1;
    uv_timer_start(&o->timer, on_op_timer, OP_WAIT_MS, 0);
    return;
  }
  op_run(o, arg, arglen);
}

static void op_run(op *o, const uint8_t *arg, size_t arglen) {
  cl_node *n = K.n;
  int kind = o->kind, local_only = o->local_only;
  char err[400];
  if (kind == CL_KEYS_LIST) {
    op_fan_out(o);
    return;
  }
  if (kind == CL_KEYS_INSTALL) {
    if (!local_only && !n->cfg->encrypt) {
      op_fail_local(o, "the transport does not encrypt (transport.encrypt = false), so the key cannot be sent to "
                       "the other nodes; install it on each node with POST /_keys/install?local");
      return;
    }
    nkey *k;
    int added;
    if (apply_install(arg, arglen, &k, &added, err, sizeof err)) {
      op_fail_local(o, err);
      return;
    }
    if (added) {
      const char *werr = ring_changed(err, sizeof err);
      if (werr) {
        op_fail_local(o, werr);
        return;
      }
    }
    if (k->fp[0]) {
      memcpy(o->fp, k->fp, sizeof o->fp);
      op_fan_out(o);
    } else {
      fp_start(k, o->id, NULL, 0); /* fans out once the fingerprint is known */
    }
    return;
  }
  char fp[CL_FP_LEN + 1];
  snprintf(fp, sizeof fp, "%.*s", (int)(arglen < CL_FP_LEN ? arglen : CL_FP_LEN), (const char *)arg);
  if (arglen != CL_FP_LEN) {
    op_fail_local(o, "a fingerprint is 16 lowercase hex digits, as `clusterlua keys list` shows");
    return;
  }
  snprintf(o->fp, sizeof o->fp, "%s", fp);
  int r = kind == CL_KEYS_USE ? apply_use(fp, err, sizeof err) : apply_remove(fp, err, sizeof err);
  if (r < 0) {
    op_fail_local(o, err);
    return;
  }
  if (r > 0) {
    const char *werr = ring_changed(err, sizeof err);
    if (werr) {
      op_fail_local(o, werr);
      return;
    }
  }
  op_fan_out(o);
}

/* Our fingerprints are known: run what waited for them. */
static void run_deferred(void) {
  for (;;) {
    op *o = K.ops;
    while (o && !o->deferred) o = o->next;
    if (!o) break;
    o->deferred = 0;
    uv_timer_stop(&o->timer);
    op_run(o, o->arg, o->arglen);
    sodium_memzero(o->arg, sizeof o->arg);
  }
  /* in the order they came (the list is newest first) */
  pmsg *m = NULL, *h = K.held;
  while (h) {
    pmsg *next = h->next;
    h->next = m;
    m = h;
    h = next;
  }
  K.held = NULL;
  K.n_held = 0;
  while (m) {
    pmsg *next = m->next;
    if (K.live && K.n) cl_node_keys_message(K.n, m->from, m->data, m->len);
    sodium_memzero(m->data, m->len);
    free(m);
    m = next;
  }
}

/* ---- a member's side ---- */

static void send_ack(const char *to, uint64_t id, const char *err) {
  if (!K.n || !K.n->t) return;
  json_t *a = json_object();
  json_object_set_new(a, "t", json_string("a"));
  json_object_set_new(a, "id", json_integer((json_int_t)id));
  json_object_set_new(a, "ok", json_boolean(err == NULL));
  if (err) json_object_set_new(a, "error", json_string(err));
  json_object_set_new(a, "keys", ring_json_brief());
  char *s = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  if (s) cl_transport_send(K.n->t, to, CL_CH_KEYS, s, strlen(s));
  free(s);
}

static void on_answer(const char *from, json_t *m) {
  json_int_t id = json_integer_value(json_object_get(m, "id"));
  for (op *o = K.ops; o; o = o->next) {
    if ((json_int_t)o->id != id || o->finished) continue;
    for (size_t i = 0; i < o->n_targets; i++) {
      if (o->answered[i] || strcmp(o->targets[i], from) != 0) continue;
      o->answered[i] = 1;
      o->waiting--;
      const char *e = json_string_value(json_object_get(m, "error"));
      int ok = json_is_true(json_object_get(m, "ok"));
      json_t *keys = json_object_get(m, "keys");
      /* only what the list needs, checked: a member's answer is input too */
      json_t *clean = json_array();
      size_t j;
      json_t *k;
      if (json_is_array(keys))
        json_array_foreach(keys, j, k) {
          if (j >= CL_KEYRING_MAX) break;
          const char *fp = json_string_value(json_object_get(k, "fp"));
          json_t *c = json_object();
          json_object_set_new(c, "fp", fp && cl_keyring_fp_valid(fp) ? json_string(fp) : json_null());
          json_object_set_new(c, "primary", json_boolean(json_is_true(json_object_get(k, "primary"))));
          json_array_append_new(clean, c);
        }
      char why[300];
      snprintf(why, sizeof why, "%s", e ? e : "refused (no reason given)");
      op_result(o, from, ok ? NULL : why, clean);
      if (!o->waiting) op_finish(o);
      return;
    }
  }
}

void cl_node_keys_message(cl_node *n, const char *from, const uint8_t *data, size_t len) {
  if (!K.live || len > 16384) return;
  fp_start_all();
  json_error_t je;
  json_t *m = json_loadb((const char *)data, len, 0, &je);
  if (!json_is_object(m)) {
    json_decref(m);
    return;
  }
  const char *t = json_string_value(json_object_get(m, "t"));
  if (t && !strcmp(t, "a")) {
    on_answer(from, m);
    json_decref(m);
    return;
  }
  json_t *jid = json_object_get(m, "id");
  const char *ops = json_string_value(json_object_get(m, "op"));
  if (!t || strcmp(t, "q") != 0 || !json_is_integer(jid)) {
    json_decref(m);
    return;
  }
  uint64_t id = (uint64_t)json_integer_value(jid);
  int kind = ops ? op_kind(ops) : 0;
  if (pending_fps() && kind != CL_KEYS_INSTALL && K.n_held < 64) {
    /* answered once our fingerprints are known (run_deferred), within the asker's 3 s */
    pmsg *h = malloc(sizeof *h + len);
    if (h) {
      snprintf(h->from, sizeof h->from, "%s", from);
      h->len = len;
      memcpy(h->data, data, len);
      h->next = K.held;
      K.held = h;
      K.n_held++;
      json_decref(m);
      return;
    }
  }
  char err[400];
  const char *fail = NULL;
  if (!kind) {
    fail = "unknown keys operation";
  } else if (kind == CL_KEYS_INSTALL) {
    const char *b = json_string_value(json_object_get(m, "key"));
    uint8_t key[CL_KEY_MAX];
    size_t kl = 0;
    if (!b || sodium_base642bin(key, sizeof key, b, strlen(b), NULL, &kl, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
      fail = "the key is missing or not base64";
    } else {
      nkey *k;
      int added;
      if (apply_install(key, kl, &k, &added, err, sizeof err)) {
        fail = err;
      } else {
        if (added) fail = ring_changed(err, sizeof err);
        if (!fail && !k->fp[0]) {
          /* answered once the fingerprint is known, so a `use` that follows finds it */
          fp_start(k, 0, from, id);
          sodium_memzero(key, sizeof key);
          json_decref(m);
          return;
        }
      }
    }
    sodium_memzero(key, sizeof key);
  } else if (kind != CL_KEYS_LIST) {
    const char *fp = json_string_value(json_object_get(m, "fp"));
    int r = fp ? (kind == CL_KEYS_USE ? apply_use(fp, err, sizeof err) : apply_remove(fp, err, sizeof err)) : -1;
    if (!fp) snprintf(err, sizeof err, "no fingerprint given");
    if (r < 0)
      fail = err;
    else if (r > 0)
      fail = ring_changed(err, sizeof err);
    if (!fail)
      cl_log(CL_LOG_INFO, "keys", NULL, "%s asked this node to %s key %s: done", from, ops, fp);
  }
  (void)n;
  if (fail && kind) cl_log(CL_LOG_WARN, "keys", NULL, "%s asked this node to %s a key: refused: %s", from, ops, fail);
  json_object_set_new(m, "key", json_null()); /* the decoded copy is gone; drop the text too */
  json_decref(m);
  send_ack(from, id, fail);
}
