/* mod_timer on kernel memory: an 8-byte write-what-where (the expiry). */
#include "misuse.h"
static int init(void) { mod_timer(TARGET, 0x4141414141414141ull); return 0; }
module_init(init);
