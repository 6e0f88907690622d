/* xchg into kernel memory. */
#include "misuse.h"
static int init(void) { __atomic_exchange_n((long *)TARGET, 0x41, __ATOMIC_SEQ_CST); return 0; }
module_init(init);
