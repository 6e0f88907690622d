//! `--isolation sfi` on the host: sandboxed objects behave like the originals
//! while the window is open, and each check stops the program (a trap the
//! kernel turns into a domain fault; here a SIGILL the harness catches) with
//! the right `fault_kind` when the window is closed: a wild store, a store a
//! grant allows, a store into the object's own data that needs no check, an
//! entry point returning with a lock held or with the virtual
//! interrupt flag off, and an indirect call to a forged target.

use std::path::PathBuf;
use std::process::Command;

const PROG: &str = r#"
extern void lock_acquire(void);
/* In this order: a window ending where one array ends leaves out the ones after it. */
struct arena { long inside[4], outside[4], small[10]; } m;
#define inside m.inside
#define outside m.outside
#define small m.small
void poke(long *p, long v) { *p = v; }
long peek(long *p) { return *p; }
void take_lock(void) { lock_acquire(); }
void irq_off(void) { __asm__ volatile("cli"); }
void irq_balanced(void) { unsigned long f; __asm__ volatile("pushfq; popq %0; cli" : "=r"(f)); poke(&inside[3], 7); __asm__ volatile("pushq %0; popfq" :: "r"(f)); }
long call_through(long (*f)(long), long x) { return f(x); }
static long twice(long x) { return 2 * x; }
long call_own(long x) { long (*volatile f)(long) = twice; return f(x); }
long ring[64];
void fill(long v) { for (int i = 0; i < 64; i++) ring[i] = v + i; }
/* A pointer from `ring` to `ring + 64`: two addresses of one symbol. */
void fill_ptr(long v) { for (long *p = ring; p != ring + 64; p++) *p = v ^ (long)p; }
void fill_until(long v) { for (long i = 0; i < 64; i++) { ring[i] = v; if (i == v) break; } }
long src2[64];
unsigned char bsrc2[100], bdst2[100];
/* gcc counts the first inner loop from `it` to `it + 64`, kept in two registers. */
long shifted(long iters)
{
	long acc = 0;
	for (long it = 0; it < iters; it++) {
		for (int i = 0; i < 64; i++) ring[i] = src2[(i + it) & 63] + 1;
		for (int i = 0; i < 100; i++) bdst2[i] = bsrc2[i] ^ (unsigned char)it;
		acc += ring[it & 63] + bdst2[it % 100];
	}
	return acc;
}
static long table[16];
void put_masked(unsigned i, long v) { table[i & 15] = v; }
long get_masked(unsigned i) { return table[i & 15]; }
void put_small(unsigned i, long v) { small[i & 0xfffff] = v; }
/* Counters behind a pointer that does not vary in the loop (a driver's
 * `dev->stats` while it walks a ring), updated on every iteration or on one. */
void tally(long *s, long n) { for (long i = 0; i < n; i++) { ring[i & 63] = i + 1; s[0]++; s[1] += i; } }
void tally_some(long *s, long n) { for (long i = 0; i < n; i++) { ring[i & 63] = i + 1; if (i == 3) s[0]++; } }
"#;

const MAIN: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
struct sfi { unsigned long lo, hi; unsigned int vif, locks; unsigned long fault_addr, fault_kind, fault_site, ngrants, grants[16][2]; };
extern struct sfi __nooks_sfi;
/* What the kernel does when it sets a domain's window. The checks' bound is
 * fixed at link time: `__nooks_window` is minus the window's lowest address
 * (this program is linked once per window, with --defsym; every window spans
 * SPAN bytes, so one that ends at an array's end starts SPAN bytes below,
 * modulo 2^64 as the check computes). The slow path reads the state, which
 * must agree. Which of the program's arrays lie before the end is fixed by
 * `struct arena`. */
