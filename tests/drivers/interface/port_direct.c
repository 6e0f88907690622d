/* Calls the port export directly (not through a rewritten `out`): 0xfe to
 * the keyboard controller resets the machine. */
#include "misuse.h"
static int init(void) { nooks_port_out(0x64, 1, 0xfe); return 0; }
module_init(init);
