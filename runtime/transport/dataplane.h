/* Data connections on the Lua loop: user messages and RPC between Lua handlers travel
 * here, so a message costs no thread hop (docs/design.md, "Data connections on the Lua
 * loop"). The control loop authenticates each connection with the transport's handshake
 * and hands the socket over (cl_data_conn); this file only frames, seals, writes and
 * reads. Failure detection stays on the control connection: the node closes a data
 * connection when its peer is reported down.
 *
 * Threading: Lua thread only (but cl_dp_stats_published). cl_dp_send is also called
 * through LuaJIT's FFI, so it never calls into Lua. */
#ifndef CL_DATAPLANE_H
#define CL_DATAPLANE_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/lua_stats.h"
#include "transport/transport.h"

/* One Lua loop's data plane: its connections, handles, counters (the Lua state's
 * context owns it: lua/lua_dataplane.c). */
typedef struct cl_dp cl_dp;
typedef struct cl_dp_conn cl_dp_conn;

/* The message being delivered, valid during the message callback only. */
typedef struct {
  const uint8_t *p;
  size_t len;
} cl_dp_rx;

typedef struct {
  /* one received message (also in cl_dp_rx_current()) */
  void (*message)(void *ud, cl_dp_conn *c, const uint8_t *p, size_t n);
  /* the connection failed (peer closed it, garbage, write error); it is closing and
   * must not be used after this returns */
  void (*closed)(void *ud, cl_dp_conn *c, const char *reason);
  void *ud;
} cl_dp_callbacks;

typedef struct {
  uint64_t msgs_in, msgs_out, bytes_in, bytes_out, writes, conns_adopted, conns_failed;
  uint64_t spin_reads; /* reads that brought bytes, done by the spin itself (not libuv) */
  uint64_t rekeys;     /* re-authentications (with a re-key) after a keyring change */
} cl_dp_stats;

/* pub: where the counters are published for other threads (cl_dp_stats_published), NULL:
 * kept inside. NULL when out of memory. */
cl_dp *cl_dp_new(uv_loop_t *loop, const cl_dp_callbacks *cb, cl_dp_published *pub);
/* Takes dc->fd (closed on failure). Returns NULL with err filled. */
cl_dp_conn *cl_dp_adopt(cl_dp *dp, const cl_data_conn *dc, uint32_t max_frame, size_t queue_max, char *err,
                        size_t errlen);
/* Queues one message; never blocks. 0, UV_ENOTCONN, UV_ENOBUFS (over queue_max), UV_E2BIG. */
int cl_dp_send(cl_dp_conn *c, const uint8_t *p, size_t len);
/* The message being delivered (a fixed address for dp's life: Lua reads it through the
 * FFI) */
const cl_dp_rx *cl_dp_rx_current(const cl_dp *dp);
/* Closes without calling the closed callback. */
void cl_dp_close(cl_dp_conn *c);
int cl_dp_closing(const cl_dp_conn *c);
void cl_dp_set_tag(cl_dp_conn *c, intptr_t tag);
intptr_t cl_dp_tag(const cl_dp_conn *c);
/* After a message goes out or comes in, the loop polls without sleeping for this long
 * (0: never), so the answer that follows within it costs no wake-up. */
void cl_dp_set_spin_us(cl_dp *dp, uint32_t us);
/* The keyring changed (keys one a line, primary first): a data connection authenticated
 * under a key no longer in it is re-authenticated and re-keyed over its own session, as
 * the transport does for control connections; with no key in common it is closed. */
void cl_dp_set_keyring(cl_dp *dp, const uint8_t *text, size_t len);
void cl_dp_stats_get(const cl_dp *dp, cl_dp_stats *out);
/* Connections not yet freed (a closing one counts until its close callback ran). */
size_t cl_dp_conns_open(const cl_dp *dp);
/* Any thread: the counters as of the Lua loop's last turn with traffic. */
void cl_dp_stats_published(const cl_dp_published *pub, cl_dp_stats *out);
/* Writes what can be written at once, then closes every connection and handle; dp is
 * freed once the last of them is closed (run the loop), and must not be used after. */
void cl_dp_shutdown(cl_dp *dp);

#endif
