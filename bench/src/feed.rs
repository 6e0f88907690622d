//! The host side of the RX-only workload: frames sent into QEMU's hub from a
//! UDP socket (`-netdev dgram` joined to the hub), so one NIC receives a
//! stream no guest driver transmitted. The kernel announces what it expects
//! (`{"nooks":"rx-ready","dst":..,"src":..,"size":..,"frames":..}`) and
//! verifies every frame: the same layout and byte pattern as the kernel's own
//! workload (`kernel/src/workload.rs`).

use std::net::UdpSocket;
use std::time::Duration;

/// EtherType of workload frames.
const ETHERTYPE: u16 = 0x88b5;

/// Byte `i` of frame `seq`.
pub fn pattern(seq: u32, i: usize) -> u8 {
    (seq as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ ((i >> 8) as u8)
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// Frame `seq` of `size` bytes from `src` to `dst`.
pub fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, size: usize) -> Vec<u8> {
    let mut f = vec![0u8; size.max(18)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f.iter_mut().enumerate().skip(18) {
        *b = pattern(seq, i);
    }
    f
}

/// What an `rx-ready` record asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The receiving NIC.
    pub dst: [u8; 6],
    /// The sender the kernel expects.
    pub src: [u8; 6],
    /// Frame size.
    pub size: usize,
    /// Frames.
    pub frames: u32,
}

/// Parses a serial line holding an `rx-ready` record.
pub fn request(line: &str) -> Option<Request> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if v["nooks"] != "rx-ready" {
        return None;
    }
    Some(Request {
        dst: parse_mac(v["dst"].as_str()?)?,
        src: parse_mac(v["src"].as_str()?)?,
        size: usize::try_from(v["size"].as_u64()?).ok()?,
        frames: u32::try_from(v["frames"].as_u64()?).ok()?,
    })
}

/// Sends a request's frames from `socket` to QEMU at `to`, one every `gap`.
pub fn send(socket: &UdpSocket, to: (&str, u16), r: Request, gap: Duration) {
    for seq in 0..r.frames {
        let _ = socket.send_to(&frame(r.dst, r.src, seq, r.size), to);
        std::thread::sleep(gap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_sequence_and_pattern() {
        let f = frame([1; 6], [2; 6], 7, 64);
        assert_eq!(f.len(), 64);
        assert_eq!(&f[12..14], &[0x88, 0xb5]);
        assert_eq!(&f[14..18], &7u32.to_be_bytes());
        assert_eq!(f[20], pattern(7, 20));
    }

    #[test]
    fn requests_parse() {
        let r = request(r#"{"nooks":"rx-ready","dst":"52:54:00:12:34:02","src":"52:54:00:12:34:fe","size":512,"frames":10}"#).unwrap();
        assert_eq!(r.dst, [0x52, 0x54, 0, 0x12, 0x34, 2]);
        assert_eq!((r.size, r.frames), (512, 10));
        assert!(request(r#"{"nooks":"load"}"#).is_none());
        assert!(request("not json").is_none());
    }
}
