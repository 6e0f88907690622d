//! The fault injector, in the spirit of Nooks' and Rio's: it patches one
//! machine instruction of an original gcc object, in place and at the same
//! length, so the object keeps its layout and relocations. A (kind, seed)
//! pair names a fault reproducibly. Because it works on the original object,
//! the same fault runs under every mechanism: load the patched object as is
//! under `none` or `mmu`, or rewrite it with nooks-cc for `sfi`.
//!
//! Kinds (what the patch does):
//! - `store-address`: a store's displacement is corrupted (it writes elsewhere);
//! - `store-value`: a store writes another register, or a corrupted immediate;
//! - `null-pointer`, `random-pointer`: a 64-bit load yields NULL or garbage;
//! - `off-by-one`: a loop or bounds test includes or excludes its limit
//!   (`jl`↔`jle`, `jb`↔`jbe`, ...);
//! - `skip-unlock`: a call to `spin_unlock*` is removed;
//! - `irq-off`: `spin_unlock_irqrestore` gets flags 0, so interrupts stay off;
//! - `remove-instruction`: an instruction becomes NOPs;
//! - `infinite-loop`: an instruction becomes a jump to itself;
//! - `bad-free`: a pointer passed to `kfree`/`dev_kfree_skb_any` comes from
//!   the wrong register.

use crate::read::{self, Input};
use iced_x86::{
    Code, ConditionCode, Decoder, DecoderOptions, FlowControl, Instruction, OpKind, Register,
};
use std::fmt;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Corrupted store address.
    StoreAddress,
    /// Corrupted store value.
    StoreValue,
    /// A pointer load yields NULL.
    NullPointer,
    /// A pointer load yields garbage.
    RandomPointer,
    /// A comparison's limit is off by one.
    OffByOne,
    /// An unlock is skipped.
    SkipUnlock,
    /// Interrupts are left disabled.
    IrqOff,
    /// An instruction is removed.
    RemoveInstruction,
    /// An infinite loop.
    InfiniteLoop,
    /// A bad free through the API.
    BadFree,
}

/// Every kind, in the order the campaign cycles through them.
pub const ALL: [FaultKind; 10] = [
    FaultKind::StoreAddress,
    FaultKind::StoreValue,
    FaultKind::NullPointer,
    FaultKind::RandomPointer,
    FaultKind::OffByOne,
    FaultKind::SkipUnlock,
    FaultKind::IrqOff,
    FaultKind::RemoveInstruction,
    FaultKind::InfiniteLoop,
    FaultKind::BadFree,
];

impl FaultKind {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::StoreAddress => "store-address",
            FaultKind::StoreValue => "store-value",
            FaultKind::NullPointer => "null-pointer",
            FaultKind::RandomPointer => "random-pointer",
            FaultKind::OffByOne => "off-by-one",
            FaultKind::SkipUnlock => "skip-unlock",
            FaultKind::IrqOff => "irq-off",
            FaultKind::RemoveInstruction => "remove-instruction",
            FaultKind::InfiniteLoop => "infinite-loop",
            FaultKind::BadFree => "bad-free",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Self> {
        ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// Why an injection could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// The object could not be read.
    BadObject(String),
    /// No instruction of the object suits this kind of fault.
    NoSite(FaultKind),
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectError::BadObject(e) => write!(f, "cannot inject into this object: {e}"),
            InjectError::NoSite(k) => write!(f, "no instruction suits a {} fault", k.name()),
        }
    }
}

impl std::error::Error for InjectError {}

/// What was injected where.
#[derive(Debug, Clone)]
pub struct Injection {
    /// The kind.
    pub kind: FaultKind,
    /// The seed that chose the site.
    pub seed: u64,
    /// The function patched.
    pub function: String,
    /// Offset of the instruction in the function.
    pub offset: u64,
    /// The instruction before and after, disassembled.
    pub before: String,
    /// After.
    pub after: String,
    /// The new bytes at `function + offset` (what a running image would be
    /// patched with).
    pub patch: Vec<u8>,
}

impl Injection {
    /// The kernel's `inject=` boot option that applies this fault to a
    /// running original object: `FUNCTION+0xOFFSET:HEXBYTES`.
    pub fn boot_option(&self) -> String {
        let hex: String = self.patch.iter().map(|b| format!("{b:02x}")).collect();
        format!("inject={}+{:#x}:{hex}", self.function, self.offset)
    }
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (seed {}) at {}+{:#x}: `{}` -> `{}`",
            self.kind.name(),
            self.seed,
            self.function,
            self.offset,
            self.before,
            self.after
        )
    }
}

