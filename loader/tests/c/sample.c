/* A small driver-like object: globals, bss, rodata, COMMON-free statics,
 * function pointers in data, a static helper, and imports. */
extern long host_add(long a, long b);
extern void host_log(const char *msg);

static const char greeting[] = "hello from a loaded object";
long counter = 41;
static long scratch[64];

static long twice(long x) { return host_add(x, x); }
long bump(void) { return ++counter; }

struct ops { long (*op)(long); long (*get)(void); };
struct ops table = { twice, bump };

long entry(long x) {
    host_log(greeting);
    for (int i = 0; i < 64; i++) scratch[i] = i * x;
    long sum = 0;
    for (int i = 0; i < 64; i++) sum += scratch[i];
    return table.op(sum) + table.get();
}
