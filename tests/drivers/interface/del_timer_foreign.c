/* del_timer_sync of a timer the driver never set up. */
#include "misuse.h"
static struct timer_list t;
static int init(void) { del_timer_sync(&t); return 0; }
module_init(init);
