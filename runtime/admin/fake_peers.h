/* Test-only synthetic peers, so that GET /_nodes, `clusterlua status` and /metrics can be
 * exercised and timed at 1,000 nodes on one process: POST /_test/peers, registered only
 * with CLUSTERLUA_FAULTS=1 (as POST /_test/fault). They exist in the admin views alone:
 * the transport, the election and Lua never see them. */
#ifndef CL_FAKE_PEERS_H
#define CL_FAKE_PEERS_H
#include <uv.h>

#include "admin/admin.h"
#include "transport/transport.h"

/* Registers POST /_test/peers?count=N[&down=D][&configured=C][&disconnected=X] on a:
 * replaces the synthetic peers by N (count=0 removes them), the first D down, the next
 * C configured, the next X disconnected, the rest up. */
typedef struct cl_fake_peers cl_fake_peers;
cl_fake_peers *cl_fake_peers_start(cl_admin *a, uv_loop_t *loop); /* NULL: out of memory */
/* Frees them and f (the admin endpoint is going; NULL: nothing). */
void cl_fake_peers_stop(cl_fake_peers *f);
/* Each synthetic peer, described as the transport describes a real one (none for NULL). */
void cl_fake_peers_foreach(const cl_fake_peers *f, void (*fn)(void *ud, const cl_peer_info *p), void *ud);

#endif
