/* The payloads of the membership and detection frames (internal.h's CL_T_MEMBERS,
 * CL_T_DOWN, CL_T_PROBE_REQ, CL_T_PROBE_RES, CL_T_WATCH), encoded and decoded: pure, no
 * I/O, so transport.c and the fuzz target (spec/fuzz/fuzz_members.c) share one parser
 * per format. LEAVE and IDLE carry no payload (their body is ignored).
 * Every payload comes from an authenticated but possibly hostile peer: a decoder reads
 * only within the length it is given, checks each length byte against what is left
 * before copying, refuses a NUL inside a string (names are C strings afterwards) and
 * allocates nothing. Big-endian throughout. */
#ifndef CL_MEMBERS_WIRE_H
#define CL_MEMBERS_WIRE_H
#include <stddef.h>
#include <stdint.h>

#define CL_MW_STR_MAX 255 /* a string of a MEMBERS entry, and a name in any of these frames */

/* MEMBERS: entries {u64 incarnation, u32 version, u8 n, id, u8 n, roles, u8 n, name} */
typedef struct {
  uint64_t inc;
  uint32_t ver;
  char id[CL_MW_STR_MAX + 1], roles[CL_MW_STR_MAX + 1], name[CL_MW_STR_MAX + 1];
} cl_mw_member;
#define CL_MW_MEMBER_MAX (8 + 4 + 3 + 3 * CL_MW_STR_MAX) /* the largest entry */

/* One entry into out (room bytes): its length, or 0 when it does not fit or the name is
 * longer than CL_MW_STR_MAX (an id or roles that long is cut to CL_MW_STR_MAX). */
size_t cl_mw_member_put(uint8_t *out, size_t room, const char *name, uint64_t inc, uint32_t ver, const char *id,
                        const char *roles);
/* The entry at d[*i..n) into e, *i moved past it: 0, or -1 when it is cut short, a
 * string holds a NUL, or the name is empty (*i is then unspecified). */
int cl_mw_member_take(const uint8_t *d, size_t n, size_t *i, cl_mw_member *e);

/* DOWN: u64 incarnation, u32 member version, u8 reason (CL_MW_DOWN_*), name */
enum { CL_MW_DOWN_TIMEOUT = 0, CL_MW_DOWN_CLOSED = 1, CL_MW_DOWN_LEFT = 2 };
#define CL_MW_DOWN_HEAD 13
typedef struct {
  uint64_t inc;
  uint32_t ver;
  uint8_t reason;
  char name[CL_MW_STR_MAX + 1];
} cl_mw_down;
/* into buf (at least CL_MW_DOWN_HEAD + CL_MW_STR_MAX bytes): its length, 0 if the name is
 * empty or longer than CL_MW_STR_MAX */
size_t cl_mw_down_put(uint8_t *buf, const char *name, uint64_t inc, uint32_t ver, uint8_t reason);
/* 0, or -1: too short, an unknown reason, a name empty, too long or with a NUL */
int cl_mw_down_take(const uint8_t *d, size_t n, cl_mw_down *out);

/* PROBE_REQ: u32 seq, name. PROBE_RES: u32 seq, u8 alive (1: it answered; any other
 * value: no answer), name. */
#define CL_MW_PROBE_REQ_HEAD 4
#define CL_MW_PROBE_RES_HEAD 5
typedef struct {
  uint32_t seq;
  int alive; /* PROBE_RES only */
  char name[CL_MW_STR_MAX + 1];
} cl_mw_probe;
/* into buf (at least CL_MW_PROBE_RES_HEAD + CL_MW_STR_MAX bytes): its length, 0 if the
 * name is empty or too long */
size_t cl_mw_probe_req_put(uint8_t *buf, uint32_t seq, const char *name);
size_t cl_mw_probe_res_put(uint8_t *buf, uint32_t seq, int alive, const char *name);
int cl_mw_probe_req_take(const uint8_t *d, size_t n, cl_mw_probe *out);
int cl_mw_probe_res_take(const uint8_t *d, size_t n, cl_mw_probe *out);

/* WATCH: u8 1 = "beat to me", 0 = "stop"; u32 (BE) the beat interval in ms the
 * watcher expects, CL_MW_BEAT_MIN..CL_MW_BEAT_MAX (its timeout is derived from it:
 * design.md §4). put: into buf (CL_MW_WATCH_LEN bytes), returns the length. take: *on
 * and *beat_ms set, 0; -1 for any other payload, a beat out of range included. */
#define CL_MW_WATCH_LEN 5
#define CL_MW_BEAT_MIN 5
#define CL_MW_BEAT_MAX 300000
size_t cl_mw_watch_put(uint8_t *buf, int on, uint32_t beat_ms);
int cl_mw_watch_take(const uint8_t *d, size_t n, int *on, uint32_t *beat_ms);

/* a name that follows a fixed head of a frame: 0, or -1 when empty, longer than
 * CL_MW_STR_MAX or holding a NUL */
int cl_mw_name_take(const uint8_t *d, size_t n, size_t head, char out[CL_MW_STR_MAX + 1]);

#endif
