/* The membership and detection frame payloads: members_wire.h says what and why. */
#include "transport/members_wire.h"

#include <string.h>

#include "core/bigendian.h"

size_t cl_mw_member_put(uint8_t *out, size_t room, const char *name, uint64_t inc, uint32_t ver, const char *id,
                        const char *roles) {
  size_t nl = strlen(name), il = strlen(id), rl = strlen(roles);
  if (il > CL_MW_STR_MAX) il = CL_MW_STR_MAX;
  if (rl > CL_MW_STR_MAX) rl = CL_MW_STR_MAX;
  if (!nl || nl > CL_MW_STR_MAX) return 0;
  size_t need = 8 + 4 + 1 + il + 1 + rl + 1 + nl;
  if (need > room) return 0;
  cl_put_be64(out, inc);
  cl_put_be32(out + 8, ver);
  uint8_t *w = out + 12;
  *w++ = (uint8_t)il;
  memcpy(w, id, il);
  w += il;
  *w++ = (uint8_t)rl;
  memcpy(w, roles, rl);
  w += rl;
  *w++ = (uint8_t)nl;
  memcpy(w, name, nl);
  return need;
}

/* a u8-length string at d[*i..n); the length byte is checked against what is left */
static int take_str(const uint8_t *d, size_t n, size_t *i, char out[CL_MW_STR_MAX + 1]) {
  if (*i >= n) return -1;
  size_t l = d[(*i)++];
  if (l > n - *i || memchr(d + *i, 0, l)) return -1;
  memcpy(out, d + *i, l);
  out[l] = 0;
  *i += l;
  return 0;
}

int cl_mw_member_take(const uint8_t *d, size_t n, size_t *i, cl_mw_member *e) {
  if (*i > n || n - *i < 12) return -1;
  e->inc = cl_get_be64(d + *i);
  e->ver = cl_get_be32(d + *i + 8);
  *i += 12;
  if (take_str(d, n, i, e->id) || take_str(d, n, i, e->roles) || take_str(d, n, i, e->name)) return -1;
  return e->name[0] ? 0 : -1;
}

int cl_mw_name_take(const uint8_t *d, size_t n, size_t head, char out[CL_MW_STR_MAX + 1]) {
  if (n <= head || n - head > CL_MW_STR_MAX) return -1;
  size_t l = n - head;
  if (memchr(d + head, 0, l)) return -1;
  memcpy(out, d + head, l);
  out[l] = 0;
  return 0;
}

/* the name of a frame after its head; 0 when empty or too long */
static size_t put_name(uint8_t *buf, size_t head, const char *name) {
  size_t nl = strlen(name);
  if (!nl || nl > CL_MW_STR_MAX) return 0;
  memcpy(buf + head, name, nl);
  return head + nl;
}

size_t cl_mw_down_put(uint8_t *buf, const char *name, uint64_t inc, uint32_t ver, uint8_t reason) {
  cl_put_be64(buf, inc);
  cl_put_be32(buf + 8, ver);
  buf[12] = reason;
  return put_name(buf, CL_MW_DOWN_HEAD, name);
}

int cl_mw_down_take(const uint8_t *d, size_t n, cl_mw_down *out) {
  if (cl_mw_name_take(d, n, CL_MW_DOWN_HEAD, out->name) || d[12] > CL_MW_DOWN_LEFT) return -1;
  out->inc = cl_get_be64(d);
  out->ver = cl_get_be32(d + 8);
  out->reason = d[12];
  return 0;
}

size_t cl_mw_probe_req_put(uint8_t *buf, uint32_t seq, const char *name) {
  cl_put_be32(buf, seq);
  return put_name(buf, CL_MW_PROBE_REQ_HEAD, name);
}

size_t cl_mw_probe_res_put(uint8_t *buf, uint32_t seq, int alive, const char *name) {
  cl_put_be32(buf, seq);
  buf[4] = (uint8_t)(alive != 0);
  return put_name(buf, CL_MW_PROBE_RES_HEAD, name);
}

int cl_mw_probe_req_take(const uint8_t *d, size_t n, cl_mw_probe *out) {
  if (cl_mw_name_take(d, n, CL_MW_PROBE_REQ_HEAD, out->name)) return -1;
  out->seq = cl_get_be32(d);
  out->alive = 0;
  return 0;
}

int cl_mw_probe_res_take(const uint8_t *d, size_t n, cl_mw_probe *out) {
  if (cl_mw_name_take(d, n, CL_MW_PROBE_RES_HEAD, out->name)) return -1;
  out->seq = cl_get_be32(d);
  out->alive = d[4] == 1;
  return 0;
}

size_t cl_mw_watch_put(uint8_t *buf, int on, uint32_t beat_ms) {
  buf[0] = on ? 1 : 0;
  cl_put_be32(buf + 1, beat_ms);
  return CL_MW_WATCH_LEN;
}

int cl_mw_watch_take(const uint8_t *d, size_t n, int *on, uint32_t *beat_ms) {
  if (n != CL_MW_WATCH_LEN || d[0] > 1) return -1;
  uint32_t b = cl_get_be32(d + 1);
  if (b < CL_MW_BEAT_MIN || b > CL_MW_BEAT_MAX) return -1;
  *on = d[0];
  *beat_ms = b;
  return 0;
}
