/* A call through a forged function pointer into kernel text: by default
 * 0x10000 past its start (ordinary kernel code, not the gates); the pks
 * test aims it at a kernel function that stores (-DFORGED_TARGET=...). */
#include <nooks/driver.h>
#ifndef FORGED_TARGET
#define FORGED_TARGET 0xffffffff80110000ul
#endif
static volatile unsigned long target = FORGED_TARGET;
static int init(void) { ((void (*)(void))target)(); return 0; }
module_init(init);
