//! The one error type of nooks-cc: where the input could not be rewritten and
//! why, precise enough to find the instruction in the source.

use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not an ELF file, not x86-64, or not relocatable.
    BadInput(String),
    /// An instruction nooks-cc cannot rewrite (or must refuse, for privileged ones).
    UnsupportedInstruction,
    /// A relocation type or target nooks-cc cannot carry over.
    UnsupportedRelocation(String),
    /// Control flow nooks-cc cannot follow (a jump into the middle of another function...).
    UnsupportedControlFlow(String),
    /// A section nooks-cc cannot carry over.
    UnsupportedSection(String),
    /// Cranelift refused the lifted code (a bug in the lifter).
    Codegen(String),
    /// Writing the output failed.
    Output(String),
    /// The policy forbids what the instruction does.
    Forbidden(String),
    /// No placeholder for the window checks (see `window`) lies clear of the
    /// body's constants (this many).
    PlaceholderClash(usize),
}

/// An error with its location in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The function it happened in.
    pub function: Option<String>,
    /// Offset of the instruction from the function start.
    pub offset: Option<u64>,
    /// `file:line` from the input's DWARF, when it has any.
    pub line: Option<String>,
    /// The instruction, disassembled.
    pub disassembly: Option<String>,
}

impl RewriteError {
    /// An error with no location.
    pub fn new(kind: ErrorKind) -> Self {
        RewriteError {
            kind,
            function: None,
            offset: None,
            line: None,
            disassembly: None,
        }
    }
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::BadInput(s) => write!(f, "bad input: {s}")?,
            ErrorKind::UnsupportedInstruction => write!(f, "unsupported instruction")?,
            ErrorKind::UnsupportedRelocation(s) => write!(f, "unsupported relocation: {s}")?,
            ErrorKind::UnsupportedControlFlow(s) => write!(f, "unsupported control flow: {s}")?,
            ErrorKind::UnsupportedSection(s) => write!(f, "unsupported section: {s}")?,
            ErrorKind::Codegen(s) => write!(f, "code generation failed: {s}")?,
            ErrorKind::Output(s) => write!(f, "writing the output failed: {s}")?,
            ErrorKind::Forbidden(s) => write!(f, "forbidden by the policy: {s}")?,
            ErrorKind::PlaceholderClash(n) => write!(
                f,
                "no placeholder for the window checks lies clear of the function's {n} constants (unsupported under sfi)"
            )?,
        }
        if let Some(func) = &self.function {
            write!(f, " in {func}")?;
            if let Some(off) = self.offset {
                write!(f, "+{off:#x}")?;
            }
        }
        if let Some(line) = &self.line {
            write!(f, " ({line})")?;
        }
        if let Some(d) = &self.disassembly {
            write!(f, ": `{d}`")?;
        }
        Ok(())
    }
}

impl std::error::Error for RewriteError {}

impl RewriteError {
    /// The error as compilers print theirs, for editors and build logs to
    /// parse: `file:line: error: ...` (the source line from the input's
    /// DWARF, else `object:function+offset`, else the object), then a
    /// `note:` line where one helps.
    pub fn diagnostic(&self, object: &str) -> String {
        let place = match (&self.function, self.offset) {
            (Some(func), Some(off)) => Some(format!("{func}+{off:#x}")),
            (Some(func), None) => Some(func.clone()),
            _ => None,
        };
        let location = match (&self.line, &place) {
            (Some(line), _) => line.clone(),
            (None, Some(p)) => format!("{object}:{p}"),
            (None, None) => object.to_string(),
        };
        let mut what = RewriteError {
            line: None,
            ..self.clone()
        }
        .to_string();
        if self.line.is_some() {
            what.push_str(&format!(" [{object}]"));
        }
        let mut out = format!("{location}: error: {what}");
        if let Some(note) = self.hint() {
            out.push_str(&format!("\n{location}: note: {note}"));
        }
        out
    }

    /// What to try, where the cause is a build flag or the policy.
    pub fn hint(&self) -> Option<&'static str> {
        let insn = self.disassembly.as_deref().unwrap_or("");
        match &self.kind {
            ErrorKind::UnsupportedControlFlow(what) if what.contains("out of the function") => {
                Some(
                    "a jump to code outside the function: if gcc split it into hot and cold parts that nooks-cc could not pair, build with -fno-reorder-blocks-and-partition",
                )
            }
            ErrorKind::UnsupportedControlFlow(_) => Some(
                "an indirect jump nooks-cc could not resolve (jump tables are taken as gcc writes them without -fpic): build with -fno-pic, or -fno-jump-tables",
            ),
            ErrorKind::UnsupportedRelocation(what)
                if what.starts_with("type 2 ") && what.contains(".rodata") =>
            {
                Some(
                    "a position-independent jump table (offsets in .rodata): build with -fno-pic (the driver ABI), or -fno-jump-tables",
                )
            }
            ErrorKind::UnsupportedInstruction
                if ["pdep", "pext", "mulx", "adcx", "adox"]
                    .iter()
                    .any(|m| insn.starts_with(m)) =>
            {
                Some(
                    "a BMI2/ADX instruction nooks-cc does not lift yet: build without -mbmi2/-madx (or -march=native)",
                )
            }
            ErrorKind::Forbidden(_) => Some(
                "the driver's policy (--policy) does not allow it; widen the policy or change the driver",
            ),
            _ => None,
        }
    }
}

/// The result type of nooks-cc's library.
pub type Result<T> = std::result::Result<T, RewriteError>;
