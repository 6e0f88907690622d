/* Weak absolute symbols, as nooks-cc defines its window symbol: a default the
 * loader's resolver overrides, as a strong definition would in a link. (They
 * are defined after their use, or the assembler would resolve the use.) */
extern char overridden[], kept[];
char *refs[2] = { overridden + 8, kept };
__asm__(".weak overridden\n.set overridden, 0x1234\n.weak kept\n.set kept, 0x40\n");
