//! Stage 4, instrument: the SFI pass over the lifted IR (`--isolation sfi`).
//! Not implemented yet: asking for it is a clear error, never a silent no-op.

use crate::error::{ErrorKind, Result, RewriteError};

/// Instruments one lifted function.
pub fn instrument(_func: &mut cranelift_codegen::ir::Function) -> Result<()> {
    Err(RewriteError::new(ErrorKind::Codegen(
        "--isolation sfi is not implemented yet; use --isolation none".into(),
    )))
}
