/* The console page: embedded at build time, no file to install and nothing fetched from
 * elsewhere (edge machines often have no internet). Its one inline <style> and one
 * inline <script> are allowed by their SHA-256 in the Content-Security-Policy, so no
 * other script can run in the page, even one injected through a node name. */
#include "admin/console.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the page, NUL-terminated, between console_page and console_page_end */
__asm__(".section .rodata\n"
        ".global cl_console_page_bytes\n"
        ".type cl_console_page_bytes, @object\n"
        ".balign 16\n"
        "cl_console_page_bytes:\n"
        ".incbin \"runtime/admin/console.html\"\n"
        ".byte 0\n"
        ".global cl_console_page_end\n"
        "cl_console_page_end:\n"
        ".previous\n");
extern const char cl_console_page_bytes[];
extern const char cl_console_page_end[];

struct cl_console {
  char *page; /* with data-auth filled in; NULL until first asked for */
  size_t len;
  char headers[1024];
};

/* sha256-BASE64 of the text between open and close (the first of each), or -1 */
static int hash_of(const char *page, const char *open, const char *close, char *out, size_t cap) {
  const char *s = strstr(page, open);
  if (!s) return -1;
  s = strchr(s, '>');
  if (!s) return -1;
  s++;
  const char *e = strstr(s, close);
  if (!e) return -1;
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)s, (unsigned long long)(e - s));
  char b64[64];
  sodium_bin2base64(b64, sizeof b64, h, sizeof h, sodium_base64_VARIANT_ORIGINAL);
  snprintf(out, cap, "'sha256-%s'", b64);
  return 0;
}

size_t cl_console_page_size(void) { return (size_t)(cl_console_page_end - cl_console_page_bytes) - 1; }

static int prepare(cl_console *P, cl_admin *a);

/* The page is prepared on its first request: a node whose console nobody opens keeps
 * nothing of it in memory (the embedded bytes stay untouched on disk-backed pages). */
static void h_console(cl_admin *a, cl_admin_req *req, void *ud) {
  cl_console *P = ud;
  if (!P->page && prepare(P, a) != 0) {
    cl_admin_reply_error(a, req->priv, 500, "the console page could not be prepared");
    return;
  }
  cl_admin_reply_headers(a, req->priv, 200, "text/html; charset=utf-8", P->headers, P->page, P->len);
}

cl_console *cl_console_start(cl_admin *a) {
  cl_console *P = calloc(1, sizeof *P);
  if (!P) return NULL;
  if (cl_admin_route_public(a, "/_console", h_console, P) != 0) {
    free(P);
    return NULL;
  }
  return P;
}

static int prepare(cl_console *P, cl_admin *a) {
  if (sodium_init() < 0) return -1;
  const char *src = cl_console_page_bytes;
  char script[80], style[80];
  if (hash_of(src, "<script", "</script>", script, sizeof script) != 0 ||
      hash_of(src, "<style", "</style>", style, sizeof style) != 0)
    return -1;
  /* the page learns whether to ask for a token without a request that would fail */
  static const char mark[] = "data-auth=\"none\"";
  const char *m = strstr(src, mark);
  const char *with = cl_admin_has_token(a) ? "data-auth=\"token\"" : mark;
  size_t srclen = cl_console_page_size();
  P->page = malloc(srclen + 16);
  if (!P->page) return -1;
  if (m) {
    size_t pre = (size_t)(m - src);
    memcpy(P->page, src, pre);
    memcpy(P->page + pre, with, strlen(with));
    size_t rest = srclen - pre - (sizeof mark - 1);
    memcpy(P->page + pre + strlen(with), m + sizeof mark - 1, rest);
    P->len = pre + strlen(with) + rest;
  } else {
    memcpy(P->page, src, srclen);
    P->len = srclen;
  }
  snprintf(P->headers, sizeof P->headers,
           "Content-Security-Policy: default-src 'none'; script-src %s; style-src %s; connect-src 'self'; "
           "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
           "X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
           script, style);
  return 0;
}

void cl_console_stop(cl_console *P) {
  if (!P) return;
  free(P->page);
  free(P);
}
