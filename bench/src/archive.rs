//! Packs boot modules into one `ar` archive: QEMU passes a single `-initrd` file,
//! which the kernel reads with `nooks_loader::archive`.

/// Builds a System V / GNU `ar` archive from `(name, bytes)` members, in order.
///
/// Names longer than 15 bytes go through the GNU `//` long-name table.
pub fn pack(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut long_names = Vec::new();
    let mut header_names = Vec::with_capacity(members.len());
    for (name, _) in members {
        if name.len() <= 15 {
            header_names.push(format!("{name}/"));
        } else {
            header_names.push(format!("/{}", long_names.len()));
            long_names.extend_from_slice(name.as_bytes());
            long_names.extend_from_slice(b"/\n");
        }
    }
    let mut out = b"!<arch>\n".to_vec();
    if !long_names.is_empty() {
        push_member(&mut out, "//", &long_names);
    }
    for ((_, data), header_name) in members.iter().zip(&header_names) {
        push_member(&mut out, header_name, data);
    }
    out
}

fn push_member(out: &mut Vec<u8>, header_name: &str, data: &[u8]) {
    let header = format!(
        "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        header_name,
        0,
        0,
        0,
        644,
        data.len()
    );
    debug_assert_eq!(header.len(), 60);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

/// FNV-1a 64: the checksum the kernel's `boot_module_intact` test recomputes.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn binutils_ar_reads_what_we_pack() {
        let dir = std::env::temp_dir().join(format!("nooks-pack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let long = "a-rather-long-member-name.o";
        let bytes = pack(&[
            ("e1000.o", b"abc"),
            (long, b"0123456789"),
            ("kernel.map", b"x"),
        ]);
        std::fs::write(dir.join("m.a"), &bytes).unwrap();
        let listing = Command::new("ar")
            .arg("t")
            .arg(dir.join("m.a"))
            .output()
            .unwrap();
        assert!(listing.status.success());
        assert_eq!(
            String::from_utf8(listing.stdout).unwrap(),
            format!("e1000.o\n{long}\nkernel.map\n")
        );
        let content = Command::new("ar")
            .arg("p")
            .arg(dir.join("m.a"))
            .arg(long)
            .output()
            .unwrap();
        assert_eq!(content.stdout, b"0123456789");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