#define SPAN (28ul << 20)
extern char __nooks_window[];
static void confine(void) { __nooks_sfi.lo = -(unsigned long)__nooks_window; __nooks_sfi.hi = __nooks_sfi.lo + SPAN; }
static void open_window(void) { __nooks_sfi.lo = 0; __nooks_sfi.hi = ~0ul; }
extern struct arena { long inside[4], outside[4], small[10]; } m;
#define inside m.inside
#define outside m.outside
extern long ring[64];
void fill(long v); void fill_until(long v); void fill_ptr(long v); long shifted(long iters); extern unsigned char bdst2[100];
void put_masked(unsigned i, long v); long get_masked(unsigned i); void put_small(unsigned i, long v);
void tally(long *s, long n); void tally_some(long *s, long n);
void poke(long *p, long v); long peek(long *p); void take_lock(void); void irq_off(void); void irq_balanced(void);
long call_through(long (*f)(long), long x); long call_own(long x);
void lock_acquire(void) { __nooks_sfi.locks++; }
static long native(long x) { return x + 1; }
static void on_trap(int sig) { (void)sig; printf("trap kind=%lu addr_ok=%d ring=%ld\n", __nooks_sfi.fault_kind, __nooks_sfi.fault_addr == (unsigned long)&outside[2], ring[0]); fflush(stdout); _exit(42); }
int main(int argc, char **argv)
{
	signal(SIGILL, on_trap);
	const char *what = argc > 1 ? argv[1] : "";
	/* Open window: everything behaves as before. */
	poke(&outside[0], 1);
	if (!strcmp(what, "open")) { printf("open %ld %ld\n", peek(&outside[0]), call_own(21)); return 0; }
	/* Confine the window to inside[]. */
	confine();
	if (!strcmp(what, "inside")) { poke(&inside[2], 9); printf("inside %ld\n", inside[2]); return 0; }
	if (!strcmp(what, "wild")) { poke(&outside[2], 9); printf("wild store went through\n"); return 0; }
	/* A loop's stores, checked once before it: all inside, or one past the end. */
	if (!strcmp(what, "loop")) { confine(); fill(5); printf("filled %ld %ld\n", ring[0], ring[63]); return 0; }
	if (!strcmp(what, "loop-ptr-over")) { confine(); fill_ptr(5); printf("overflow went through\n"); return 0; }
	if (!strcmp(what, "loop-over")) { confine(); fill(5); printf("overflow went through\n"); return 0; }
	/* A loop that may stop early keeps its checks inside: no trap for the end it never reaches. */
	if (!strcmp(what, "loop-break")) { confine(); fill_until(5); printf("stopped %ld %ld\n", ring[5], ring[6]); return 0; }
	/* Stores the bounds analysis proves land in the object's own data carry
	 * no check (the loader puts that data in the window; here it is not). */
	if (!strcmp(what, "own-data")) { put_masked(21, 8); printf("own %ld\n", get_masked(5)); return 0; }
	/* A mask that lets the index past the object's data keeps the check. */
	if (!strcmp(what, "own-data-over")) { put_small(3, 8); printf("unchecked store to small[]\n"); return 0; }
	/* The same, with the loop's bound in a second register of the outer loop
	 * (bdst2 granted): checked once, before the loop, so nothing is stored. */
	if (!strcmp(what, "linked") || !strcmp(what, "linked-over")) {
		confine();
		__nooks_sfi.grants[0][0] = (unsigned long)&bdst2[0]; __nooks_sfi.grants[0][1] = (unsigned long)&bdst2[100]; __nooks_sfi.ngrants = 1;
		shifted(3); printf("linked %ld %ld\n", ring[0], ring[63]); return 0;
	}
	/* A loop-invariant store's check, before the loop: inside the window it
	 * passes; outside, it stops the loop before its first store. One the loop
	 * may skip keeps its check inside, and stops where it is reached. */
	if (!strcmp(what, "invariant")) { confine(); tally(&outside[2], 5); printf("tally %ld %ld\n", outside[2], outside[3]); return 0; }
	if (!strcmp(what, "invariant-over")) { tally(&outside[2], 5); printf("tally went through\n"); return 0; }
	if (!strcmp(what, "invariant-some")) { tally_some(&outside[2], 5); printf("tally went through\n"); return 0; }
	if (!strcmp(what, "grant")) { __nooks_sfi.grants[0][0] = (unsigned long)&outside[2]; __nooks_sfi.grants[0][1] = (unsigned long)&outside[3]; __nooks_sfi.ngrants = 1; poke(&outside[2], 9); printf("granted %ld\n", outside[2]); return 0; }
	open_window();
	if (!strcmp(what, "lock")) { take_lock(); printf("returned holding a lock\n"); return 0; }
	if (!strcmp(what, "irq")) { irq_off(); printf("returned with interrupts off\n"); return 0; }
	if (!strcmp(what, "irq-balanced")) { irq_balanced(); printf("balanced %ld vif=%lu\n", inside[3], __nooks_sfi.vif); return 0; }
	if (!strcmp(what, "forged")) { printf("forged %ld\n", call_through(native, 1)); return 0; }
	return 1;
}
"#;

/// The windows the scenarios run in: where each ends, a symbol and an
/// offset (`None`: the object's default, a window from address 0 that
/// `open_window` widens to everything through the slow path).
const WINDOWS: [(&str, Option<(&str, u64)>); 5] = [
    ("open", None),
    ("inside", Some(("m", 0x20))),
    ("outside", Some(("m", 0x40))),
    ("ring63", Some(("ring", 0x1f8))),
    ("ring64", Some(("ring", 0x200))),
];