/// A candidate site: where, the new bytes, and a relocation to neutralise.
struct Site {
    function: usize,
    offset: u64,
    len: usize,
    bytes: Vec<u8>,
    drop_reloc: Option<u64>,
}

/// splitmix64: a small, well-mixed, reproducible generator.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const NOP: u8 = 0x90;

fn padded(mut bytes: Vec<u8>, len: usize) -> Option<Vec<u8>> {
    if bytes.len() > len {
        return None;
    }
    bytes.resize(len, NOP);
    Some(bytes)
}

/// Offset of the opcode byte: after legacy prefixes and REX.
fn opcode_offset(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len()
        && matches!(
            raw[i],
            0x66 | 0x67 | 0xf2 | 0xf3 | 0xf0 | 0x2e | 0x3e | 0x26 | 0x36 | 0x64 | 0x65
        )
    {
        i += 1;
    }
    if i < raw.len() && (0x40..=0x4f).contains(&raw[i]) {
        i += 1;
    }
    i
}

/// The encoding number (0-15) of a general register, any width.
fn gpr(reg: Register) -> Option<usize> {
    let n = reg
        .full_register()
        .number()
        .checked_sub(Register::RAX.number())?;
    (n < 16).then_some(n)
}

/// `xor r32, r32` for a 64-bit general register (zero-extends to 64 bits).
fn xor_self(reg: Register) -> Option<Vec<u8>> {
    let n = gpr(reg)?;
    let low = (n & 7) as u8;
    let modrm = 0xc0 | (low << 3) | low;
    Some(if n >= 8 {
        vec![0x45, 0x31, modrm]
    } else {
        vec![0x31, modrm]
    })
}

/// `mov r32, imm32`.
fn mov_imm(reg: Register, value: u32) -> Option<Vec<u8>> {
    let n = gpr(reg)?;
    let mut v = Vec::new();
    if n >= 8 {
        v.push(0x41);
    }
    v.push(0xb8 + (n & 7) as u8);
    v.extend_from_slice(&value.to_le_bytes());
    Some(v)
}

fn is_store(i: &Instruction) -> bool {
    i.op_count() >= 2
        && i.op0_kind() == OpKind::Memory
        && matches!(i.mnemonic(), iced_x86::Mnemonic::Mov)
        && !matches!(i.memory_base(), Register::RIP)
}

fn called_import<'a>(input: &'a Input, section: usize, offset: u64) -> Option<&'a str> {
    let sec = &input.sections[section];
    let r = sec
        .relocs
        .iter()
        .find(|r| r.offset == offset.wrapping_add(1))?;
    let sym = input.symbols.get(r.symbol)?;
    sym.is_undefined.then_some(sym.name.as_str())
}

