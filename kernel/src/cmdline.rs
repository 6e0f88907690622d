//! The kernel command line: space-separated `key=value` words (see
//! docs/ARCHITECTURE.md for the keys).

/// The value of `key`, if present.
pub fn get<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The value of `key` parsed as a number (decimal, or hex with 0x).
pub fn get_u64(cmdline: &str, key: &str) -> Option<u64> {
    let v = get(cmdline, key)?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}
