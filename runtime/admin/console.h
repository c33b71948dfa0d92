/* GET /_console: the live cluster console, one self-contained page embedded in the
 * binary (runtime/admin/console.html), served without the token (the page asks for it)
 * under a strict Content-Security-Policy. */
#ifndef CL_ADMIN_CONSOLE_H
#define CL_ADMIN_CONSOLE_H
#include <stddef.h>

#include "admin/admin.h"

/* The page as this endpoint serves it (prepared on first use). */
typedef struct cl_console cl_console;

/* Registers the route on a (NULL: out of memory). */
cl_console *cl_console_start(cl_admin *a);
void cl_console_stop(cl_console *c); /* frees c (NULL: nothing) */
/* The page's size in bytes, as embedded */
size_t cl_console_page_size(void);

#endif
