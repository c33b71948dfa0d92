/* GET /_console: the live cluster console, one self-contained page embedded in the
 * binary (runtime/admin/console.html), served without the token (the page asks for it)
 * under a strict Content-Security-Policy. */
#ifndef CL_ADMIN_CONSOLE_H
#define CL_ADMIN_CONSOLE_H
#include <stddef.h>

#include "admin/admin.h"

/* Registers the route (0, or -1 out of memory); the page is prepared on first use. */
int cl_console_start(cl_admin *a);
void cl_console_stop(void);
/* The page's size in bytes, as embedded */
size_t cl_console_page_size(void);

#endif
