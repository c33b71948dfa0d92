/* One connection's outgoing bytes (writer.h). */
#include "transport/writer.h"

/* a write buffer this large after a burst is given back rather than kept */
#define CL_WIRE_KEEP_MAX (4u << 20)

static void trim(cl_writer *w, cl_tbuf *b) {
  if (!b->len && b->cap > (w->keep_max ? w->keep_max : CL_WIRE_KEEP_MAX)) cl_tbuf_free(b);
}

static void count_records(const cl_writer_stats *st, size_t plain) {
  if (st->records_sealed) *st->records_sealed += (plain + CL_RECORD_PLAIN_MAX - 1) / CL_RECORD_PLAIN_MAX;
}

/* out (its first raw_len bytes as they are, the rest sealed under seal unless NULL) is
 * appended to dst */
static int move_out(cl_writer *w, cl_tbuf *dst, cl_seal_dir *seal, const cl_writer_stats *st) {
  size_t raw = seal ? w->raw_len : w->out.len;
  if (raw && cl_tbuf_append(dst, w->out.p, raw)) return UV_ENOMEM;
  if (w->out.len > raw) {
    if (cl_session_seal(seal, w->out.p + raw, w->out.len - raw, dst)) return UV_ENOMEM;
    count_records(st, w->out.len - raw);
  }
  w->out.len = 0;
  w->raw_len = 0;
  trim(w, &w->out);
  return 0;
}

int cl_writer_flush(cl_writer *w, uv_stream_t *s, cl_seal_dir *seal, const cl_writer_stats *st, uv_write_cb cb,
                    void *cb_data) {
  if (w->writing) return 0;
  /* records sealed at a re-key boundary go first: they precede what is in out */
  if (w->sealed.len) {
    if (cl_tbuf_append(&w->wire, w->sealed.p, w->sealed.len)) return UV_ENOMEM;
    w->sealed.len = 0;
    trim(w, &w->sealed);
  }
  if (w->out.len) {
    if (!seal && !w->wire.len) { /* plaintext into an empty wire: swap, no copy */
      cl_tbuf tmp = w->wire;
      w->wire = w->out;
      w->out = tmp;
      w->out.len = 0;
      w->raw_len = 0;
      trim(w, &w->out);
    } else {
      int r = move_out(w, &w->wire, seal, st);
      if (r) return r;
    }
  }
  if (w->wire.len <= w->wire_off) return 0;
  uv_buf_t b = uv_buf_init((char *)w->wire.p + w->wire_off, (unsigned)(w->wire.len - w->wire_off));
  int n = uv_try_write(s, &b, 1);
  (*st->writes)++;
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) return n;
  *st->bytes_out += (uint64_t)n;
  w->wire_off += (size_t)n;
  if (w->wire_off < w->wire.len) {
    b = uv_buf_init((char *)w->wire.p + w->wire_off, (unsigned)(w->wire.len - w->wire_off));
    w->wreq.data = cb_data;
    int r = uv_write(&w->wreq, s, &b, 1, cb);
    if (r) return r;
    w->writing = 1;
    return 0;
  }
  w->wire.len = w->wire_off = 0;
  trim(w, &w->wire);
  return 0;
}

void cl_writer_written(cl_writer *w, const cl_writer_stats *st) {
  w->writing = 0;
  *st->bytes_out += w->wire.len - w->wire_off;
  w->wire.len = w->wire_off = 0;
  trim(w, &w->wire);
}

int cl_writer_seal_pending(cl_writer *w, cl_seal_dir *seal, const cl_writer_stats *st) {
  return w->out.len ? move_out(w, &w->sealed, seal, st) : 0;
}

size_t cl_writer_queued(const cl_writer *w) { return w->out.len + w->sealed.len + (w->wire.len - w->wire_off); }

void cl_writer_free(cl_writer *w) {
  cl_tbuf_free(&w->out);
  cl_tbuf_free(&w->sealed);
  cl_tbuf_free(&w->wire);
  w->raw_len = w->wire_off = 0;
}
