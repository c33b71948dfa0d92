/* Big-endian integers in wire buffers: the byte order of every frame payload. Shared by
 * the transport's frame codecs (members_wire.c, transport.c's beats), so the order is
 * written down once. */
#ifndef CL_BIGENDIAN_H
#define CL_BIGENDIAN_H
#include <stdint.h>

static inline void cl_put_be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static inline void cl_put_be32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline uint64_t cl_get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}
static inline uint32_t cl_get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
