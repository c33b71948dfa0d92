/* Node names: NAME@HOST[:PORT] (see name.h). */
#include "name.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int bad(char *err, size_t errlen, const char *s, const char *why) {
  if (err && errlen) snprintf(err, errlen, "bad node name \"%.80s\": %s", s ? s : "(null)", why);
  return UV_EINVAL;
}

static int name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

static int host_char(char c) { return name_char(c) || c == ':' || c == '%'; }

int cl_node_name_parse(const char *s, cl_node_name *out, char *err, size_t errlen) {
  cl_node_name tmp;
  memset(&tmp, 0, sizeof tmp);
  if (!s || !*s) return bad(err, errlen, s, "empty");
  size_t total = strlen(s);
  if (total > CL_NODE_NAME_MAX) return bad(err, errlen, s, "longer than 255 characters");
  const char *at = strchr(s, '@');
  if (!at) return bad(err, errlen, s, "expected NAME@HOST[:PORT]");
  size_t nl = (size_t)(at - s);
  if (nl == 0) return bad(err, errlen, s, "empty name before '@'");
  if (nl >= sizeof tmp.name) return bad(err, errlen, s, "name before '@' longer than 63 characters");
  for (size_t i = 0; i < nl; i++)
    if (!name_char(s[i])) return bad(err, errlen, s, "name may contain only A-Z a-z 0-9 _ - .");
  memcpy(tmp.name, s, nl);
  const char *h = at + 1, *port = NULL;
  size_t hl;
  if (*h == '[') {
    const char *close = strchr(h, ']');
    if (!close) return bad(err, errlen, s, "missing ']' after IPv6 address");
    hl = (size_t)(close - h - 1);
    memcpy(tmp.host, h + 1, hl);
    if (close[1] == ':')
      port = close + 2;
    else if (close[1])
      return bad(err, errlen, s, "unexpected text after ']'");
  } else {
    const char *colon = strrchr(h, ':');
    if (colon && strchr(h, ':') != colon)
      return bad(err, errlen, s, "IPv6 addresses must be in brackets: name@[::1]:4370");
    hl = colon ? (size_t)(colon - h) : strlen(h);
    memcpy(tmp.host, h, hl);
    if (colon) port = colon + 1;
  }
  if (hl == 0) return bad(err, errlen, s, "empty host after '@'");
  for (size_t i = 0; i < hl; i++)
    if (!host_char(tmp.host[i])) return bad(err, errlen, s, "host contains an invalid character");
  unsigned long p = CL_DEFAULT_PORT;
  if (port) {
    if (!*port) return bad(err, errlen, s, "empty port after ':'");
    char *end;
    for (const char *q = port; *q; q++)
      if (*q < '0' || *q > '9') return bad(err, errlen, s, "port must be a number");
    p = strtoul(port, &end, 10);
    if (p == 0 || p > 65535) return bad(err, errlen, s, "port must be 1..65535");
  }
  tmp.port = (uint16_t)p;
  int is6 = strchr(tmp.host, ':') != NULL;
  int n = snprintf(tmp.full, sizeof tmp.full, is6 ? "%s@[%s]:%u" : "%s@%s:%u", tmp.name, tmp.host,
                   tmp.port);
  if (n < 0 || (size_t)n >= sizeof tmp.full) return bad(err, errlen, s, "longer than 255 characters");
  if (out) *out = tmp;
  return 0;
}

int cl_node_name_matches(const char *given, const char *full) {
  if (strcmp(given, full) == 0) return 1;
  if (strchr(given, '@')) return 0;
  size_t n = strlen(given);
  return n > 0 && strncmp(given, full, n) == 0 && full[n] == '@';
}
