/* A store through NULL plus a field offset. */
#include <nooks/driver.h>
struct state { char pad[0x40]; long counter; };
static struct state *volatile current_state; /* never set: NULL */
static int init(void) { current_state->counter = 1; return 0; }
module_init(init);
