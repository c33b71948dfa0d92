/* The test-only fault layer: parsing and the switch. Applying faults is in
 * transport.c, where the frames are. Off unless CLUSTERLUA_FAULTS=1, so a
 * production node cannot be talked into dropping traffic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int cl_fault_enabled(void) {
  const char *e = getenv("CLUSTERLUA_FAULTS");
  return e && strcmp(e, "1") == 0;
}

int cl_fault_active(const cl_fault *f) {
  return f->drop > 0 || f->delay_ms || f->blackhole || f->oneway_in || f->oneway_out || f->stall;
}

/* A connection needs both directions: under a one-way cut a real handshake never
 * completes (one side never hears the other), so no new connection may form either,
 * or a node that hears nothing would see its peers come back after each timeout. */
int cl_fault_cuts_handshake(const cl_fault *f) {
  return f && (f->blackhole || f->oneway_in || f->oneway_out);
}

int cl_fault_parse(const char *spec, cl_fault *f, char *err, size_t errlen) {
  if (!spec) spec = "";
  char buf[256];
  snprintf(buf, sizeof buf, "%s", spec);
  cl_fault nf = *f;
  char *save = NULL;
  int any = 0;
  for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    any = 1;
    char *end;
    if (strcmp(tok, "clear") == 0) {
      memset(&nf, 0, sizeof nf);
    } else if (strcmp(tok, "blackhole") == 0) {
      nf.blackhole = 1;
    } else if (strcmp(tok, "oneway_in") == 0) {
      nf.oneway_in = 1;
    } else if (strcmp(tok, "oneway_out") == 0) {
      nf.oneway_out = 1;
    } else if (strcmp(tok, "stall") == 0) {
      nf.stall = 1;
    } else if (strncmp(tok, "drop=", 5) == 0) {
      double d = strtod(tok + 5, &end);
      if (end == tok + 5 || *end || !(d >= 0 && d <= 1)) {
        snprintf(err, errlen, "fault \"%s\": drop takes a fraction 0..1", tok);
        return CL_EINVAL;
      }
      nf.drop = d;
    } else if (strncmp(tok, "delay=", 6) == 0) {
      unsigned long ms = strtoul(tok + 6, &end, 10);
      if (end == tok + 6 || *end || ms > 600000) {
        snprintf(err, errlen, "fault \"%s\": delay takes milliseconds 0..600000", tok);
        return CL_EINVAL;
      }
      nf.delay_ms = (uint32_t)ms;
    } else {
      snprintf(err, errlen,
               "unknown fault \"%s\" (expected drop=P, delay=MS, blackhole, oneway_in, oneway_out, stall, clear)",
               tok);
      return CL_EINVAL;
    }
  }
  if (!any) {
    snprintf(err, errlen, "empty fault spec");
    return CL_EINVAL;
  }
  *f = nf;
  return 0;
}
