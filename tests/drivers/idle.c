/* A driver that loads and does nothing: it holds a domain, and under pks a key. */
#include <nooks/driver.h>
static int init(void) { return 0; }
module_init(init);
