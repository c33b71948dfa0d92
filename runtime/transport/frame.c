/* Framing: an 8-byte preamble (magic + version), then frames of
 * [u32 length BE][u8 type][u8 channel][payload]. The decoder is incremental and
 * accepts any chunking; every length is checked before anything is allocated. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int cl_tbuf_reserve(cl_tbuf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return -1;
  size_t need = b->len + extra, cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

int cl_tbuf_append(cl_tbuf *b, const void *p, size_t n) {
  if (cl_tbuf_reserve(b, n)) return -1;
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

void cl_tbuf_free(cl_tbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

int cl_frame_put(cl_tbuf *b, uint8_t type, uint8_t channel, const void *payload, uint32_t len) {
  if (cl_tbuf_reserve(b, CL_FRAME_HDR + (size_t)len)) return -1;
  uint8_t *h = b->p + b->len;
  h[0] = (uint8_t)(len >> 24);
  h[1] = (uint8_t)(len >> 16);
  h[2] = (uint8_t)(len >> 8);
  h[3] = (uint8_t)len;
  h[4] = type;
  h[5] = channel;
  if (len) memcpy(h + CL_FRAME_HDR, payload, len);
  b->len += CL_FRAME_HDR + (size_t)len;
  return 0;
}

void cl_preamble_put(uint8_t out[CL_PREAMBLE_LEN], uint8_t version) {
  out[0] = CL_MAGIC0;
  out[1] = CL_MAGIC1;
  out[2] = CL_MAGIC2;
  out[3] = CL_MAGIC3;
  out[4] = version;
  out[5] = out[6] = out[7] = 0;
}

void cl_frame_decoder_init(cl_frame_decoder *d, int mode, int need_preamble, uint32_t max_frame) {
  memset(d, 0, sizeof *d);
  d->mode = mode;
  d->need_preamble = need_preamble;
  d->max_frame = max_frame;
}

void cl_frame_decoder_free(cl_frame_decoder *d) { cl_tbuf_free(&d->body); }

static int starts(const uint8_t *p, size_t n, const char *s) {
  size_t l = strlen(s);
  return n >= l && memcmp(p, s, l) == 0;
}

const char *cl_frame_sniff(const uint8_t *p, size_t n) {
  static const char *methods[] = {"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ",
                                  "PATCH ", "CONNECT ", "TRACE ", "PRI * HTTP/2"};
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    if (starts(p, n, methods[i])) return "an HTTP request";
  if (starts(p, n, "HTTP/")) return "an HTTP response";
  if (n >= 3 && p[0] == 0x16 && p[1] == 0x03) return "a TLS handshake";
  if (starts(p, n, "SSH-")) return "an SSH banner";
  return "garbage";
}

static int fail(cl_frame_decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(cl_frame_decoder *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->reason, sizeof d->reason, fmt, ap);
  va_end(ap);
  d->failed = 1;
  return -1;
}

static int type_known(int mode, uint8_t t) {
  if (mode == CL_FD_HANDSHAKE) return t >= CL_T_HELLO && t <= CL_T_REFUSE;
  /* a REFUSE may still come after authentication (e.g. a lost tie-break) */
  return (t >= CL_T_DATA && t <= CL_T_DIGEST) || t == CL_T_REFUSE;
}

/* Validates a complete header; on success sets the current frame's fields. */
static int check_header(cl_frame_decoder *d) {
  const uint8_t *h = d->hdr;
  uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
  uint8_t type = h[4], ch = h[5];
  if (!type_known(d->mode, type)) {
    /* the first frame of a connection is where stray protocols show up */
    if (d->mode == CL_FD_HANDSHAKE) {
      const char *what = cl_frame_sniff(h, CL_FRAME_HDR);
      if (strcmp(what, "garbage") != 0) return fail(d, "%s, not a clusterlua peer", what);
    }
    return fail(d, "unknown frame type %u", type);
  }
  uint32_t max;
  if (d->mode == CL_FD_HANDSHAKE)
    max = CL_HS_FRAME_MAX;
  else if (type == CL_T_DATA)
    max = d->max_frame;
  else
    max = CL_CTRL_FRAME_MAX;
  if (len > max) {
    d->oversize = 1;
    return fail(d, "frame of %u bytes exceeds the maximum of %u", len, max);
  }
  if (type != CL_T_DATA && ch != 0) return fail(d, "frame type %u with channel %u", type, ch);
  if (type == CL_T_DATA && ch == 0) return fail(d, "data frame on channel 0");
  d->cur_type = type;
  d->cur_channel = ch;
  d->want = len;
  return 0;
}

