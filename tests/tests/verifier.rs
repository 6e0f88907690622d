//! The load-time verifier on real objects (host only, no QEMU):
//! - no false rejections: e1000 and every driver in `tests/drivers/`
//!   rewritten with `--isolation sfi` verify (the differential tests add the
//!   corpus and csmith programs);
//! - a mutation test over every window check of `e1000.sfi.o`: each check
//!   removed, its compare NOPed, its branch retargeted past it, its
//!   displacement moved, its bound loosened, and the store it covers reached
//!   by another branch around it, is refused naming the store; each entry's
//!   invariant compare NOPed is refused naming the return; and `nooks-cc
//!   inject` on the rewritten object is refused whenever it hits a check.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};
use nooks_loader::Object;
use nooks_tests::{sfi, test_driver_with};
use nooks_verifier::{Reason, verify};

fn e1000_sfi() -> Vec<u8> {
    let original = std::fs::read(nooks_bench::artifacts::build_driver("e1000").unwrap()).unwrap();
    let out = sfi(&original, "e1000");
    if let Ok(path) = std::env::var("NOOKS_KEEP_E1000") {
        std::fs::write(path, &out).unwrap();
    }
    out
}

#[test]
fn every_sandboxed_driver_verifies() {
    let mut count = 0;
    let bytes = e1000_sfi();
    let object = Object::parse(&bytes).unwrap();
    verify(&object).unwrap_or_else(|e| panic!("e1000.sfi.o: {e}"));
    count += 1;
    let root = nooks_bench::artifacts::repo_root().join("tests/drivers");
    let mut drivers = Vec::new();
    for dir in ["", "interface", "dma"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "c") {
                let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
                drivers.push(if dir.is_empty() {
                    stem
                } else {
                    format!("{dir}/{stem}")
                });
            }
        }
    }
    drivers.sort();
    let defines = [
        "-DKERNEL_TARGET=0xffffffff80123000ull".to_string(),
        "-DDMA_TARGET=0x1000ull".to_string(),
    ];
    let mut refused_at_rewrite = Vec::new();
    for name in &drivers {
        let original = test_driver_with(name, &defines);
        let policy = root.join(format!("{name}.policy"));
        let mut options = nooks_tests::sfi_options();
        if policy.exists() {
            options.policy =
                nooks_policy::file::parse(&std::fs::read_to_string(&policy).unwrap()).unwrap();
        }
        let Ok(out) = nooks_sfi_compiler::rewrite(&original, &options) else {
            // Drivers nooks-cc itself refuses (privileged instructions, a
            // forbidden import) never reach the kernel.
            refused_at_rewrite.push(name.clone());
            continue;
        };
        let object = Object::parse(&out.object).unwrap();
        verify(&object).unwrap_or_else(|e| panic!("{name}.sfi.o: {e}"));
        count += 1;
    }
    eprintln!("verified {count} objects; refused by nooks-cc before: {refused_at_rewrite:?}");
    assert!(count >= 80, "only {count} objects");
}

/// The code section's bytes inside the object file, and its offset there.
fn text(bytes: &[u8]) -> (usize, usize) {
    let object = Object::parse(bytes).unwrap();
    let s = object
        .sections
        .iter()
        .find(|s| s.area == Some(nooks_loader::Area::Text))
        .unwrap();
    (
        s.data.as_ptr() as usize - bytes.as_ptr() as usize,
        s.data.len(),
    )
}

fn decode_all(code: &[u8], start: u64, end: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(
        64,
        &code[start as usize..end as usize],
        start,
        DecoderOptions::NONE,
    );
    let mut out = Vec::new();
    while d.can_decode() {
        out.push(d.decode());
    }
    out
}

/// A window check: `lea r, [.. + __nooks_window]` (the relocated field),
/// `cmp r, imm`, `jae/ja slow`, then the store(s) it covers.
struct Site {
    lea: Instruction,
    cmp: Instruction,
    branch: Instruction,
    store: Instruction,
    function: (u64, u64),
    reloc: (usize, usize),
}