fn sites(input: &Input, kind: FaultKind) -> Vec<Site> {
    let mut out = Vec::new();
    for (fi, f) in input.functions.iter().enumerate() {
        let sec = &input.sections[f.section];
        let start = f.offset as usize;
        let end = f.offset.saturating_add(f.size) as usize;
        let Some(code) = sec.data.get(start..end) else {
            continue;
        };
        let mut decoder = Decoder::with_ip(64, code, f.offset, DecoderOptions::NONE);
        let mut window: Vec<(Instruction, Vec<u8>)> = Vec::new();
        while decoder.can_decode() {
            let ins = decoder.decode();
            if ins.code() == Code::INVALID {
                break;
            }
            let at = (ins.ip() - f.offset) as usize;
            let raw = code[at..at + ins.len()].to_vec();
            let off = ins.ip();
            let site = |bytes: Vec<u8>| Site {
                function: fi,
                offset: off,
                len: ins.len(),
                bytes,
                drop_reloc: None,
            };
            let relocated = sec
                .relocs
                .iter()
                .any(|r| r.offset >= off && r.offset < off + ins.len() as u64);
            match kind {
                FaultKind::StoreAddress if is_store(&ins) && !relocated => {
                    let offsets = decoder.get_constant_offsets(&ins);
                    if offsets.has_displacement() {
                        let at = offsets.displacement_offset();
                        let mut b = raw.clone();
                        // Far enough to leave the object it pointed into.
                        match offsets.displacement_size() {
                            1 => b[at] ^= 0x40,
                            _ => b[at + 3] ^= 0x10,
                        }
                        out.push(site(b));
                    }
                }
                FaultKind::StoreValue if is_store(&ins) && !relocated => {
                    let offsets = decoder.get_constant_offsets(&ins);
                    let op = opcode_offset(&raw);
                    if offsets.has_immediate() {
                        let mut b = raw.clone();
                        b[offsets.immediate_offset()] ^= 0x5a;
                        out.push(site(b));
                    } else if matches!(raw.get(op), Some(0x88 | 0x89)) && op + 1 < raw.len() {
                        let mut b = raw.clone();
                        b[op + 1] ^= 0x08; // another source register
                        out.push(site(b));
                    }
                }
                FaultKind::NullPointer | FaultKind::RandomPointer
                    if ins.mnemonic() == iced_x86::Mnemonic::Mov
                        && ins.op0_kind() == OpKind::Register
                        && ins.op1_kind() == OpKind::Memory
                        && ins.op0_register().size() == 8
                        && !relocated =>
                {
                    let reg = ins.op0_register();
                    let new = if kind == FaultKind::NullPointer {
                        xor_self(reg)
                    } else {
                        mov_imm(reg, 0x5a5a_5a5a)
                    };
                    if let Some(b) = new.and_then(|b| padded(b, ins.len())) {
                        out.push(site(b));
                    }
                }
                FaultKind::OffByOne if ins.flow_control() == FlowControl::ConditionalBranch => {
                    let swapped = match ins.condition_code() {
                        ConditionCode::l => Some(0xe),
                        ConditionCode::le => Some(0xc),
                        ConditionCode::g => Some(0xd),
                        ConditionCode::ge => Some(0xf),
                        ConditionCode::b => Some(0x6),
                        ConditionCode::be => Some(0x2),
                        ConditionCode::a => Some(0x3),
                        ConditionCode::ae => Some(0x7),
                        _ => None,
                    };
                    if let Some(cc) = swapped {
                        let op = opcode_offset(&raw);
                        let mut b = raw.clone();
                        if raw[op] == 0x0f {
                            b[op + 1] = 0x80 | cc;
                        } else {
                            b[op] = 0x70 | cc;
                        }
                        out.push(site(b));
                    }
                }
                FaultKind::SkipUnlock if raw.first() == Some(&0xe8) => {
                    if let Some(name) = called_import(input, f.section, off)
                        && name.starts_with("spin_unlock")
                    {
                        let mut s = site(vec![NOP; 5]);
                        s.drop_reloc = Some(off + 1);
                        out.push(s);
                    }
                }
                FaultKind::IrqOff | FaultKind::BadFree if raw.first() == Some(&0xe8) => {
                    let wanted = match kind {
                        FaultKind::IrqOff => called_import(input, f.section, off)
                            .is_some_and(|n| n == "spin_unlock_irqrestore"),
                        _ => called_import(input, f.section, off)
                            .is_some_and(|n| n == "kfree" || n == "dev_kfree_skb_any"),
                    };
                    let arg = if kind == FaultKind::IrqOff {
                        Register::RSI
                    } else {
                        Register::RDI
                    };
                    // The instruction that set the argument, among the last few.
                    let setter = wanted
                        .then(|| {
                            window.iter().rev().take(6).find(|(p, _)| {
                                p.op_count() == 2
                                    && p.op0_kind() == OpKind::Register
                                    && p.op0_register().full_register() == arg
                            })
                        })
                        .flatten();
                    if let Some((p, praw)) = setter {
                        let poff = p.ip();
                        let new = if kind == FaultKind::IrqOff {
                            xor_self(arg).and_then(|b| padded(b, p.len()))
                        } else {
                            // A register-to-register move: take another source register.
                            let op = opcode_offset(praw);
                            (matches!(praw.get(op), Some(0x89 | 0x8b))
                                && praw.get(op + 1).is_some_and(|m| m >> 6 == 3))
                            .then(|| {
                                let mut b = praw.clone();
                                b[op + 1] ^= if praw[op] == 0x89 { 0x08 } else { 0x01 };
                                b
                            })
                        };
                        if let Some(b) = new {
                            out.push(Site {
                                function: fi,
                                offset: poff,
                                len: p.len(),
                                bytes: b,
                                drop_reloc: None,
                            });
                        }
                    }
                }
                FaultKind::RemoveInstruction
                    if ins.flow_control() == FlowControl::Next && !relocated =>
                {
                    out.push(site(vec![NOP; ins.len()]));
                }
                FaultKind::InfiniteLoop
                    if ins.len() >= 2
                        && !relocated
                        && matches!(
                            ins.flow_control(),
                            FlowControl::Next
                                | FlowControl::ConditionalBranch
                                | FlowControl::UnconditionalBranch
                        ) =>
                {
                    if let Some(b) = padded(vec![0xeb, 0xfe], ins.len()) {
                        out.push(site(b));
                    }
                }
                _ => {}
            }
            window.push((ins, raw));
        }
    }
    out
}

