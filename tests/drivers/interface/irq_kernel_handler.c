/* request_irq with a kernel function as the handler: the kernel would call
 * kernel code with the driver's arguments from its interrupt path. */
#include "misuse.h"
static int init(void) { return request_irq(11, (irq_handler_t)(void *)printk, IRQF_SHARED, "bad", NULL); }
module_init(init);
