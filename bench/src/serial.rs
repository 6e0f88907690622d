//! Reads what the kernel says on its serial console (see docs/ARCHITECTURE.md,
//! "Serial protocol"): cargo-style ktest lines and `{"nooks":...}` JSON records.

/// The outcome of one in-kernel test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtestResult {
    /// The test's name.
    pub name: String,
    /// Whether it printed `ok`.
    pub passed: bool,
}

/// Everything the ktest runner printed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KtestReport {
    /// Each `test <name> ... ok|FAILED` line, in order.
    pub results: Vec<KtestResult>,
    /// The closing `test result:` line's counts (passed, failed), if it was printed.
    pub summary: Option<(u32, u32)>,
}

impl KtestReport {
    /// Parses a serial log.
    pub fn parse(log: &str) -> Self {
        let mut report = KtestReport::default();
        for line in log.lines().map(str::trim_end) {
            if let Some(rest) = line.strip_prefix("test result: ") {
                report.summary = parse_summary(rest);
            } else if let Some(rest) = line.strip_prefix("test ") {
                if let Some((name, verdict)) = rest.rsplit_once(" ... ") {
                    let passed = match verdict {
                        "ok" => true,
                        v if v.starts_with("FAILED") => false,
                        _ => continue,
                    };
                    report.results.push(KtestResult {
                        name: name.to_string(),
                        passed,
                    });
                }
            }
        }
        report
    }

    /// Whether the named test ran and passed.
    pub fn passed(&self, name: &str) -> bool {
        self.results.iter().any(|r| r.name == name && r.passed)
    }

    /// Names of the tests that failed.
    pub fn failures(&self) -> Vec<&str> {
        self.results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.name.as_str())
            .collect()
    }
}

fn parse_summary(rest: &str) -> Option<(u32, u32)> {
    // "ok. 5 passed; 0 failed; ..." or "FAILED. 4 passed; 1 failed; ..."
    let counts = rest.split_once(". ")?.1;
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse() else { continue };
        match what {
            "passed" => passed = Some(n),
            "failed" => failed = Some(n),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

/// The `{"nooks":...}` JSON records of a log, in order.
pub fn records(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| {
            let start = l.find("{\"nooks\"")?;
            serde_json::from_str(l[start..].trim_end()).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ktest_output() {
        let log = "[ 0.1] INFO boot\r\ntest timer_ticks ... ok\r\ntest page_fault_caught ... FAILED\n  cr2 mismatch\ntest result: FAILED. 1 passed; 1 failed; 0 ignored\n";
        let r = KtestReport::parse(log);
        assert_eq!(r.results.len(), 2);
        assert!(r.passed("timer_ticks"));
        assert!(!r.passed("page_fault_caught"));
        assert_eq!(r.failures(), vec!["page_fault_caught"]);
        assert_eq!(r.summary, Some((1, 1)));
    }

    #[test]
    fn finds_json_records() {
        let log = "noise\n{\"nooks\":\"workload\",\"sent\":3}\n{\"nooks\": broken\n";
        let r = records(log);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["sent"], 3);
    }
}