/// Raw ELF64 section header fields: (type, file offset, size, info).
fn section_headers(bytes: &[u8]) -> Option<Vec<(u32, usize, usize, u32)>> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    (0..shnum)
        .map(|i| {
            let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
            Some((
                u32_at(h + 4)?,
                usize::try_from(u64_at(h + 0x18)?).ok()?,
                usize::try_from(u64_at(h + 0x20)?).ok()?,
                u32_at(h + 0x2c)?,
            ))
        })
        .collect()
}

/// Injects one fault of `kind`, at the site `seed` chooses, into `object`;
/// returns the patched object and what was done.
pub fn inject(
    object: &[u8],
    kind: FaultKind,
    seed: u64,
) -> Result<(Vec<u8>, Injection), InjectError> {
    inject_in(object, kind, seed, None)
}

/// As [`inject`], choosing only among the sites in function `only` if given.
pub fn inject_in(
    object: &[u8],
    kind: FaultKind,
    seed: u64,
    only: Option<&str>,
) -> Result<(Vec<u8>, Injection), InjectError> {
    let input = read::read(object).map_err(|e| InjectError::BadObject(e.to_string()))?;
    let mut candidates = sites(&input, kind);
    if let Some(name) = only {
        candidates.retain(|s| input.functions[s.function].name == name);
    }
    if candidates.is_empty() {
        return Err(InjectError::NoSite(kind));
    }
    let site = &candidates[(mix(seed) % candidates.len() as u64) as usize];
    let f = &input.functions[site.function];
    let headers =
        section_headers(object).ok_or_else(|| InjectError::BadObject("section headers".into()))?;
    let (_, text_at, text_size, _) = headers[f.section];
    let at = text_at + site.offset as usize;
    if site.offset as usize + site.len > text_size || at + site.len > object.len() {
        return Err(InjectError::BadObject("site outside its section".into()));
    }
    let mut out = object.to_vec();
    let before = disassemble(&object[at..at + site.len], site.offset);
    out[at..at + site.len].copy_from_slice(&site.bytes);
    let after = disassemble(&site.bytes, site.offset);
    if let Some(r_offset) = site.drop_reloc {
        // R_X86_64_NONE: the loader skips it, so the NOPs stay NOPs.
        const SHT_RELA: u32 = 4;
        let rela = headers
            .iter()
            .find(|(t, _, _, info)| *t == SHT_RELA && *info as usize == f.section)
            .ok_or_else(|| InjectError::BadObject("no relocations for the text".into()))?;
        let entry = (0..rela.2 / 24)
            .map(|i| rela.1 + i * 24)
            .find(|e| out.get(*e..*e + 8) == Some(&r_offset.to_le_bytes()[..]))
            .ok_or_else(|| InjectError::BadObject("the call's relocation is missing".into()))?;
        // r_info = (symbol << 32) | type: clear the type.
        out[entry + 8..entry + 12].copy_from_slice(&0u32.to_le_bytes());
    }
    Ok((
        out,
        Injection {
            kind,
            seed,
            function: f.name.clone(),
            offset: site.offset - f.offset,
            before,
            after,
            patch: site.bytes.clone(),
        },
    ))
}

fn disassemble(bytes: &[u8], ip: u64) -> String {
    use iced_x86::Formatter;
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut fmt = iced_x86::IntelFormatter::new();
    let mut parts = Vec::new();
    while decoder.can_decode() {
        let i = decoder.decode();
        let mut s = String::new();
        fmt.format(&i, &mut s);
        parts.push(s);
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ALL {
            assert_eq!(FaultKind::parse(k.name()), Some(k));
        }
        assert_eq!(FaultKind::parse("nope"), None);
    }

    #[test]
    fn register_encodings() {
        assert_eq!(xor_self(Register::RAX), Some(vec![0x31, 0xc0]));
        assert_eq!(xor_self(Register::RSI), Some(vec![0x31, 0xf6]));
        assert_eq!(xor_self(Register::R9), Some(vec![0x45, 0x31, 0xc9]));
        assert_eq!(mov_imm(Register::RDX, 1), Some(vec![0xba, 1, 0, 0, 0]));
        assert_eq!(
            mov_imm(Register::R12, 1),
            Some(vec![0x41, 0xbc, 1, 0, 0, 0])
        );
        assert_eq!(opcode_offset(&[0x66, 0x48, 0x89, 0x07]), 2);
    }

    #[test]
    fn a_bad_object_is_an_error() {
        assert!(matches!(
            inject(b"not an elf", FaultKind::NullPointer, 1),
            Err(InjectError::BadObject(_))
        ));
    }
}
