/* An object with a sandboxed object's runtime state, as nooks-cc emits it. */
__attribute__((section(".nooks.state"))) long state[8] = { 1, 2 };
long counter = 3;
long *where(void) { return state; }