static int check_preamble(cl_frame_decoder *d) {
  const uint8_t *h = d->hdr;
  if (h[0] != CL_MAGIC0 || h[1] != CL_MAGIC1 || h[2] != CL_MAGIC2 || h[3] != CL_MAGIC3) {
    const char *what = cl_frame_sniff(h, CL_PREAMBLE_LEN);
    return fail(d, "%s, not a clusterlua peer", what);
  }
  if (h[5] || h[6] || h[7]) return fail(d, "garbage: reserved preamble bytes set");
  d->version = h[4];
  if (d->expect_version && d->version != d->expect_version) {
    d->bad_version = 1;
    return fail(d, "unsupported protocol version %u (this node speaks %u)", d->version,
                d->expect_version);
  }
  return 0;
}

int cl_frame_decoder_feed(cl_frame_decoder *d, const uint8_t *p, size_t n, size_t *consumed,
                          cl_frame_cb cb, void *ud) {
  size_t i = 0;
  if (d->failed) return -1;
  while (i < n) {
    if (d->need_preamble) {
      if (!cl_take_header(d->hdr, &d->hdr_have, CL_PREAMBLE_LEN, p, n, &i)) continue;
      d->need_preamble = 0;
      if (check_preamble(d)) {
        if (consumed) *consumed = i;
        return -1;
      }
      continue;
    }
    if (!d->in_body) {
      /* fast path: whole header and body in this chunk, delivered without a copy */
      if (d->hdr_have == 0 && n - i >= CL_FRAME_HDR) {
        memcpy(d->hdr, p + i, CL_FRAME_HDR);
        if (check_header(d)) {
          if (consumed) *consumed = i;
          return -1;
        }
        if (n - i - CL_FRAME_HDR >= d->want) {
          cl_frame f = {d->cur_type, d->cur_channel, d->want, p + i + CL_FRAME_HDR};
          i += CL_FRAME_HDR + d->want;
          if (cb && cb(ud, &f)) {
            if (consumed) *consumed = i;
            return 1;
          }
          continue;
        }
        i += CL_FRAME_HDR;
      } else {
        if (!cl_take_header(d->hdr, &d->hdr_have, CL_FRAME_HDR, p, n, &i)) continue;
        if (check_header(d)) {
          if (consumed) *consumed = i;
          return -1;
        }
      }
      d->in_body = 1;
      d->body.len = 0;
      /* the length was checked above, so this allocation is bounded by max_frame */
      if (cl_tbuf_reserve(&d->body, d->want)) {
        if (consumed) *consumed = i;
        return fail(d, "out of memory for a frame of %u bytes", d->want);
      }
    }
    size_t need = d->want - d->body.len;
    size_t take = need < n - i ? need : n - i;
    if (take) memcpy(d->body.p + d->body.len, p + i, take);
    d->body.len += take;
    i += take;
    if (d->body.len < d->want) continue;
    d->in_body = 0;
    cl_frame f = {d->cur_type, d->cur_channel, d->want, d->body.p};
    int stop = cb ? cb(ud, &f) : 0;
    /* a big frame's buffer is not worth keeping around */
    if (d->body.cap > (d->keep_max ? d->keep_max : (1u << 20))) cl_tbuf_free(&d->body);
    if (stop) {
      if (consumed) *consumed = i;
      return 1;
    }
  }
  if (consumed) *consumed = i;
  return 0;
}
