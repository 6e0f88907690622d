//! Per-driver isolation policies, as text:
//!
//! ```text
//! # e1000: MMIO only
//! driver e1000
//! import *                  # every kernel export, or a list of names
//! ports 0x3f8-0x3ff         # I/O port ranges the driver may use (in/out)
//! entry e1000_intr          # extra entry points to check at return
//! ```
//!
//! A bad policy is an error with its line, column and what is wrong.

use crate::exports::is_exported;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Which kernel functions a driver may import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imports {
    /// Every export.
    All,
    /// Only these.
    Only(Vec<String>),
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The driver's name, if given.
    pub driver: Option<String>,
    /// Allowed imports.
    pub imports: Imports,
    /// Allowed I/O port ranges, inclusive.
    pub ports: Vec<(u16, u16)>,
    /// Entry points named by the policy, beyond those the kernel finds itself.
    pub entries: Vec<String>,
}

impl Default for Policy {
    /// The default policy: every export, no I/O ports, no extra entries.
    fn default() -> Self {
        Policy {
            driver: None,
            imports: Imports::All,
            ports: Vec::new(),
            entries: Vec::new(),
        }
    }
}

impl Policy {
    /// Whether the driver may import `name`.
    pub fn allows_import(&self, name: &str) -> bool {
        is_exported(name)
            && match &self.imports {
                Imports::All => true,
                Imports::Only(names) => names.iter().any(|n| n == name),
            }
    }

    /// Whether the driver may access I/O port `port`.
    pub fn allows_port(&self, port: u16) -> bool {
        self.ports.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }
}

/// What is wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyErrorKind {
    /// A line starts with a word that is not a directive.
    UnknownDirective(String),
    /// A directive lacks its value.
    MissingValue(&'static str),
    /// An import names a function the kernel does not export.
    NotExported(String),
    /// A port or port range does not parse.
    BadPort(String),
    /// A range whose end is below its start.
    InvertedRange(String),
    /// `driver` given twice.
    DuplicateDriver,
    /// `import *` mixed with named imports.
    MixedImports,
}

/// A policy error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column of the offending word.
    pub column: usize,
    /// What is wrong.
    pub kind: PolicyErrorKind,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy line {}, column {}: ", self.line, self.column)?;
        match &self.kind {
            PolicyErrorKind::UnknownDirective(w) => write!(
                f,
                "unknown directive `{w}` (expected driver, import, ports or entry)"
            ),
            PolicyErrorKind::MissingValue(d) => write!(f, "`{d}` needs a value"),
            PolicyErrorKind::NotExported(n) => {
                write!(f, "`{n}` is not a function the kernel exports")
            }
            PolicyErrorKind::BadPort(p) => {
                write!(f, "`{p}` is not a port or port range (e.g. 0x3f8-0x3ff)")
            }
            PolicyErrorKind::InvertedRange(p) => {
                write!(f, "port range `{p}` ends before it starts")
            }
            PolicyErrorKind::DuplicateDriver => write!(f, "`driver` given twice"),
            PolicyErrorKind::MixedImports => {
                write!(f, "`import *` cannot be mixed with named imports")
            }
        }
    }
}

fn parse_port(word: &str) -> Option<u16> {
    match word.strip_prefix("0x") {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => word.parse().ok(),
    }
}

/// Parses a policy.
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let mut policy = Policy {
        imports: Imports::Only(Vec::new()),
        ..Policy::default()
    };
    let mut saw_star = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        let mut words = Vec::new();
        let mut col = 0;
        for w in line.split(|c: char| c.is_ascii_whitespace()) {
            if !w.is_empty() {
                words.push((col + 1, w));
            }
            col += w.len() + 1;
        }
        let Some(&(dcol, directive)) = words.first() else {
            continue;
        };
        let err = |column, kind| PolicyError {
            line: n + 1,
            column,
            kind,
        };
        let args = &words[1..];
        let need = |name: &'static str| {
            if args.is_empty() {
                Err(err(dcol, PolicyErrorKind::MissingValue(name)))
            } else {
                Ok(())
            }
        };
        match directive {
            "driver" => {
                need("driver")?;
                if policy.driver.is_some() {
                    return Err(err(dcol, PolicyErrorKind::DuplicateDriver));
                }
                policy.driver = Some(args[0].1.to_string());
            }
            "import" => {
                need("import")?;
                for &(c, name) in args {
                    let Imports::Only(list) = &mut policy.imports else {
                        unreachable!("set to All only at the end")
                    };
                    if name == "*" {
                        if !list.is_empty() {
                            return Err(err(c, PolicyErrorKind::MixedImports));
                        }
                        saw_star = true;
                    } else if saw_star {
                        return Err(err(c, PolicyErrorKind::MixedImports));
                    } else if !is_exported(name) {
                        return Err(err(c, PolicyErrorKind::NotExported(name.to_string())));
                    } else {
                        list.push(name.to_string());
                    }
                }
            }
            "ports" => {
                need("ports")?;
                for &(c, range) in args {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    let (Some(lo), Some(hi)) = (parse_port(lo), parse_port(hi)) else {
                        return Err(err(c, PolicyErrorKind::BadPort(range.to_string())));
                    };
                    if hi < lo {
                        return Err(err(c, PolicyErrorKind::InvertedRange(range.to_string())));
                    }
                    policy.ports.push((lo, hi));
                }
            }
            "entry" => {
                need("entry")?;
                policy
                    .entries
                    .extend(args.iter().map(|(_, w)| w.to_string()));
            }
            other => {
                return Err(err(
                    dcol,
                    PolicyErrorKind::UnknownDirective(other.to_string()),
                ));
            }
        }
    }
    if saw_star {
        policy.imports = Imports::All;
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_policy() {
        let p = parse("# comment\ndriver e1000\nimport printk kmalloc # trailing\nports 0x3f8-0x3ff 0x80\nentry e1000_intr\n").unwrap();
        assert_eq!(p.driver.as_deref(), Some("e1000"));
        assert!(p.allows_import("printk") && !p.allows_import("kfree"));
        assert!(p.allows_port(0x3fa) && p.allows_port(0x80) && !p.allows_port(0x81));
        assert_eq!(p.entries, ["e1000_intr"]);
        let all = parse("import *").unwrap();
        assert!(all.allows_import("kfree") && !all.allows_import("wrmsr_safe"));
    }

    #[test]
    fn errors_are_located() {
        let e = parse("driver x\n  imprt foo").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.to_string().contains("unknown directive `imprt`"));
        let e = parse("import printk steal_keys").unwrap_err();
        assert_eq!(e.kind, PolicyErrorKind::NotExported("steal_keys".into()));
        assert_eq!(e.column, 15);
        assert!(matches!(
            parse("ports 0x400-0x3ff").unwrap_err().kind,
            PolicyErrorKind::InvertedRange(_)
        ));
        assert!(matches!(
            parse("ports 70000").unwrap_err().kind,
            PolicyErrorKind::BadPort(_)
        ));
        assert!(matches!(
            parse("import * printk").unwrap_err().kind,
            PolicyErrorKind::MixedImports
        ));
        assert!(matches!(
            parse("entry").unwrap_err().kind,
            PolicyErrorKind::MissingValue("entry")
        ));
        assert!(matches!(
            parse("driver a\ndriver b").unwrap_err().kind,
            PolicyErrorKind::DuplicateDriver
        ));
    }
}
