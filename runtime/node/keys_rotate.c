/* A keyring change applied on every member of the cluster (see keys.h).
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
#include "node/keys_internal.h"
#include "node/node_internal.h"
#include "transport/keyring.h"

#define OP_WAIT_MS 3000

typedef struct cl_keys_op {
  struct cl_keys_op *next;
  cl_node *n;
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
typedef struct cl_keys_held {
  struct cl_keys_held *next;
  char from[CL_NODE_NAME_MAX + 1];
  size_t len;
  uint8_t data[];
} pmsg;

static void op_fan_out(op *o);
static void op_fail_local(op *o, const char *why);
static void send_ack(cl_node *n, const char *to, uint64_t id, const char *err);
static void run_deferred(cl_node *n);
static void op_run(op *o, const uint8_t *arg, size_t arglen);

struct gather {
  op *o;
  size_t cap;
};

static void op_closed(uv_handle_t *h) {
  op *o = h->data;
  json_decref(o->results);
  free(o->targets);
  free(o->answered);
  free(o);
}

static void op_unlink_close(op *o) {
  cl_keys_rotation *R = &o->n->keys_rot;
  for (op **pp = &R->ops; *pp; pp = &(*pp)->next)
    if (*pp == o) {
      *pp = o->next;
      break;
    }
  uv_close((uv_handle_t *)&o->timer, op_closed);
}

static void free_held(cl_keys_rotation *R) {
  while (R->held) {
    pmsg *m = R->held;
    R->held = m->next;
    sodium_memzero(m->data, m->len);
    free(m);
  }
  R->n_held = 0;
}

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
  op_result(o, o->n->cfg->name, why, NULL);
  op_finish(o);
}

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
  cl_node *n = o->n;
  op_result(o, n->cfg->name, NULL, cl_keys_brief_json(n));
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
    const cl_nkey *key = cl_keys_at(n, cl_keys_by_fp(n, o->fp));
    if (key) {
      size_t bl = sodium_base64_ENCODED_LEN(key->len, sodium_base64_VARIANT_ORIGINAL);
      char *b = malloc(bl);
      if (b) {
        sodium_bin2base64(b, bl, key->k, key->len, sodium_base64_VARIANT_ORIGINAL);
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

void cl_node_keys_op(cl_node *n, int kind, const uint8_t *arg, size_t arglen, int local_only, cl_keys_done done,
                     void *ud) {
  cl_keys_rotation *R = &n->keys_rot;
  op *o = calloc(1, sizeof *o);
  if (!o) {
    done(ud, 500, json_pack("{s:s}", "error", "out of memory"));
    return;
  }
  o->n = n;
  o->id = ++R->next_op;
  o->kind = kind;
  o->local_only = local_only;
  o->done = done;
  o->ud = ud;
  o->results = json_array();
  uv_timer_init(&n->c->loop, &o->timer);
  o->timer.data = o;
  o->next = R->ops;
  R->ops = o;
  if (!cl_keys_live(n)) {
    op_fail_local(o, "the node is not running");
    return;
  }
  cl_keys_fp_start_all(n); /* a keys request wants the fingerprints now */
  if (kind != CL_KEYS_INSTALL && cl_keys_pending(n)) {
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
  cl_node *n = o->n;
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
    cl_nkey *k;
    int added;
    if (cl_keys_install(n, arg, arglen, &k, &added, err, sizeof err)) {
      op_fail_local(o, err);
      return;
    }
    if (added) {
      const char *werr = cl_keys_ring_changed(n, err, sizeof err);
      if (werr) {
        op_fail_local(o, werr);
        return;
      }
    }
    if (k->fp[0]) {
      memcpy(o->fp, k->fp, sizeof o->fp);
      op_fan_out(o);
    } else {
      cl_keys_fp_start(n, k, o->id, NULL, 0); /* fans out once the fingerprint is known */
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
  int r = kind == CL_KEYS_USE ? cl_keys_use(n, fp, err, sizeof err) : cl_keys_remove(n, fp, err, sizeof err);
  if (r < 0) {
    op_fail_local(o, err);
    return;
  }
  if (r > 0) {
    const char *werr = cl_keys_ring_changed(n, err, sizeof err);
    if (werr) {
      op_fail_local(o, werr);
      return;
    }
  }
  op_fan_out(o);
}

/* Our fingerprints are known: run what waited for them. */
static void run_deferred(cl_node *n) {
  cl_keys_rotation *R = &n->keys_rot;
  for (;;) {
    op *o = R->ops;
    while (o && !o->deferred) o = o->next;
    if (!o) break;
    o->deferred = 0;
    uv_timer_stop(&o->timer);
    op_run(o, o->arg, o->arglen);
    sodium_memzero(o->arg, sizeof o->arg);
  }
  /* in the order they came (the list is newest first) */
  pmsg *m = NULL, *h = R->held;
  while (h) {
    pmsg *next = h->next;
    h->next = m;
    m = h;
    h = next;
  }
  R->held = NULL;
  R->n_held = 0;
  while (m) {
    pmsg *next = m->next;
    if (cl_keys_live(n)) cl_node_keys_message(n, m->from, m->data, m->len);
    sodium_memzero(m->data, m->len);
    free(m);
    m = next;
  }
}

static void send_ack(cl_node *n, const char *to, uint64_t id, const char *err) {
  if (!cl_keys_live(n)) return;
  json_t *a = json_object();
  json_object_set_new(a, "t", json_string("a"));
  json_object_set_new(a, "id", json_integer((json_int_t)id));
  json_object_set_new(a, "ok", json_boolean(err == NULL));
  if (err) json_object_set_new(a, "error", json_string(err));
  json_object_set_new(a, "keys", cl_keys_brief_json(n));
  char *s = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  if (s) cl_transport_send(n->t, to, CL_CH_KEYS, s, strlen(s));
  free(s);
}

static void on_answer(cl_keys_rotation *R, const char *from, json_t *m) {
  json_int_t id = json_integer_value(json_object_get(m, "id"));
  for (op *o = R->ops; o; o = o->next) {
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
  cl_keys_rotation *R = &n->keys_rot;
  if (!cl_keys_live(n) || len > 16384) return;
  cl_keys_fp_start_all(n);
  json_error_t je;
  json_t *m = json_loadb((const char *)data, len, 0, &je);
  if (!json_is_object(m)) {
    json_decref(m);
    return;
  }
  const char *t = json_string_value(json_object_get(m, "t"));
  if (t && !strcmp(t, "a")) {
    on_answer(R, from, m);
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
  if (cl_keys_pending(n) && kind != CL_KEYS_INSTALL && R->n_held < 64) {
    /* answered once our fingerprints are known (run_deferred), within the asker's 3 s */
    pmsg *h = malloc(sizeof *h + len);
    if (h) {
      snprintf(h->from, sizeof h->from, "%s", from);
      h->len = len;
      memcpy(h->data, data, len);
      h->next = R->held;
      R->held = h;
      R->n_held++;
      json_decref(m);
      return;
    }
  }
  char err[400];
  const char *fail = NULL;
  if (!kind) {
    fail = "unknown keys operation";
  } else if (!n->cfg->encrypt) {
    /* without encryption nothing authenticates these frames after the handshake: anyone
     * on the path could install, use or remove keys (found by a security review) */
    fail = "this node's transport does not encrypt (transport.encrypt = false): keys change only through its "
           "own admin endpoint (?local)";
  } else if (kind == CL_KEYS_INSTALL) {
    const char *b = json_string_value(json_object_get(m, "key"));
    uint8_t key[CL_KEY_MAX];
    size_t kl = 0;
    if (!b || sodium_base642bin(key, sizeof key, b, strlen(b), NULL, &kl, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
      fail = "the key is missing or not base64";
    } else {
      cl_nkey *k;
      int added;
      if (cl_keys_install(n, key, kl, &k, &added, err, sizeof err)) {
        fail = err;
      } else {
        if (added) fail = cl_keys_ring_changed(n, err, sizeof err);
        if (!fail && !k->fp[0]) {
          /* answered once the fingerprint is known, so a `use` that follows finds it */
          cl_keys_fp_start(n, k, 0, from, id);
          sodium_memzero(key, sizeof key);
          json_decref(m);
          return;
        }
      }
    }
    sodium_memzero(key, sizeof key);
  } else if (kind != CL_KEYS_LIST) {
    const char *fp = json_string_value(json_object_get(m, "fp"));
    int r = fp ? (kind == CL_KEYS_USE ? cl_keys_use(n, fp, err, sizeof err) : cl_keys_remove(n, fp, err, sizeof err)) : -1;
    if (!fp) snprintf(err, sizeof err, "no fingerprint given");
    if (r < 0)
      fail = err;
    else if (r > 0)
      fail = cl_keys_ring_changed(n, err, sizeof err);
    if (!fail)
      cl_log(CL_LOG_INFO, "keys", NULL, "%s asked this node to %s key %s: done", from, ops, fp);
  }
  if (fail && kind) cl_log(CL_LOG_WARN, "keys", NULL, "%s asked this node to %s a key: refused: %s", from, ops, fail);
  json_object_set_new(m, "key", json_null()); /* the decoded copy is gone; drop the text too */
  json_decref(m);
  send_ack(n, from, id, fail);
}

/* A fingerprint was computed (fp NULL: it could not be): an install waiting to fan out
 * goes on, a member's install is answered, and what waited for this node's
 * fingerprints runs. */
static void on_fp(cl_node *n, uint32_t id, const char *fp, uint64_t op_id, const char *ack_to, uint64_t ack_id) {
  cl_keys_rotation *R = &n->keys_rot;
  (void)id;
  if (op_id) {
    for (op *o = R->ops; o; o = o->next)
      if (o->id == op_id && !o->finished) {
        if (fp) {
          snprintf(o->fp, sizeof o->fp, "%s", fp);
          op_fan_out(o);
        } else {
          op_fail_local(o, "the new key's fingerprint could not be computed");
        }
        break;
      }
  }
  if (ack_to) send_ack(n, ack_to, ack_id, fp ? NULL : "the key was removed again before its fingerprint was computed");
  if (!cl_keys_pending(n)) run_deferred(n);
}

void cl_node_keys_rotate_start(cl_node *n) { cl_keys_set_fp_hook(n, on_fp); }

void cl_node_keys_rotate_stop(cl_node *n) {
  cl_keys_rotation *R = &n->keys_rot;
  free_held(R);
  while (R->ops) op_unlink_close(R->ops);
}
