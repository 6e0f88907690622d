/* memcpy into kernel memory through the export. */
#include "misuse.h"
static const u8 junk[16] = { 0xde, 0xad };
static int init(void) { memcpy(TARGET, junk, sizeof(junk)); return 0; }
module_init(init);
