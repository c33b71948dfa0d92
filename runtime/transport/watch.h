/* Who watches whom: pure (no I/O, no clock), so every node, the tests and the
 * simulator compute the same selection from the same names.
 *
 * Each node places itself and its connected peers on a ring by cl_watch_hash of the
 * full node name (64-bit FNV-1a: the same on every node and every build, no key), and
 * watches its k successors on that ring: the peers whose hash follows its own most
 * closely, going up and wrapping around. So each node watches k peers and is watched
 * by about k, whatever the cluster's size; with n peers <= k everyone watches everyone.
 * Equal hashes (never seen in practice: 64 bits) are ordered by name, so every node
 * still agrees. */
#ifndef CL_WATCH_H
#define CL_WATCH_H
#include <stddef.h>
#include <stdint.h>

#define CL_WATCH_DEFAULT 3 /* transport.watchers */
#define CL_WATCH_MAX 64

uint64_t cl_watch_hash(const char *name);

/* The k peers of names[0..n) (hashes h[i] = cl_watch_hash(names[i])) nearest to
 * `from` on the ring: forward (successors of from: whom the node named from watches)
 * or backward (predecessors: who watches from). Writes up to k indices into out,
 * nearest first, skipping index `skip` (SIZE_MAX: none) and any name equal to
 * from_name; returns how many. O(n * k), no allocation. */
size_t cl_watch_pick(const char *const *names, const uint64_t *h, size_t n, const char *from_name, uint64_t from,
                     int forward, size_t skip, size_t k, size_t *out);

#endif
