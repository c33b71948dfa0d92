/* The outgoing side of one connection, shared by the control connections (transport.c,
 * control loop) and the data connections (dataplane.c, Lua loop): frames queue in
 * plaintext in `out`; a flush seals them into AEAD records (when the connection is
 * encrypted) and writes as much as the socket takes at once, the rest with one
 * uv_write. One write path, so both kinds of connection batch, seal and re-key alike.
 * Not thread-safe: each writer belongs to the loop of its connection. */
#ifndef CL_TRANSPORT_WRITER_H
#define CL_TRANSPORT_WRITER_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "transport/internal.h"

typedef struct cl_writer {
  cl_tbuf out;    /* frames waiting for the next flush, plaintext */
  size_t raw_len; /* leading bytes of out never sealed (the handshake's last frame) */
  cl_tbuf sealed; /* records sealed under a send key just replaced (re-key), before out */
  cl_tbuf wire;   /* what is being written now */
  size_t wire_off;
  int writing; /* a uv_write is in flight: flush again from its callback */
  /* a buffer that grew past this is given back once it is empty again (0: 4 MiB, for
   * the data plane's bursts; the control connections keep only a few KiB) */
  size_t keep_max;
  uv_write_t wreq;
} cl_writer;

/* The owner's counters, bumped by the writer (records_sealed may be NULL). */
typedef struct {
  uint64_t *writes, *bytes_out, *records_sealed;
} cl_writer_stats;

/* Moves sealed and out into wire (out sealed under seal, unless seal is NULL), then
 * writes. 0: everything written, or the rest in flight (w->writing; cb then calls
 * cl_writer_written); < 0: a libuv error or UV_ENOMEM, and the connection must fail.
 * wreq.data is set to cb_data. */
int cl_writer_flush(cl_writer *w, uv_stream_t *s, cl_seal_dir *seal, const cl_writer_stats *st, uv_write_cb cb,
                    void *cb_data);
/* From the write callback, after a successful write: the bytes in flight went out. */
void cl_writer_written(cl_writer *w, const cl_writer_stats *st);
/* A re-key: seals what out holds under the key about to be replaced, into sealed, so it
 * goes out ahead of what the new key seals. 0, or UV_ENOMEM. */
int cl_writer_seal_pending(cl_writer *w, cl_seal_dir *seal, const cl_writer_stats *st);
/* Bytes accepted but not yet written. */
size_t cl_writer_queued(const cl_writer *w);
void cl_writer_free(cl_writer *w);

#endif
