//! nooks-cc as a user meets it: the compiler-driver mode, bad input of every
//! kind (a clear error naming function, offset, source line and instruction;
//! exit status 1; never a panic), DWARF that maps rewritten code back to the
//! source, and golden `--emit clif` output for small functions
//! (re-bless with `NOOKS_BLESS=1` after an intended change, and review the diff).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nooks_cc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nooks-cc"))
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(d: &Path, name: &str, text: &str) -> PathBuf {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn gcc_c(src: &Path, out: &Path, flags: &[&str]) {
    let st = Command::new("gcc")
        .args(["-c", "-g", "-fno-pic", "-mgeneral-regs-only"])
        .args(flags)
        .arg(src)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `nooks-cc rewrite --isolation <isolation> -o <out> <obj>`.
fn rewrite_cmd(obj: &Path, out: &Path, isolation: &str) -> Output {
    nooks_cc()
        .args(["rewrite", "--isolation", isolation, "-o"])
        .arg(out)
        .arg(obj)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit status; stderr: {e}");
    assert!(!e.contains("panicked"), "nooks-cc panicked: {e}");
    // Either the driver's own errors, or a rewrite error in the compilers'
    // `location: error: ...` form.
    assert!(
        e.starts_with("nooks-cc: error:")
            || e.lines().next().is_some_and(|l| l.contains(": error: ")),
        "{e}"
    );
    e
}

#[test]
fn compiler_driver_mode_builds_and_rewrites() {
    let d = dir("driver");
    let src = write(&d, "f.c", "int twice(int x) { return 2 * x; }\n");
    let out = d.join("f.o");
    let o = nooks_cc()
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("-O2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let nm = Command::new("nm").arg(&out).output().unwrap();
    let syms = String::from_utf8_lossy(&nm.stdout);
    // Nothing rewritten calls `twice`: one body, entered natively.
    assert!(
        syms.contains(" T twice")
            && !syms.contains("twice.nooks_inner")
            && syms.contains("__nooks_estack"),
        "{syms}"
    );
}

#[test]
fn privileged_instructions_are_refused_with_their_location() {
    let d = dir("privileged");
    let src = write(
        &d,
        "p.c",
        "void quiet(void)\n{\n\t__asm__ volatile(\"cli\");\n}\nint halt(int x)\n{\n\tif (x)\n\t\t__asm__ volatile(\"hlt\");\n\treturn x;\n}\n",
    );
    let obj = d.join("p.o");
    gcc_c(&src, &obj, &["-O2"]);
    let o = nooks_cc()
        .arg("rewrite")
        .arg(&obj)
        .arg("-o")
        .arg(d.join("out.o"))
        .output()
        .unwrap();
    let e = assert_clean_failure(&o);
    assert!(e.contains("unsupported instruction in quiet+0x"), "{e}");
    assert!(e.contains("p.c:3"), "source line: {e}");
    assert!(e.contains("`cli`"), "disassembly: {e}");
    assert!(!d.join("out.o").exists(), "no output on error");
}

#[test]
fn bad_files_are_clear_errors() {
    let d = dir("bad");
    let garbage = write(&d, "garbage.o", "this is not an object file");
    let e = assert_clean_failure(
        &nooks_cc()
            .arg("rewrite")
            .arg(&garbage)
            .arg("-o")
            .arg(d.join("x.o"))
            .output()
            .unwrap(),
    );
    assert!(e.contains("not an object file"), "{e}");

    let src = write(&d, "m.c", "int main(void) { return 0; }\n");
    let exe = d.join("m");
    assert!(
        Command::new("gcc")
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .status()
            .unwrap()
            .success()
    );
    let e = assert_clean_failure(
        &nooks_cc()
            .arg("rewrite")
            .arg(&exe)
            .arg("-o")
            .arg(d.join("x.o"))
            .output()
            .unwrap(),
    );
    assert!(e.contains("not relocatable"), "{e}");

    let obj = d.join("m.o");
    gcc_c(&src, &obj, &[]);
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[18] = 183; // e_machine = AArch64
    let arm = write(&d, "arm.o", "");
    std::fs::write(&arm, &bytes).unwrap();
    let e = assert_clean_failure(
        &nooks_cc()
            .arg("rewrite")
            .arg(&arm)
            .arg("-o")
            .arg(d.join("x.o"))
            .output()
            .unwrap(),
    );
    assert!(e.contains("not x86-64"), "{e}");

    let bytes = std::fs::read(&obj).unwrap();
    for cut in [1, 64, bytes.len() / 2, bytes.len() - 1] {
        let t = d.join(format!("trunc{cut}.o"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        assert_clean_failure(
            &nooks_cc()
                .arg("rewrite")
                .arg(&t)
                .arg("-o")
                .arg(d.join("x.o"))
                .output()
                .unwrap(),
        );
    }
}

#[test]
fn metadata_records_how_the_object_was_made() {
    let d = dir("metadata");
    let src = write(
        &d,
        "f.c",
        "extern int g(int);\nint f(int x) { return g(x) + 1; }\n",
    );
    for (iso, checks) in [("none", false), ("sfi", true)] {
        let obj = d.join(format!("f.{iso}.o"));
        let o = nooks_cc()
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .arg("--isolation")
            .arg(iso)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let dump = Command::new("readelf")
            .arg("-p")
            .arg(".nooks")
            .arg(&obj)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&dump.stdout);
        assert!(
            text.contains(&format!("isolation {iso}"))
                && text.contains("entries f")
                && text.contains("imports g"),
            "{text}"
        );
        let nm = String::from_utf8_lossy(&Command::new("nm").arg(&obj).output().unwrap().stdout)
            .into_owned();
        assert_eq!(nm.contains("__nooks_sfi"), checks, "{nm}");
    }
}

#[test]
fn dwarf_maps_rewritten_code_to_source_lines() {
    let d = dir("dwarf");
    let src = write(
        &d,
        "lines.c",
        "long acc;\n__attribute__((noinline)) void step(long x)\n{\n\tacc += x * 3;\n\tif (acc > 100)\n\t\tacc = 0;\n}\nvoid run(long n)\n{\n\twhile (n--)\n\t\tstep(n);\n}\n",
    );
    let obj = d.join("lines.o");
    let o = nooks_cc()
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .arg("-O1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Every source line the original object's code maps to, the rewritten code maps to.
    let plain = d.join("plain.o");
    gcc_c(&src, &plain, &["-O1"]);
    let lines_of = |o: &Path| -> std::collections::BTreeSet<String> {
        let dump = Command::new("objdump").arg("-dl").arg(o).output().unwrap();
        String::from_utf8_lossy(&dump.stdout)
            .lines()
            .filter_map(|l| l.split("lines.c:").nth(1))
            .map(|n| n.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    let (want, got) = (lines_of(&plain), lines_of(&obj));
    assert!(want.len() >= 3, "{want:?}");
    assert_eq!(
        want, got,
        "source lines of the original vs the rewritten object"
    );
    // Both kinds of body — an inner entry (`run` calls `step`) and one
    // entered natively (nothing rewritten calls `run`) — begin on the line
    // the original function begins on.
    let line_at = |o: &Path, name: &str| -> String {
        let nm = Command::new("nm").arg(o).output().unwrap();
        let nm = String::from_utf8_lossy(&nm.stdout);
        let addr = nm
            .lines()
            .find(|l| l.ends_with(name))
            .map(|l| l[..16].to_string())
            .unwrap_or_else(|| panic!("{name} in {nm}"));
        let a2l = Command::new("addr2line")
            .arg("-e")
            .arg(o)
            .arg(format!("0x{addr}"))
            .output()
            .unwrap();
        let loc = String::from_utf8_lossy(&a2l.stdout).trim().to_string();
        assert!(loc.contains("lines.c:"), "addr2line {name}: {loc}");
        loc
    };
    assert_eq!(line_at(&obj, " step.nooks_inner"), line_at(&plain, " step"));
    assert_eq!(line_at(&obj, " T run"), line_at(&plain, " T run"));
}

#[test]
fn golden_clif() {
    let d = dir("golden");
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let cases = [
        (
            "add_flags",
            "none",
            "long add_flags(long a, long b) { return a + b < a ? -1 : a + b; }\n",
        ),
        (
            "store_byte",
            "none",
            "void store_byte(char *p, int i, char v) { p[i] = v; }\n",
        ),
        (
            "call_import",
            "none",
            "extern int other(int);\nint call_import(int x) { return other(x + 1) * 2; }\n",
        ),
        (
            "store_byte_sfi",
            "sfi",
            "void store_byte(char *p, int i, char v) { p[i] = v; }\n",
        ),
        (
            "call_pointer_sfi",
            "sfi",
            "int call_pointer(int (*f)(int), int x) { return f(x) + 1; }\n",
        ),
    ];
    let bless = std::env::var_os("NOOKS_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, iso, code) in cases {
        let src = write(&d, &format!("{name}.c"), code);
        let obj = d.join(format!("{name}.o"));
        gcc_c(
            &src,
            &obj,
            &[
                "-O2",
                "-mno-red-zone",
                "-fno-asynchronous-unwind-tables",
                "-fcf-protection=none",
            ],
        );
        let o = nooks_cc()
            .arg("rewrite")
            .arg(&obj)
            .arg("-o")
            .arg(d.join("out.o"))
            .args(["--emit", "clif", "--isolation", iso])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let clif = String::from_utf8_lossy(&o.stdout).into_owned();
        let path = golden.join(format!("{name}.clif"));
        if bless {
            std::fs::write(&path, &clif).unwrap();
        } else if std::fs::read_to_string(&path)
            .map(|g| g != clif)
            .unwrap_or(true)
        {
            stale.push(format!(
                "{name}: differs from {} (NOOKS_BLESS=1 to accept)\n{clif}",
                path.display()
            ));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

/// A store in a loop that the loop's next iteration reads, overwritten by a
/// store after the loop: Cranelift 0.135's dead-store elimination removed it
/// (found by csmith, seed 795834314 at -O2); `params::guard_loop_exits` keeps
/// it.
#[test]
fn a_store_the_next_iteration_reads_survives_a_store_after_the_loop() {
    let d = dir("loop-store");
    let asm = write(
        &d,
        "f.s",
        "\t.text\n\t.globl f\n\t.type f,@function\nf:\n\tsub $24,%rsp\n\tmovq $0,(%rsp)\n\
         \tmovl $0,8(%rsp)\n1:\tmov (%rsp),%rax\n\tmov 8(%rsp),%ecx\n\taddq $0x4b,(%rsp)\n\
         \ttest %ecx,%ecx\n\tjne 2f\n\tmovl $1,8(%rsp)\n\tjmp 1b\n2:\tmovq $7,(%rsp)\n\
         \tadd $24,%rsp\n\tret\n\t.size f, .-f\n\t.section .note.GNU-stack,\"\",@progbits\n",
    );
    let main = write(
        &d,
        "main.c",
        "#include <stdio.h>\nlong f(void);\nint main(void) { printf(\"%ld\\n\", f()); return 0; }\n",
    );
    let obj = d.join("f.o");
    gcc_c(&asm, &obj, &[]);
    let rw = d.join("f.rw.o");
    let o = nooks_cc()
        .arg("rewrite")
        .arg(&obj)
        .arg("-o")
        .arg(&rw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for (object, name) in [(&obj, "native"), (&rw, "rewritten")] {
        let exe = d.join(name);
        let st = Command::new("gcc")
            .arg("-no-pie")
            .arg(&main)
            .arg(object)
            .arg("-o")
            .arg(&exe)
            .status()
            .unwrap();
        assert!(st.success());
        let out = Command::new(&exe).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "75", "{name}");
    }
}

/// Compiles `text` (C) as `<name>.c` with `nooks-cc -O2 --isolation sfi`;
/// returns the object and its disassembly with relocations (of `function`
/// alone, if given).
fn sfi_disassembly(d: &Path, name: &str, text: &str, function: Option<&str>) -> (PathBuf, String) {
    let src = write(d, &format!("{name}.c"), text);
    let obj = d.join(format!("{name}.o"));
    let o = nooks_cc()
        .args(["-c", "-O2", "--isolation", "sfi", "-o"])
        .arg(&obj)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut objdump = Command::new("objdump");
    objdump.args(["-dr", "--no-show-raw-insn"]);
    if let Some(f) = function {
        objdump.arg(format!("--disassemble={f}"));
    }
    let o = objdump.arg(&obj).output().unwrap();
    (obj, String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Under SFI, a store's check carries the window's bound as a displacement
/// relocated against the window symbol (no register holds it: R15 is the
/// caller's); an address with no other term than a constant loads the bound
/// instead (Cranelift would decide that check at compile time), and a body
/// whose constants include the placeholder gets another.
#[test]
fn window_checks_are_relocated_against_the_window_symbol() {
    let d = dir("window");
    let text = "struct s { long a, b; };\n\
                long *getter(struct s *p) { return &p->b; }\n\
                void setter(struct s *p, long v) { p->b = v; }\n";
    let (obj, getter) = sfi_disassembly(&d, "getter", text, Some("getter"));
    assert!(
        getter.contains("ret") && !getter.contains("__nooks_window"),
        "{getter}"
    );
    let (_, setter) = sfi_disassembly(&d, "setter", text, Some("setter"));
    assert!(
        setter.contains("R_X86_64_32S\t__nooks_window+0x8") && !setter.contains("r15"),
        "{setter}"
    );
    let syms = Command::new("readelf")
        .arg("-s")
        .arg(&obj)
        .output()
        .unwrap();
    let syms = String::from_utf8_lossy(&syms.stdout);
    assert!(
        syms.lines()
            .any(|l| l.contains("WEAK") && l.contains("ABS") && l.ends_with("__nooks_window")),
        "{syms}"
    );

    let text = "void fixed(long v) { *(volatile long *)0x1000 = v; }\n";
    let (_, fixed) = sfi_disassembly(&d, "fixed", text, None);
    assert!(
        fixed.contains("cmp    $0x1bffff9") && !fixed.contains("__nooks_window"),
        "{fixed}"
    );

    // A constant where the first placeholder would be: the body gets
    // another, and the constant stays what it is.
    let text = "void clash(long *p, long x) { p[0] = 0x40000010; p[1] = x; }\n";
    let (_, clash) = sfi_disassembly(&d, "clash", text, None);
    assert!(
        clash.contains("$0x40000010") && clash.contains("R_X86_64_32S\t__nooks_window\n"),
        "{clash}"
    );
}

/// A store's check goes up past the load that reads what the store writes
/// back, so a counter update under SFI stays one read-modify-write
/// instruction, as without SFI (the check between them would split it in
/// three).
#[test]
fn a_read_modify_write_stays_one_instruction_under_sfi() {
    let text = "struct st { long packets, bytes; };\n\
                void count(struct st *s, long n) { s->packets++; s->bytes += n; }\n";
    let (_, dump) = sfi_disassembly(&dir("rmw"), "rmw", text, Some("count"));
    let rmw = |l: &str| l.contains("\tadd") && l.contains(",0x8(%") || l.contains("addq   $0x1,(%");
    assert_eq!(dump.lines().filter(|l| rmw(l)).count(), 2, "{dump}");
    assert!(dump.contains("cmp    $0x1bffff1"), "{dump}");
}

/// The measuring-only variant of `rewrite-bench` keeps the frame's check and
/// drops the others, and says so in its metadata (which the kernel refuses).
#[test]
fn entry_checks_only_is_marked_and_checks_only_the_frame() {
    use nooks_sfi_compiler::{Isolation, Options, rewrite};
    let d = dir("entry-only");
    let src = write(
        &d,
        "s.c",
        "struct st { long a, b; };\n\
         void set(struct st *s, long v) { volatile long local = v; s->b = local; }\n",
    );
    let obj = d.join("s.o");
    gcc_c(&src, &obj, &["-O2", "-fno-asynchronous-unwind-tables"]);
    let bytes = std::fs::read(&obj).unwrap();
    let sfi = Options {
        isolation: Isolation::Sfi,
        ..Options::default()
    };
    let full = rewrite(&bytes, &sfi).unwrap();
    let entry = rewrite(
        &bytes,
        &Options {
            entry_checks_only: true,
            ..sfi
        },
    )
    .unwrap();
    // The frame (the volatile local on the emulated stack) and `s->b`; then the frame alone.
    assert_eq!((full.stats.checks, entry.stats.checks), (2, 1));
    let has = |o: &[u8], s: &str| o.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has(&full.object, "isolation sfi\n") && !has(&full.object, "sfi-entry-only"));
    assert!(has(&entry.object, "isolation sfi-entry-only\n"));
}

#[test]
fn the_same_input_rewrites_to_the_same_bytes() {
    // e1000: several data and read-only sections, whose declaration order
    // once followed a per-process hash seed.
    let d = dir("reproducible");
    let e1000 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../drivers/e1000");
    let st = Command::new("make")
        .arg("-s")
        .arg(format!("OUT={}", d.display()))
        .current_dir(&e1000)
        .status()
        .unwrap();
    assert!(st.success(), "make -C drivers/e1000");
    let obj = d.join("e1000.o");
    for isolation in ["none", "sfi"] {
        let outputs: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                let out = d.join(format!("e1000-{isolation}-{i}.o"));
                let o = rewrite_cmd(&obj, &out, isolation);
                assert!(o.status.success(), "{}", stderr(&o));
                std::fs::read(&out).unwrap()
            })
            .collect();
        assert!(
            outputs.windows(2).all(|w| w[0] == w[1]),
            "--isolation {isolation}: three runs, different bytes"
        );
    }
}

#[test]
fn a_native_call_at_the_top_of_the_emulated_stack_reads_inside_the_object() {
    use object::{Object, ObjectSection, ObjectSymbol};
    let d = dir("estack");
    let src = write(
        &d,
        "f.c",
        "extern int g(int); int f(int x) { return g(x) + 1; }\n",
    );
    let obj = d.join("f.o");
    gcc_c(&src, &obj, &["-O2", "-fno-asynchronous-unwind-tables"]);
    let out = d.join("f.none.o");
    let o = rewrite_cmd(&obj, &out, "none");
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let estack = file
        .symbols()
        .find(|s| s.name() == Ok("__nooks_estack"))
        .expect("__nooks_estack");
    // __nooks_esp starts at the stack's top: its relocation's addend.
    let esp = file
        .symbols()
        .find(|s| s.name() == Ok("__nooks_esp"))
        .expect("__nooks_esp");
    let section = file.section_by_index(esp.section_index().unwrap()).unwrap();
    let (_, reloc) = section
        .relocations()
        .find(|(at, _)| *at == esp.address())
        .expect("__nooks_esp's initial value is relocated");
    let top = reloc.addend() as u64;
    let copied = 8 * nooks_policy::abi::STACK_ARGS as u64;
    assert!(
        top + copied <= estack.size(),
        "top {top:#x} + {copied} copied words > __nooks_estack's {:#x} bytes",
        estack.size()
    );
}

#[test]
fn dwarf_file_paths_are_the_originals() {
    // A source in a subdirectory, compiled from its parent: gcc records the
    // parent as the compilation directory and `sub` as a relative directory.
    let d = dir("dwarf-paths");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    write(
        &d.join("sub"),
        "x.c",
        "int twice(int x)\n{\n\treturn 2 * x;\n}\n",
    );
    let plain = d.join("x.o");
    let st = Command::new("gcc")
        .current_dir(&d)
        .args([
            "-c",
            "-g",
            "-O1",
            "-fno-asynchronous-unwind-tables",
            "sub/x.c",
            "-o",
        ])
        .arg(&plain)
        .status()
        .unwrap();
    assert!(st.success());
    let rewritten = d.join("x.none.o");
    let o = rewrite_cmd(&plain, &rewritten, "none");
    assert!(o.status.success(), "{}", stderr(&o));
    let file_of = |obj: &Path| -> String {
        let nm = Command::new("nm").arg(obj).output().unwrap();
        let nm = String::from_utf8_lossy(&nm.stdout).into_owned();
        let addr = nm
            .lines()
            .find(|l| l.ends_with(" T twice"))
            .map(|l| l[..16].to_string())
            .unwrap_or_else(|| panic!("twice in {nm}"));
        let a2l = Command::new("addr2line")
            .arg("-e")
            .arg(obj)
            .arg(format!("0x{addr}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&a2l.stdout)
            .trim()
            .rsplit_once(':')
            .map(|(f, _)| f.to_string())
            .unwrap_or_default()
    };
    let want = format!("{}/sub/x.c", d.display());
    assert_eq!(file_of(&plain), want, "gcc's own object");
    assert_eq!(file_of(&rewritten), want, "the rewritten object");
}

#[test]
fn errors_are_in_the_compilers_form_with_a_hint() {
    let d = dir("diagnostics");
    // A switch compiled to a jump table.
    let src = write(
        &d,
        "jt.c",
        "int g(int);\nint f(int x)\n{\n\tswitch (x) {\n\tcase 0: return g(1);\n\tcase 1: return g(7) + 2;\n\tcase 2: return g(9) * 3;\n\tcase 3: return g(1) - 4;\n\tcase 4: return g(5) ^ 5;\n\tcase 5: return g(8) | 6;\n\tcase 6: return g(2) & 7;\n\tdefault: return 0;\n\t}\n}\n",
    );
    let build = |name: &str, flags: &[&str]| {
        let obj = d.join(format!("{name}.o"));
        let st = Command::new("gcc")
            .args(["-c", "-g", "-O2"])
            .args(flags)
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .unwrap();
        assert!(st.success());
        let o = rewrite_cmd(&obj, &d.join(format!("{name}.none.o")), "none");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // gcc's defaults: position-independent, a table of offsets in .rodata
    // (and the default case in a cold part, which nooks-cc takes).
    let (ok, e) = build("pic", &[]);
    assert!(!ok);
    assert!(
        e.contains("error: unsupported relocation: type 2")
            && e.contains("note: ")
            && e.contains("-fno-pic"),
        "{e}"
    );
    // The driver ABI's -fno-pic: a table of addresses, which nooks-cc takes.
    let (ok, e) = build("table", &["-fno-pic"]);
    assert!(ok, "{e}");
}

#[test]
fn compiler_driver_mode_is_a_drop_in_cc() {
    let d = dir("drop-in");
    let _ = std::fs::remove_dir_all(d.join("sub"));
    std::fs::create_dir_all(d.join("sub")).unwrap();
    write(
        &d.join("sub"),
        "a.c",
        "int a(int x)\n{\n\treturn x + 1;\n}\n",
    );
    write(
        &d.join("sub"),
        "b.c",
        "int b(int x)\n{\n\treturn x * 2;\n}\n",
    );
    let cc = |args: &[&str]| -> Output { nooks_cc().current_dir(&d).args(args).output().unwrap() };
    let ok = |o: &Output| assert!(o.status.success(), "{}", stderr(o));
    let nm = |f: &str| -> String {
        let o = Command::new("nm").arg(d.join(f)).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Several sources: each object in the current directory, as gcc puts it;
    // `--isolation=sfi` is ours, never gcc's.
    for f in ["a.o", "b.o"] {
        let _ = std::fs::remove_file(d.join(f));
    }
    ok(&cc(&["-c", "sub/a.c", "sub/b.c", "--isolation=sfi", "-O2"]));
    assert!(nm("a.o").contains("__nooks_sfi") && nm("b.o").contains(" T b"));
    assert!(
        !d.join("sub/a.o").exists(),
        "the object went beside the source"
    );
    // -oFILE, and -MD names the dependency file after the real output.
    ok(&cc(&["-c", "sub/a.c", "-oout.o", "-MD"]));
    assert!(nm("out.o").contains(" T a"));
    let deps = std::fs::read_to_string(d.join("out.d")).unwrap();
    assert!(deps.starts_with("out.o: sub/a.c"), "{deps}");
    // -E and -S are gcc's.
    let o = cc(&["-E", "sub/a.c"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("return x + 1;"));
    ok(&cc(&["-S", "sub/a.c", "-o", "a.s"]));
    assert!(
        std::fs::read_to_string(d.join("a.s"))
            .unwrap()
            .contains(".globl\ta")
    );
    // Standard input.
    let mut child = nooks_cc()
        .current_dir(&d)
        .args(["-c", "-x", "c", "-", "-o", "stdin.o"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"int c(void) { return 3; }\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(nm("stdin.o").contains(" T c"));
    // gcc's own refusal, and nooks-cc never runs itself.
    assert_clean_failure(&cc(&["-c", "sub/a.c", "sub/b.c", "-o", "x.o"]));
    let o = nooks_cc()
        .current_dir(&d)
        .env("NOOKS_CC", env!("CARGO_BIN_EXE_nooks-cc"))
        .args(["-c", "sub/a.c", "-o", "y.o"])
        .output()
        .unwrap();
    assert!(assert_clean_failure(&o).contains("is nooks-cc itself"));
    // make CC=nooks-cc builds objects with make's own rules.
    write(&d, "Makefile", "all: sub/a.o sub/b.o\n");
    let _ = std::fs::remove_file(d.join("sub/a.o"));
    let _ = std::fs::remove_file(d.join("sub/b.o"));
    let o = Command::new("make")
        .current_dir(&d)
        .arg(format!("CC={}", env!("CARGO_BIN_EXE_nooks-cc")))
        .arg("CFLAGS=-O2 --isolation=sfi")
        .output()
        .unwrap();
    ok(&o);
    assert!(d.join("sub/a.o").exists() && d.join("sub/b.o").exists());
}

#[test]
fn default_unwind_tables_are_accepted_and_rewritten_frames_unwind() {
    // gcc's default flags (asynchronous unwind tables); glibc's backtrace()
    // from inside rewritten code must walk through its frames to main.
    let d = dir("unwind");
    let lib = write(
        &d,
        "uw.c",
        "#include <execinfo.h>\n__attribute__((noinline)) int leaf(int n) { void *buf[32]; return backtrace(buf, 32) + n; }\n__attribute__((noinline)) int middle(int n) { return leaf(n + 1) + 1; }\n",
    );
    let main = write(
        &d,
        "main.c",
        "#include <stdio.h>\nint middle(int);\nint main(void) { printf(\"%d\\n\", middle(0) - 2); return 0; }\n",
    );
    let obj = d.join("uw.o");
    let st = Command::new("gcc")
        .args(["-c", "-O1"])
        .arg(&lib)
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap();
    assert!(st.success());
    let depth = |o: &Path, exe: &str| -> i32 {
        let exe = d.join(exe);
        let st = Command::new("gcc")
            .arg("-no-pie")
            .arg(&main)
            .arg(o)
            .arg("-o")
            .arg(&exe)
            .status()
            .unwrap();
        assert!(st.success());
        let out = Command::new(&exe).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let native = depth(&obj, "native");
    for isolation in ["none", "sfi"] {
        let rewritten = d.join(format!("uw.{isolation}.o"));
        let o = rewrite_cmd(&obj, &rewritten, isolation);
        assert!(o.status.success(), "{}", stderr(&o));
        if isolation == "none" {
            // (sfi objects need the window symbol to link; none is enough to walk.)
            assert_eq!(
                depth(&rewritten, "rewritten"),
                native,
                "frames backtrace() walks"
            );
        }
    }
    assert!(native >= 5, "{native}");
}

/// A driver of several files, built as Kbuild builds a module: `nooks-cc -c`
/// per file (each object carries its original), then `nooks-cc -r` as the
/// partial link, which links the originals and rewrites the whole once. The
/// result has one runtime state and one emulated stack, and runs like the
/// native program (function pointers cross files; see `corpus/multi`).
/// Rewritten objects without their original are refused by name.
#[test]
fn a_partial_link_of_rewritten_objects_rewrites_the_whole_once() {
    let d = dir("partial-link");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let sources = ["main", "ring", "hw"];
    let run = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let harness = d.join("harness.o");
    gcc_c(&corpus.join("harness.c"), &harness, &[]);
    // Native: gcc and ld -r.
    let mut natives = Vec::new();
    for s in sources {
        let o = d.join(format!("{s}.native.o"));
        gcc_c(&corpus.join("multi").join(format!("{s}.c")), &o, &["-O2"]);
        natives.push(o);
    }
    let native = d.join("native.o");
    run(Command::new("ld")
        .arg("-r")
        .args(&natives)
        .arg("-o")
        .arg(&native));
    run(Command::new("gcc")
        .arg("-no-pie")
        .arg(&harness)
        .arg(&native)
        .arg("-o")
        .arg(d.join("native")));
    // The program's exit status is its result, not success.
    let program = |exe: &str| {
        let o = Command::new(d.join(exe)).output().unwrap();
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            o.status.code(),
        )
    };
    let expected = program("native");
    let expected_text = &expected.0;
    assert!(expected_text.starts_with("multi "), "{expected_text}");
    // nooks-cc -c per file, nooks-cc -r.
    let mut rewritten = Vec::new();
    for s in sources {
        let o = d.join(format!("{s}.o"));
        run(nooks_cc()
            .args(["-c", "-O2", "--isolation=sfi"])
            .arg(corpus.join("multi").join(format!("{s}.c")))
            .arg(format!("-o{}", o.display())));
        rewritten.push(o);
    }
    let linked = d.join("driver.o");
    run(nooks_cc().arg("-r").args(&rewritten).arg("-o").arg(&linked));
    let syms = run(Command::new("nm").arg(&linked));
    let count = |name: &str| {
        syms.lines()
            .filter(|l| l.ends_with(&format!(" {name}")))
            .count()
    };
    assert_eq!(count("__nooks_sfi"), 1, "{syms}");
    assert_eq!(count("__nooks_estack"), 1, "{syms}");
    let meta = run(Command::new("readelf").args(["-p", ".nooks"]).arg(&linked));
    assert!(meta.contains("isolation sfi"), "{meta}");
    run(Command::new("gcc")
        .arg("-no-pie")
        .arg(&harness)
        .arg(&linked)
        .arg("-o")
        .arg(d.join("rewritten")));
    assert_eq!(program("rewritten"), expected);
    // Linking the linked object again (nested composite objects) works too.
    let again = d.join("again.o");
    run(nooks_cc().arg("-r").arg(&linked).arg("-o").arg(&again));
    // An object rewritten without its original cannot be re-linked.
    let bare = d.join("bare.o");
    let o = rewrite_cmd(&natives[0], &bare, "sfi");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nooks_cc()
        .arg("-r")
        .arg(&bare)
        .arg(&rewritten[1])
        .arg("-o")
        .arg(d.join("no.o"))
        .output()
        .unwrap();
    let e = assert_clean_failure(&o);
    assert!(
        e.contains("bare.o was rewritten without its original object"),
        "{e}"
    );
}
