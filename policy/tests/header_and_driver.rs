//! The export list cannot drift from the C header, and the e1000 driver imports
//! nothing the kernel does not export.

use nooks_policy::{EXPORTS, is_exported};
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Names of the functions the header declares (prototypes, not static inlines).
fn declared_functions(header: &str) -> Vec<String> {
    let mut names = Vec::new();
    // Join continuation lines so each declaration is one statement.
    let mut text = String::new();
    for line in header.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with("/*") || line.starts_with('*') {
            continue;
        }
        text.push_str(line);
        text.push(
            if line.ends_with(';') || line.ends_with('}') || line.ends_with('{') {
                '\n'
            } else {
                ' '
            },
        );
    }
    for stmt in text.lines() {
        let stmt = stmt.trim();
        if !stmt.ends_with(");")
            || stmt.starts_with("static")
            || stmt.starts_with("typedef")
            || stmt.starts_with("_Static_assert")
            || stmt.contains("(*") && !stmt.contains(")(")
        {
            continue;
        }
        let Some(open) = stmt.find('(') else { continue };
        let name: String = stmt[..open]
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn exports_match_the_header() {
    let header = std::fs::read_to_string(repo().join("drivers/include/nooks/driver.h")).unwrap();
    let declared = declared_functions(&header);
    let mut exported: Vec<String> = EXPORTS.iter().map(|e| e.name.to_string()).collect();
    exported.sort();
    assert_eq!(declared, exported, "driver.h and policy EXPORTS differ");
}

#[test]
fn e1000_imports_only_exports() {
    let out = std::env::temp_dir().join(format!("nooks-policy-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let status = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repo().join("drivers/e1000"))
        .arg(format!("OUT={}", out.display()))
        .status()
        .unwrap();
    assert!(status.success(), "drivers/e1000 builds warning-free");
    let nm = Command::new("nm")
        .arg("-u")
        .arg(out.join("e1000.o"))
        .output()
        .unwrap();
    let imports: Vec<String> = String::from_utf8(nm.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    assert!(imports.len() > 20, "e1000 imports {imports:?}");
    let unknown: Vec<&String> = imports.iter().filter(|n| !is_exported(n)).collect();
    assert!(
        unknown.is_empty(),
        "e1000 imports functions the kernel does not export: {unknown:?}"
    );
    let objdump = Command::new("objdump")
        .arg("-d")
        .arg(out.join("e1000.o"))
        .output()
        .unwrap();
    let text = String::from_utf8(objdump.stdout).unwrap();
    assert!(!text.contains("%xmm"), "the driver uses SSE registers");
    std::fs::remove_dir_all(&out).ok();
}
