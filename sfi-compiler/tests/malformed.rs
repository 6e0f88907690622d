//! Malformed objects get a located error, never a panic: gcc-built objects of
//! the corpus, each corrupted in many seeded ways (bytes anywhere: headers,
//! section table, symbol table, code), rewritten under `none` and `sfi`
//! inside `catch_unwind`.

use nooks_sfi_compiler::{Isolation, Options, rewrite};
use std::path::PathBuf;
use std::process::Command;

/// The corpus objects, built once: the tests run in parallel, and two gcc
/// runs writing the same file while the other test reads it gave a
/// truncated object (a CI failure outside `catch_unwind`).
fn objects() -> Vec<(String, Vec<u8>)> {
    static BUILT: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Vec<(String, Vec<u8>)> {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("malformed");
    std::fs::create_dir_all(&out).unwrap();
    ["arith", "calls", "bits", "atomics"]
        .iter()
        .map(|name| {
            let obj = out.join(format!("{name}.o"));
            let st = Command::new("gcc")
                .args([
                    "-O2",
                    "-c",
                    "-fno-asynchronous-unwind-tables",
                    "-fno-jump-tables",
                ])
                .arg(corpus.join(format!("{name}.c")))
                .arg("-o")
                .arg(&obj)
                .status()
                .unwrap();
            assert!(st.success(), "gcc {name}.c");
            (name.to_string(), std::fs::read(&obj).unwrap())
        })
        .collect()
}

/// Little-endian u64/u16 of an ELF64 header field.
fn le(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .rev()
        .fold(0, |v, &x| (v << 8) | u64::from(x))
}

#[test]
fn corrupted_objects_get_errors_not_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut panics = Vec::new();
    let mut errors = 0;
    // Silence the expected panics of this thread only; the other test's
    // messages still print.
    let quiet = std::thread::current().id();
    let previous = std::sync::Arc::new(std::panic::take_hook());
    let others = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != quiet {
            others(info)
        }
    }));
    for (name, bytes) in objects() {
        // Header fields first, then bytes anywhere.
        let shoff = le(&bytes, 0x28, 8) as usize;
        for i in 0..400 {
            let mut m = bytes.clone();
            let near_tables = i % 3 == 0;
            for _ in 0..1 + next() % 8 {
                let at = if near_tables && shoff < m.len() {
                    shoff + (next() as usize) % (m.len() - shoff)
                } else {
                    (next() as usize) % m.len()
                };
                m[at] = next() as u8;
            }
            for isolation in [Isolation::None, Isolation::Sfi] {
                let opts = Options {
                    isolation,
                    ..Options::default()
                };
                match std::panic::catch_unwind(|| rewrite(&m, &opts).map(|_| ())) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        errors += 1;
                        assert!(!e.to_string().is_empty());
                    }
                    Err(_) => panics.push(format!("{name} mutation {i} ({isolation:?})")),
                }
            }
        }
    }
    std::panic::set_hook(Box::new(move |info| previous(info)));
    assert!(panics.is_empty(), "{} panics: {panics:?}", panics.len());
    assert!(
        errors > 0,
        "no mutation was refused: the test mutates nothing"
    );
}

#[test]
fn a_section_alignment_that_is_not_a_power_of_two_is_refused() {
    let (_, mut bytes) = objects().swap_remove(0);
    let (shoff, shentsize, shnum) = (
        le(&bytes, 0x28, 8) as usize,
        le(&bytes, 0x3a, 2) as usize,
        le(&bytes, 0x3c, 2) as usize,
    );
    // The first SHT_PROGBITS section with code: sh_addralign := 3.
    let text = (1..shnum)
        .map(|i| shoff + i * shentsize)
        .find(|&h| le(&bytes, h + 4, 4) == 1 && le(&bytes, h + 8, 8) & 4 != 0)
        .expect("a code section");
    bytes[text + 0x30..text + 0x38].copy_from_slice(&3u64.to_le_bytes());
    let err = rewrite(&bytes, &Options::default())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a power of two"), "{err}");
}

/// Every input the fuzzer (`sfi-compiler/fuzz`) ever crashed nooks-cc with,
/// kept in `tests/fuzz-crashes/`: each is now an error (or a rewrite), never
/// a panic. (Most tripped overflow checks or debug assertions, which the
/// fuzzer's build has and this release test does not: here they guard
/// against worse, in the fuzzer they are the regression test:
/// `cargo +nightly fuzz run -s none rewrite tests/fuzz-crashes/*`.)
#[test]
fn inputs_the_fuzzer_crashed_nooks_cc_with_are_refused_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashes");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 5, "{inputs:?}");
    for path in inputs {
        let bytes = std::fs::read(&path).unwrap();
        for isolation in [Isolation::None, Isolation::Sfi] {
            let opts = Options {
                isolation,
                ..Options::default()
            };
            let r = std::panic::catch_unwind(|| rewrite(&bytes, &opts).map(|_| ()));
            assert!(r.is_ok(), "{} ({isolation:?}) panics", path.display());
        }
    }
}
