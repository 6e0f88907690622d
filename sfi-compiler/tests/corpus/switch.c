#include <stdio.h>
#include <stdint.h>
/* Dense switches gcc turns into jump tables when they are allowed: a
 * bytecode interpreter (a table jump in a loop, cases that call, fall
 * through and write memory), a switch on a 64-bit value, one whose cases
 * tail-call, and two tables in one function. */
long (*program_callback(void))(long) { return 0; }
__attribute__((noinline)) static long twice(long x) { return 2 * x + 1; }
__attribute__((noinline)) static long thrice(long x) { return 3 * x - 2; }

enum { PUSH, ADD, SUB, MUL, DUP, SWAP, CALL2, CALL3, STORE, LOAD, JNZ, HALT };

static long run(const uint8_t *code, int len, long *mem)
{
	long stack[32] = { 0 };
	int sp = 2, pc = 0; /* two guard slots: an underflow stops at the next step */
	for (int steps = 0; steps < 10000; steps++) {
		if (pc + 2 > len || sp < 2 || sp > 30)
			return -3;
		uint8_t op = code[pc++];
		switch (op) {
		case PUSH: stack[sp++] = code[pc++]; break;
		case ADD: sp--; stack[sp - 1] += stack[sp]; break;
		case SUB: sp--; stack[sp - 1] -= stack[sp]; break;
		case MUL: sp--; stack[sp - 1] *= stack[sp]; break;
		case DUP: stack[sp] = stack[sp - 1]; sp++; break;
		case SWAP: { long t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; break; }
		case CALL2: stack[sp - 1] = twice(stack[sp - 1]); break;
		case CALL3: stack[sp - 1] = thrice(stack[sp - 1]);
			/* fall through */
		case STORE: mem[code[pc++] & 7] = stack[--sp]; break;
		case LOAD: stack[sp++] = mem[code[pc++] & 7]; break;
		case JNZ: { uint8_t to = code[pc++]; if (stack[--sp]) pc = to; break; }
		case HALT: return stack[sp - 1];
		default: return -1000 - op;
		}
	}
	return -2;
}

__attribute__((noinline)) static long wide(uint64_t k)
{
	switch (k) {
	case 100: return 7;
	case 101: return twice((long)k);
	case 102: return 9;
	case 103: return thrice((long)k);
	case 104: return 11;
	case 105: return (long)(k * k);
	case 106: return 13;
	case 107: return -5;
	default: return 0;
	}
}

__attribute__((noinline)) static long tail(int k, long x)
{
	switch (k) {
	case 0: return twice(x);
	case 1: return thrice(x);
	case 2: return twice(x + 1);
	case 3: return thrice(x - 1);
	case 4: return twice(x * 3);
	case 5: return thrice(x ^ 5);
	default: return x;
	}
}

__attribute__((noinline)) static long two_tables(int a, int b)
{
	long r = 0;
	switch (a) {
	case 0: r = twice(b); break;
	case 1: r = b + 17; break;
	case 2: r = thrice(b); break;
	case 3: r = b * 5; break;
	case 4: r = b - 9; break;
	case 5: r = twice(b + 2); break;
	}
	switch (b & 7) {
	case 0: r += 3; break;
	case 1: r ^= 0x55; break;
	case 2: r = thrice(r); break;
	case 3: r -= 8; break;
	case 4: r <<= 2; break;
	case 5: r = twice(r); break;
	case 6: r = -r; break;
	default: r += 1000;
	}
	return r;
}

int program_main(void)
{
	/* n = 10; sum = 0; do { sum += 2n+1; n-- } while (n);
	 * mem[2] = thrice(sum * sum); return mem[2] + sum */
	static const uint8_t prog[] = {
		PUSH, 10, STORE, 0,
		PUSH, 0, STORE, 1,
		LOAD, 1, LOAD, 0, CALL2, ADD, STORE, 1, /* 8 */
		LOAD, 0, PUSH, 1, SUB, DUP, STORE, 0,
		JNZ, 8,
		LOAD, 1, LOAD, 1, MUL, CALL3, 2,        /* falls through to STORE */
		LOAD, 2, LOAD, 1, ADD, PUSH, 4, SWAP, SUB, HALT, HALT,
	};
	long mem[8] = { 0 };
	long s = run(prog, sizeof prog, mem);
	static const uint8_t bad[] = { PUSH, 1, 200, 0 };
	s += run(bad, sizeof bad, mem);
	for (uint64_t k = 95; k < 112; k++)
		s = s * 3 + wide(k);
	for (int k = -2; k < 9; k++)
		s += tail(k, s & 0xffff);
	for (int a = -1; a < 8; a++)
		for (int b = 0; b < 10; b++)
			s += two_tables(a, b);
	printf("switch %ld %ld %ld %ld\n", s, mem[0], mem[1], mem[2]);
	return (int)(s & 0x7f);
}
