/* Node names: NAME@HOST[:PORT], and the short name (NAME) that stands for a node when
 * it is unambiguous. Pure functions, used by every layer (the transport, the election,
 * the glue, and Lua through clusterlua.c.core), so the same string is read the same way
 * everywhere: one parser, one short-name rule. */
#ifndef CL_NAME_H
#define CL_NAME_H
#include <stddef.h>
#include <stdint.h>

#define CL_DEFAULT_PORT 4370
#define CL_NODE_NAME_MAX 255      /* whole "name@host:port" */
#define CL_NODE_SHORT_NAME_MAX 63 /* the part before '@' */

typedef struct {
  char full[CL_NODE_NAME_MAX + 1];        /* normalised: always with ":PORT" */
  char name[CL_NODE_SHORT_NAME_MAX + 1];  /* the short name, before '@' */
  char host[CL_NODE_NAME_MAX + 1];        /* as written (IPv6 without brackets) */
  uint16_t port;
} cl_node_name;

/* Parses and normalises a node name ("node1@10.0.0.1" -> "node1@10.0.0.1:4370";
 * IPv6 hosts in brackets: "n@[::1]:4371"). Short name: [A-Za-z0-9_.-]{1,63}; the
 * whole name at most 255 characters, normalised. Returns 0, or UV_EINVAL (the
 * transport's CL_EINVAL) with a message in err saying what is wrong. */
int cl_node_name_parse(const char *s, cl_node_name *out, char *err, size_t errlen);

/* 1 when `given` names the node called `full`: the same full name, or a short name
 * (no '@') equal to full's part before '@'. Whether a short name is unambiguous is the
 * caller's to judge, as only it knows the other candidates. */
int cl_node_name_matches(const char *given, const char *full);

#endif
