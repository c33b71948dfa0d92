/* The node on the control loop: routes commands from Lua to the transport and the
 * election, and their events back. A plain script starts none of it. */
#include <stdlib.h>

#include "control.h"

static void node_command(cl_control *c, cl_msg *m, void *ud) {
  (void)c;
  (void)ud;
  free(m);
}

const cl_control_hooks cl_node_hooks = {
    .start = NULL,
    .stop = NULL,
    .command = node_command,
    .event = NULL,
};