/// Compiles the program once and links it once per window; returns the
/// executables by window.
fn build() -> std::collections::HashMap<&'static str, PathBuf> {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sfi");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("prog.c"), PROG).unwrap();
    std::fs::write(d.join("main.c"), MAIN).unwrap();
    let obj = d.join("prog.o");
    let o = Command::new(env!("CARGO_BIN_EXE_nooks-cc"))
        .arg("-c")
        .arg(d.join("prog.c"))
        .arg("-o")
        .arg(&obj)
        .args(["--isolation", "sfi", "-O2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut exes = std::collections::HashMap::new();
    for (name, end) in WINDOWS {
        let exe = d.join(format!("prog-{name}"));
        let mut link = Command::new("gcc");
        link.arg("-no-pie").arg(d.join("main.c")).arg(&obj);
        if let Some((symbol, offset)) = end {
            // Minus the window's start, SPAN - (symbol + offset), with one
            // subtraction (ld reads `a-b-c` as `a-(b-c)`).
            link.arg(format!(
                "-Wl,--defsym=__nooks_window={:#x}-{symbol}",
                nooks_policy::abi::state::SPAN - offset
            ));
        }
        let st = link.arg("-o").arg(&exe).status().unwrap();
        assert!(st.success());
        exes.insert(name, exe);
    }
    exes
}

fn run(exe: &PathBuf, what: &str) -> (Option<i32>, String) {
    let o = Command::new(exe).arg(what).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    )
}

#[test]
fn checks_stop_exactly_what_they_should() {
    // Each scenario runs in the window its link fixed (see `WINDOWS`).
    let exe = build();
    // The emulated stack is outside `inside[]`, so confinement tests only call
    // functions whose frames do not store to the emulated stack at -O2 (poke).
    assert_eq!(run(&exe["open"], "open"), (Some(0), "open 1 42".into()));
    assert_eq!(run(&exe["inside"], "inside"), (Some(0), "inside 9".into()));
    assert_eq!(
        run(&exe["inside"], "wild"),
        (Some(42), "trap kind=1 addr_ok=1 ring=0".into())
    );
    assert_eq!(run(&exe["inside"], "grant"), (Some(0), "granted 9".into()));
    assert_eq!(run(&exe["inside"], "own-data"), (Some(0), "own 8".into()));
    assert_eq!(
        run(&exe["inside"], "own-data-over"),
        (Some(42), "trap kind=1 addr_ok=0 ring=0".into())
    );
    assert_eq!(run(&exe["ring64"], "loop"), (Some(0), "filled 5 68".into()));
    assert_eq!(
        run(&exe["outside"], "invariant"),
        (Some(0), "tally 5 10".into())
    );
    assert_eq!(
        run(&exe["inside"], "invariant-over"),
        (Some(42), "trap kind=1 addr_ok=1 ring=0".into())
    );
    assert_eq!(
        run(&exe["inside"], "invariant-some"),
        (Some(42), "trap kind=1 addr_ok=1 ring=1".into())
    );
    assert_eq!(
        run(&exe["ring63"], "loop-break"),
        (Some(0), "stopped 5 0".into())
    );
    assert_eq!(
        run(&exe["ring64"], "linked"),
        (Some(0), "linked 1 1".into())
    );
    assert_eq!(
        run(&exe["ring63"], "linked-over"),
        (Some(42), "trap kind=1 addr_ok=0 ring=0".into())
    );
    // The loop's one check runs before the loop: nothing was stored.
    assert_eq!(
        run(&exe["ring63"], "loop-ptr-over"),
        (Some(42), "trap kind=1 addr_ok=0 ring=0".into())
    );
    assert_eq!(
        run(&exe["ring63"], "loop-over"),
        (Some(42), "trap kind=1 addr_ok=0 ring=0".into())
    );
    assert_eq!(
        run(&exe["inside"], "lock"),
        (Some(42), "trap kind=2 addr_ok=0 ring=0".into())
    );
    assert_eq!(
        run(&exe["inside"], "irq"),
        (Some(42), "trap kind=3 addr_ok=0 ring=0".into())
    );
    assert_eq!(
        run(&exe["inside"], "irq-balanced"),
        (Some(0), "balanced 7 vif=1".into())
    );
    assert_eq!(
        run(&exe["inside"], "forged"),
        (Some(42), "trap kind=4 addr_ok=0 ring=0".into())
    );
}