fn sites(bytes: &[u8]) -> Vec<Site> {
    let object = Object::parse(bytes).unwrap();
    let (off, len) = text(bytes);
    let code = &bytes[off..off + len];
    let text_index = object
        .sections
        .iter()
        .position(|s| s.area == Some(nooks_loader::Area::Text))
        .unwrap();
    let mut window = Vec::new();
    for (ri, rs) in object.relocations.iter().enumerate() {
        if rs.target != text_index {
            continue;
        }
        for (ei, r) in rs.entries.iter().enumerate() {
            if object.symbols[r.symbol].name == nooks_policy::abi::WINDOW_SYMBOL {
                window.push((r.offset, (ri, ei)));
            }
        }
    }
    let mut out = Vec::new();
    for s in object
        .symbols
        .iter()
        .filter(|s| s.is_function && s.size > 0)
    {
        if s.name.starts_with("__nooks") {
            continue;
        }
        let nooks_loader::object::Definition::Section(i) = s.definition else {
            continue;
        };
        if i != text_index {
            continue;
        }
        let (start, end) = (s.value, s.value + s.size);
        if out.iter().any(|x: &Site| x.function == (start, end)) {
            continue;
        }
        let insns = decode_all(code, start, end);
        for k in 0..insns.len().saturating_sub(3) {
            let (lea, cmp, branch) = (insns[k], insns[k + 1], insns[k + 2]);
            let Some(&(_, reloc)) = window
                .iter()
                .find(|(o, _)| *o >= lea.ip() && *o < lea.next_ip())
            else {
                continue;
            };
            if lea.mnemonic() != Mnemonic::Lea
                || cmp.mnemonic() != Mnemonic::Cmp
                || cmp.op0_kind() != OpKind::Register
                || cmp.op0_register() != lea.op0_register()
                || !matches!(branch.mnemonic(), Mnemonic::Jae | Mnemonic::Ja)
            {
                continue;
            }
            // The first store on the fall-through path.
            let Some(store) = insns[k + 3..]
                .iter()
                .take_while(|i| {
                    !matches!(
                        i.mnemonic(),
                        Mnemonic::Jmp | Mnemonic::Ret | Mnemonic::Ud2 | Mnemonic::Call
                    ) && !i.is_jcc_short_or_near()
                })
                .find(|i| {
                    i.op_count() == 2
                        && i.op0_kind() == OpKind::Memory
                        && i.memory_base() != iced_x86::Register::RSP
                        && !matches!(i.mnemonic(), Mnemonic::Cmp | Mnemonic::Test)
                })
                .copied()
            else {
                continue;
            };
            out.push(Site {
                lea,
                cmp,
                branch,
                store,
                function: (start, end),
                reloc,
            });
        }
    }
    out
}

