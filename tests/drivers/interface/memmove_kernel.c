/* memmove into kernel memory through the export. */
#include "misuse.h"
static u8 junk[16] = { 0xbe, 0xef };
static int init(void) { memmove(TARGET, junk, sizeof(junk)); return 0; }
module_init(init);
