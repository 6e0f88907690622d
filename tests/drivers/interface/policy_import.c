/* Imports kfree, which its policy (policy_import.policy) does not allow. */
#include "misuse.h"
static int init(void) { printk("policy_import: loaded\n"); kfree(NULL); return 0; }
module_init(init);
