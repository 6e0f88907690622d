//! The fault injector on the real e1000 object: every kind finds sites, a
//! (kind, seed) pair is reproducible, the patch stays inside one instruction
//! (plus, for a removed call, its relocation), and the faulty object still
//! loads and still goes through nooks-cc — so the same fault can run under
//! every mechanism.

use nooks_bench::artifacts;
use nooks_sfi_compiler::inject::{ALL, FaultKind, inject, inject_in};
use nooks_sfi_compiler::{Isolation, Options, rewrite};

fn e1000() -> Vec<u8> {
    std::fs::read(artifacts::build_driver("e1000").unwrap_or_else(|e| panic!("{e:#}"))).unwrap()
}

#[test]
fn every_kind_patches_one_instruction_reproducibly_and_the_object_still_builds() {
    let clean = e1000();
    for kind in ALL {
        for seed in 0..4 {
            let (a, what) =
                inject(&clean, kind, seed).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
            let (b, _) = inject(&clean, kind, seed).unwrap();
            assert_eq!(a, b, "{what}: not reproducible");
            assert_eq!(a.len(), clean.len(), "{what}: the layout changed");
            let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != clean[i]).collect();
            assert!(!changed.is_empty(), "{what}: nothing changed");
            // One instruction is at most 15 bytes; a removed call also
            // neutralises its relocation entry elsewhere in the file.
            let first_run: Vec<usize> = changed
                .iter()
                .copied()
                .filter(|&i| i < changed[0] + 15)
                .collect();
            let rest = changed.len() - first_run.len();
            match kind {
                FaultKind::SkipUnlock => assert!(rest <= 4, "{what}: {changed:?}"),
                _ => assert_eq!(
                    rest, 0,
                    "{what}: bytes changed outside one instruction: {changed:?}"
                ),
            }
            nooks_loader::Object::parse(&a)
                .unwrap_or_else(|e| panic!("{what}: the loader refuses it: {e}"));
            rewrite(
                &a,
                &Options {
                    isolation: Isolation::Sfi,
                    ..Options::default()
                },
            )
            .unwrap_or_else(|e| panic!("{what}: nooks-cc refuses it: {e}"));
        }
    }
}

#[test]
fn sites_can_be_confined_to_one_function_and_bad_requests_are_errors() {
    let clean = e1000();
    let (_, what) = inject_in(&clean, FaultKind::NullPointer, 5, Some("e1000_xmit_frame")).unwrap();
    assert_eq!(what.function, "e1000_xmit_frame");
    assert!(
        what.boot_option().starts_with("inject=e1000_xmit_frame+0x"),
        "{}",
        what.boot_option()
    );
    assert!(inject_in(&clean, FaultKind::SkipUnlock, 0, Some("no_such_function")).is_err());
    assert!(inject(b"\x7fELF but not really", FaultKind::OffByOne, 0).is_err());
}
