/* request_irq with an address in the middle of its own function: the call
 * would skip the function's start (and a rewritten entry's checks). */
#include "misuse.h"
static irqreturn_t handler(int irq, void *dev_id) { (void)irq; (void)dev_id; return IRQ_NONE; }
static int init(void) { return request_irq(11, (irq_handler_t)((char *)handler + mid), IRQF_SHARED, "bad", NULL); }
module_init(init);
