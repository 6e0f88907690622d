//! Boot-module archives: QEMU hands the kernel one `-initrd` file, so every driver
//! object (and the kernel's symbol map) travels in one standard `ar` archive,
//! made on the host with `ar rcs` or the bench runner.

use alloc::vec::Vec;

/// One member of a boot-module archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// The member's file name, without directories.
    pub name: &'a str,
    /// The member's bytes, borrowed from the archive.
    pub data: &'a [u8],
}

/// Why an archive could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveError {
    /// The bytes are not an `ar` archive, or its headers are inconsistent.
    Malformed,
    /// A member's header points outside the archive.
    MemberOutOfBounds,
}

impl core::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArchiveError::Malformed => f.write_str("not a well-formed ar archive"),
            ArchiveError::MemberOutOfBounds => {
                f.write_str("an archive member lies outside the archive")
            }
        }
    }
}

/// Lists the members of an `ar` archive in archive order (symbol indexes excluded).
pub fn members(bytes: &[u8]) -> Result<Vec<Member<'_>>, ArchiveError> {
    let archive = goblin::archive::Archive::parse(bytes).map_err(|_| ArchiveError::Malformed)?;
    let mut out = Vec::with_capacity(archive.len());
    for name in archive.members() {
        let data = archive
            .extract(name, bytes)
            .map_err(|_| ArchiveError::MemberOutOfBounds)?;
        out.push(Member { name, data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::process::Command;

    #[test]
    fn reads_members_made_by_ar() {
        let dir = std::env::temp_dir().join(std::format!("nooks-ar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.o"), b"first member").unwrap();
        std::fs::write(dir.join("b.map"), b"odd-sized\n").unwrap();
        let status = Command::new("ar")
            .current_dir(&dir)
            .args(["rcS", "m.a", "a.o", "b.map"])
            .status()
            .expect("ar runs");
        assert!(status.success());
        let bytes = std::fs::read(dir.join("m.a")).unwrap();
        let m = members(&bytes).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            Member {
                name: "a.o",
                data: b"first member"
            }
        );
        assert_eq!(
            m[1],
            Member {
                name: "b.map",
                data: b"odd-sized\n"
            }
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(members(b"not an archive"), Err(ArchiveError::Malformed));
        let mut bytes = std::vec::Vec::from(&b"!<arch>\n"[..]);
        bytes.extend_from_slice(b"a.o/            0           0     0     644     999       `\n");
        bytes.extend_from_slice(b"short");
        assert!(members(&bytes).is_err());
    }
}