/// Verifies `bytes` with an optional change to the parsed relocations.
fn check(
    bytes: &[u8],
    edit: impl FnOnce(&mut Object<'_>),
) -> Result<(), nooks_verifier::Rejection> {
    let mut object = Object::parse(bytes).unwrap();
    edit(&mut object);
    verify(&object).map(|_| ())
}

fn nop(bytes: &mut [u8], text_off: usize, i: &Instruction) {
    for b in &mut bytes[text_off + i.ip() as usize..text_off + i.next_ip() as usize] {
        *b = 0x90;
    }
}

/// Sets the rel32 of the near branch `i` so it jumps to `target`.
fn retarget(bytes: &mut [u8], text_off: usize, i: &Instruction, target: u64) {
    let rel = (target as i64 - i.next_ip() as i64) as i32;
    let at = text_off + i.next_ip() as usize - 4;
    bytes[at..at + 4].copy_from_slice(&rel.to_le_bytes());
}

fn expect_store_refused(
    what: &str,
    site: &Site,
    r: Result<(), nooks_verifier::Rejection>,
    failures: &mut Vec<String>,
) {
    match r {
        Err(e) if matches!(e.reason, Reason::UncheckedStore(_)) => {}
        Err(e) => failures.push(format!(
            "{what} at {:#x}: refused for another reason: {e}",
            site.lea.ip()
        )),
        Ok(()) => failures.push(format!("{what} at {:#x}: accepted", site.lea.ip())),
    }
}

/// Drops the relocation `at` (relocations index, entry index).
fn drop_reloc(o: &mut Object<'_>, at: (usize, usize)) {
    o.relocations[at.0].entries.remove(at.1);
}

/// The slow-path call after `site`'s branch target: `call __nooks_sfi_slow`.
fn slow_call(bytes: &[u8], text_off: usize, site: &Site) -> Option<(Instruction, (usize, usize))> {
    let object = Object::parse(bytes).unwrap();
    let insns = decode_all(
        &bytes[text_off..],
        site.branch.near_branch_target(),
        site.function.1,
    );
    let call = insns
        .into_iter()
        .take(4)
        .find(|i| i.mnemonic() == Mnemonic::Call)?;
    for (ri, rs) in object.relocations.iter().enumerate() {
        for (ei, r) in rs.entries.iter().enumerate() {
            if r.offset > call.ip()
                && r.offset < call.next_ip()
                && object.symbols[r.symbol].name == nooks_policy::abi::SLOW_PATH
            {
                return Some((call, (ri, ei)));
            }
        }
    }
    None
}

/// Whether the object stays verified with `site`'s check removed (an
/// earlier check covers its stores): its mutations then prove nothing.
fn is_redundant(bytes: &[u8], text_off: usize, site: &Site) -> bool {
    let mut b = bytes.to_vec();
    for i in [&site.lea, &site.cmp, &site.branch] {
        nop(&mut b, text_off, i);
    }
    check(&b, |o| drop_reloc(o, site.reloc)).is_ok()
}

#[test]
fn every_check_of_e1000_mutated_is_refused() {
    let bytes = e1000_sfi();
    check(&bytes, |_| {}).expect("the unmutated object verifies");
    let (text_off, _) = text(&bytes);
    let sites = sites(&bytes);
    assert!(
        sites.len() >= 40,
        "found only {} window checks",
        sites.len()
    );
    let mut failures = Vec::new();
    let (mut mutations, mut redundant, mut via_slow) = (0, 0, 0);
    for site in &sites {
        let near = |i: &Instruction| i.len() >= 5 && i.op0_kind() == OpKind::NearBranch64;
        // 1. The whole check removed (its relocation with it). A check
        //    whose stores an earlier check already covers is redundant: the
        //    object stays safe without it, the verifier proves so, and the
        //    other mutations of it prove nothing.
        let mut b = bytes.clone();
        for i in [&site.lea, &site.cmp, &site.branch] {
            nop(&mut b, text_off, i);
        }
        mutations += 1;
        if is_redundant(&bytes, text_off, site) {
            redundant += 1;
            continue;
        }
        expect_store_refused(
            "check removed",
            site,
            check(&b, |o| drop_reloc(o, site.reloc)),
            &mut failures,
        );
        // 2. Its compare NOPed: the branch tests stale flags. If those send
        //    every execution to the slow path, the object is still safe (the
        //    slow path checks the store); the verifier must then depend on
        //    that call: without it, refused.
        let mut b = bytes.clone();
        nop(&mut b, text_off, &site.cmp);
        mutations += 1;
        match check(&b, |_| {}) {
            Ok(()) => match slow_call(&b, text_off, site) {
                Some((call, reloc)) => {
                    let mut b2 = b.clone();
                    nop(&mut b2, text_off, &call);
                    expect_store_refused(
                        "compare NOPed, slow path removed",
                        site,
                        check(&b2, |o| drop_reloc(o, reloc)),
                        &mut failures,
                    );
                    via_slow += 1;
                }
                None => failures.push(format!("compare NOPed at {:#x}: accepted", site.lea.ip())),
            },
            r => expect_store_refused("compare NOPed", site, r, &mut failures),
        }
        // 3. Its branch retargeted past the slow path, to the store side.
        if near(&site.branch) {
            let mut b = bytes.clone();
            retarget(&mut b, text_off, &site.branch, site.branch.next_ip());
            expect_store_refused("branch retargeted", site, check(&b, |_| {}), &mut failures);
            mutations += 1;
        }
        // 4. Its displacement moved past the range it checked (the
        //    relocation's addend, as the loader reads it; a smaller move
        //    can leave every store inside the checked range or another
        //    check's) and 5. its bound loosened by 8.
        let (ri, ei) = site.reloc;
        let span = nooks_policy::abi::state::SPAN as i64 + 1 - site.cmp.immediate(1) as i64;
        expect_store_refused(
            "displacement moved",
            site,
            check(&bytes, |o| o.relocations[ri].entries[ei].addend += span),
            &mut failures,
        );
        mutations += 1;
        if site.cmp.op1_kind() == OpKind::Immediate32to64 {
            let mut b = bytes.clone();
            let at = text_off + site.cmp.next_ip() as usize - 4;
            let imm = i32::from_le_bytes(b[at..at + 4].try_into().unwrap()) + 8;
            b[at..at + 4].copy_from_slice(&imm.to_le_bytes());
            expect_store_refused("bound loosened", site, check(&b, |_| {}), &mut failures);
            mutations += 1;
        }
        // 6. The store reached around the check: an earlier branch of the
        //    function retargeted to it.
        let insns = decode_all(&bytes[text_off..], site.function.0, site.function.1);
        if let Some(jump) = insns
            .iter()
            .filter(|i| {
                i.ip() < site.lea.ip()
                    && near(i)
                    && (i.is_jcc_short_or_near() || i.mnemonic() == Mnemonic::Jmp)
            })
            .last()
        {
            let mut b = bytes.clone();
            retarget(&mut b, text_off, jump, site.store.ip());
            if std::env::var("NOOKS_KEEP_MUTANTS").is_ok() {
                std::fs::write(
                    format!("/tmp/mutant-{:x}-{:x}.o", jump.ip(), site.store.ip()),
                    &b,
                )
                .unwrap();
            }
            expect_store_refused(
                "store reached around the check",
                site,
                check(&b, |_| {}),
                &mut failures,
            );
            mutations += 1;
        }
    }
    eprintln!(
        "{} window checks ({redundant} redundant: an earlier check covers their stores), {mutations} mutations, {via_slow} compares whose stale flags still send every store through the slow path, {} not refused as they should be",
        sites.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(sites.len() - redundant >= 20, "too few necessary checks");
}

#[test]
fn entries_without_their_invariant_compare_are_refused() {
    let bytes = e1000_sfi();
    let (text_off, len) = text(&bytes);
    let insns = decode_all(&bytes[text_off..text_off + len], 0, len as u64);
    // `cmp saved, now; jne trap` right before an entry's return path: the
    // compare of the invariants word against its value at entry.
    let object = Object::parse(&bytes).unwrap();
    let entries: Vec<(u64, u64, &str)> = object
        .symbols
        .iter()
        .filter(|s| s.is_function && s.size > 0 && nooks_policy::abi::is_entry_name(s.name))
        .map(|s| (s.value, s.value + s.size, s.name))
        .collect();
    let mut tried = 0;
    let mut failures = Vec::new();
    for w in insns.windows(2) {
        let (cmp, jne) = (w[0], w[1]);
        if cmp.mnemonic() != Mnemonic::Cmp
            || cmp.op0_kind() != OpKind::Register
            || cmp.op1_kind() != OpKind::Register
            || !cmp.op0_register().is_gpr64()
            || jne.mnemonic() != Mnemonic::Jne
            || !entries.iter().any(|e| cmp.ip() >= e.0 && cmp.ip() < e.1)
        {
            continue;
        }
        // Only the invariant compares: the branch leads to the code that
        // records LocksHeld/InterruptsOff and traps.
        let mut b = bytes.clone();
        nop(&mut b, text_off, &jne);
        match check(&b, |_| {}) {
            Err(e) if e.reason == Reason::MissingInvariantCheck => tried += 1,
            Err(_) | Ok(()) => continue,
        }
        let mut b = bytes.clone();
        nop(&mut b, text_off, &cmp);
        match check(&b, |_| {}) {
            Err(e) if e.reason == Reason::MissingInvariantCheck => {}
            other => failures.push(format!("compare at {:#x} NOPed: {other:?}", cmp.ip())),
        }
    }
    eprintln!("{tried} invariant checks");
    assert!(tried >= 10, "only {tried} invariant checks found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn injected_faults_that_hit_a_check_are_refused() {
    use nooks_sfi_compiler::inject::{self, FaultKind};
    let bytes = e1000_sfi();
    let (text_off, len) = text(&bytes);
    let code = &bytes[text_off..text_off + len];
    let sites = sites(&bytes);
    let (mut hits, mut refused, mut others, mut others_refused, mut slack) = (0, 0, 0, 0, 0);
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for kind in [
        FaultKind::RemoveInstruction,
        FaultKind::OffByOne,
        FaultKind::StoreAddress,
    ] {
        for seed in 0..150 {
            let Ok((out, what)) = inject::inject_in(&bytes, kind, seed, None) else {
                continue;
            };
            // Which bytes changed.
            let (o2, _) = text(&out);
            let changed: Vec<u64> = (0..len)
                .filter(|&k| out[o2 + k] != code[k])
                .map(|k| k as u64)
                .collect();
            let Some(&first) = changed.first() else {
                continue;
            };
            let r = check(&out, |_| {});
            if let Some(site) = sites.iter().find(|s| {
                [&s.lea, &s.cmp, &s.branch]
                    .iter()
                    .any(|i| first >= i.ip() && first < i.next_ip())
            }) && !is_redundant(&bytes, text_off, site)
            {
                hits += 1;
                match r {
                    // The right reason: the store the check guarded; or, when
                    // the patch took out the `lea` the window relocation
                    // patches, that relocation left in no instruction's field.
                    Err(e)
                        if matches!(e.reason, Reason::UncheckedStore(_))
                            || (first < site.lea.next_ip()
                                && matches!(e.reason, Reason::Relocation(_))) =>
                    {
                        *reasons
                            .entry(
                                format!("{:?}", e.reason)
                                    .split('(')
                                    .next()
                                    .unwrap()
                                    .to_string(),
                            )
                            .or_insert(0) += 1;
                        refused += 1
                    }
                    Err(e) => failures.push(format!(
                        "{}:{seed} ({what}) refused for another reason: {e}",
                        kind.name()
                    )),
                    // `jae` -> `ja` admits one more byte: safe when no store
                    // reaches the checked range's last byte. The verifier must
                    // then still refuse the bound loosened by 64.
                    Ok(()) if kind == FaultKind::OffByOne && first >= site.branch.ip() => {
                        let mut b = out.clone();
                        let at = o2 + site.cmp.next_ip() as usize - 4;
                        let imm = i32::from_le_bytes(b[at..at + 4].try_into().unwrap()) + 64;
                        b[at..at + 4].copy_from_slice(&imm.to_le_bytes());
                        if check(&b, |_| {}).is_ok() {
                            failures.push(format!(
                                "{}:{seed} ({what}) and the bound loosened by 64 verified",
                                kind.name()
                            ));
                        }
                        slack += 1;
                    }
                    Ok(()) => failures.push(format!(
                        "{}:{seed} ({what}) hit a check and verified",
                        kind.name()
                    )),
                }
            } else {
                others += 1;
                if r.is_err() {
                    others_refused += 1;
                }
            }
        }
    }
    eprintln!(
        "injections on e1000.sfi.o: {hits} hit a window check, {refused} refused ({reasons:?}), {slack} off-by-one within the check's slack (the bound loosened by 64 then refused); {others} elsewhere, {others_refused} of those refused"
    );
    assert!(hits >= 10, "only {hits} injections hit a check");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The campaign's faults, injected into the *original* e1000 and rewritten by
/// nooks-cc, are objects nooks-cc made correctly: the verifier must take
/// every one (the campaign found a refusal: a NULL store's check loads `lo`
/// and negates it, which the verifier did not follow).
#[test]
fn faulty_originals_rewritten_by_nooks_cc_verify() {
    use nooks_sfi_compiler::inject::{self, ALL};
    let original = std::fs::read(nooks_bench::artifacts::build_driver("e1000").unwrap()).unwrap();
    let mut checked = 0;
    let mut refused = Vec::new();
    for kind in ALL {
        // Seed 10 of null-pointer is the campaign's refusal.
        for seed in 0..=10 {
            let Ok((faulty, what)) = inject::inject_in(&original, kind, seed, None) else {
                continue;
            };
            let Ok(out) = nooks_sfi_compiler::rewrite(&faulty, &nooks_tests::sfi_options()) else {
                continue;
            };
            checked += 1;
            if let Err(e) = verify(&Object::parse(&out.object).unwrap()) {
                refused.push(format!("{what}: {e}"));
            }
        }
    }
    eprintln!(
        "{checked} faulty originals rewritten, {} refused",
        refused.len()
    );
    assert!(checked >= 80, "only {checked}");
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}
