//! Stages 5 and 6, compile and emit: declare everything in a Cranelift
//! `ObjectModule`, compile each lifted function, carry the data sections over
//! with their relocations retargeted at the rewritten functions, and write an
//! ordinary ELF relocatable object. Original data symbols are re-created at
//! their offsets inside the carried-over sections, so native code linking
//! against the object finds them where it always did.

use crate::HashMap;
use crate::decode;
use crate::error::{ErrorKind, Result, RewriteError};
use crate::lift::{self, Entry, Env, Lifter};
use crate::read::{Input, Kind};
use crate::{Isolation, Options};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, isa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module, default_libcall_names};
use cranelift_object::object::write::{Symbol as OutSymbol, SymbolSection};
use cranelift_object::object::{SymbolFlags, SymbolKind, SymbolScope};
use cranelift_object::{ObjectBuilder, ObjectModule};

/// Size of the emulated stack each rewritten object carries.
pub const ESTACK_SIZE: usize = nooks_policy::abi::ESTACK_SIZE;

/// What a rewrite produced.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// The output object.
    pub object: Vec<u8>,
    /// Lifted IR per function (with `emit_clif`).
    pub clif: Vec<(String, String)>,
    /// Output disassembly per function (with `emit_asm`).
    pub asm: Vec<(String, String)>,
    /// Statistics.
    pub stats: Stats,
    /// Where each function's window checks hold the placeholder (`window`).
    window_sites: Vec<(FuncId, Vec<crate::window::Site>)>,
    /// Each compiled function's unwind information (`unwind`).
    unwind: Vec<(FuncId, cranelift_codegen::isa::unwind::UnwindInfo)>,
}

/// Counts for reports and benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Functions rewritten.
    pub functions: usize,
    /// Input instructions lifted.
    pub instructions: usize,
    /// Stores in the lifted code.
    pub stores: usize,
    /// Bytes of input text.
    pub input_text: usize,
    /// Bytes of output text.
    pub output_text: usize,
    /// SFI store checks inserted.
    pub checks: usize,
}

fn codegen(e: impl std::fmt::Display, function: &str) -> RewriteError {
    RewriteError {
        function: Some(function.to_string()),
        ..RewriteError::new(ErrorKind::Codegen(e.to_string()))
    }
}

fn isa() -> Result<isa::OwnedTargetIsa> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v).map_err(|e| codegen(e, "(settings)"))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "unwind_info", "true")?;
    set(&mut flags, "preserve_frame_pointers", "true")?;
    let triple: target_lexicon::Triple = "x86_64-unknown-linux-gnu"
        .parse()
        .map_err(|e| codegen(e, "(triple)"))?;
    let builder = isa::lookup(triple).map_err(|e| codegen(e, "(isa)"))?;
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| codegen(e, "(isa)"))
}

/// Rewrites a parsed input; `original`, when given, is carried in
/// [`crate::ORIGINAL_SECTION`].
pub fn rewrite(input: &Input, opts: &Options, original: Option<&[u8]>) -> Result<Rewritten> {
    let isa = isa()?;
    let call_conv = isa.default_call_conv();
    let builder = ObjectBuilder::new(isa, "nooks-rewritten", default_libcall_names())
        .map_err(|e| codegen(e, "(object)"))?;
    let mut module = ObjectModule::new(builder);
    let m = |e: cranelift_module::ModuleError| RewriteError::new(ErrorKind::Codegen(e.to_string()));

    for (idx, s) in input.sections.iter().enumerate() {
        if matches!(
            s.name.as_str(),
            ".init_array" | ".fini_array" | ".ctors" | ".dtors" | ".tdata" | ".tbss"
        ) && s.size > 0
        {
            return Err(RewriteError::new(ErrorKind::UnsupportedSection(format!(
                "{} (section {idx})",
                s.name
            ))));
        }
    }

    // The emulated stack and its pointer.
    let estack = module
        .declare_data("__nooks_estack", Linkage::Local, true, false)
        .map_err(m)?;
    let esp = module
        .declare_data("__nooks_esp", Linkage::Local, true, false)
        .map_err(m)?;

    // Data sections and COMMON blocks.
    let mut sections = HashMap::default();
    for (idx, s) in input.sections.iter().enumerate() {
        if matches!(s.kind, Kind::Rodata | Kind::Data | Kind::Bss) {
            let id = module
                .declare_data(
                    &format!("__nooks_sec{idx}"),
                    Linkage::Local,
                    s.kind != Kind::Rodata,
                    false,
                )
                .map_err(m)?;
            sections.insert(idx, id);
        }
    }
    let mut commons = HashMap::default();
    for (i, s) in input.symbols.iter().enumerate() {
        if s.is_common {
            let linkage = if s.is_global {
                Linkage::Export
            } else {
                Linkage::Local
            };
            commons.insert(
                i,
                module
                    .declare_data(&s.name, linkage, true, false)
                    .map_err(m)?,
            );
        }
    }

    // Imports: a symbol ever called (PLT32) is a function, anything else data.
    let called: crate::HashSet<usize> = input
        .sections
        .iter()
        .flat_map(|s| &s.relocs)
        .filter(|r| r.r_type == nooks_policy::abi::reloc::R_X86_64_PLT32)
        .map(|r| r.symbol)
        .collect();
    let native_sig = lift::native_signature(call_conv);
    let inner_sig = lift::inner_signature(call_conv);
    let mut import_funcs = HashMap::default();
    let mut import_data = HashMap::default();
    for (i, s) in input.symbols.iter().enumerate() {
        if !s.is_undefined
            || import_funcs.contains_key(&s.name)
            || import_data.contains_key(&s.name)
        {
            continue;
        }
        if called.contains(&i) {
            let sig = if let Some(args) = lift::register_only(&s.name) {
                lift::register_signature(call_conv, args)
            } else {
                native_sig.clone()
            };
            import_funcs.insert(
                s.name.clone(),
                module
                    .declare_function(&s.name, Linkage::Import, &sig)
                    .map_err(m)?,
            );
        } else {
            import_data.insert(
                s.name.clone(),
                module
                    .declare_data(&s.name, Linkage::Import, false, false)
                    .map_err(m)?,
            );
        }
    }

    // Functions: a native (SysV) entry under the original name (inner
    // entries beside those rewritten code calls are declared by the lifter).
    let mut native = HashMap::default();
    let mut func_at = HashMap::default();
    // Module names are unique; ELF local names need not be (`ld -r` of two
    // files with a `static` function each of the same name): a repeated
    // name is declared under a unique one and given back after `finish`.
    let mut names: HashMap<usize, String> = HashMap::default();
    let mut taken: crate::HashSet<&str> = input
        .symbols
        .iter()
        .filter(|s| s.is_undefined)
        .map(|s| s.name.as_str())
        .collect();
    for f in &input.functions {
        let name = if taken.insert(f.name.as_str()) {
            f.name.clone()
        } else {
            format!("{}.nooks_local{}", f.name, f.symbol)
        };
        names.insert(f.symbol, name);
    }
    for f in &input.functions {
        let s = &input.symbols[f.symbol];
        let linkage = if s.is_weak {
            Linkage::Preemptible
        } else if s.is_global {
            Linkage::Export
        } else {
            Linkage::Local
        };
        native.insert(
            f.symbol,
            module
                .declare_function(&names[&f.symbol], linkage, &native_sig)
                .map_err(m)?,
        );
        func_at.insert((f.section, f.offset), f.symbol);
    }
    let alias_of: HashMap<usize, usize> = input
        .functions
        .iter()
        .flat_map(|f| f.aliases.iter().map(move |&a| (a, f.symbol)))
        .collect();

    let sfi = if opts.isolation == Isolation::Sfi {
        let mut one = cranelift_codegen::ir::Signature::new(call_conv);
        one.params.push(cranelift_codegen::ir::AbiParam::new(
            cranelift_codegen::ir::types::I64,
        ));
        // The slow path preserves every register, so the fast path's call to
        // it, cold as it is, costs the hot code no spills.
        let mut two = one.clone();
        two.call_conv = crate::instrument::SLOW_PATH_CALL_CONV;
        two.params.push(cranelift_codegen::ir::AbiParam::new(
            cranelift_codegen::ir::types::I64,
        ));
        Some(crate::instrument::Runtime {
            state: module
                .declare_data("__nooks_sfi", Linkage::Export, true, false)
                .map_err(m)?,
            targets: module
                .declare_data("__nooks_sfi_targets", Linkage::Local, false, false)
                .map_err(m)?,
            slow: module
                .declare_function("__nooks_sfi_slow", Linkage::Local, &two)
                .map_err(m)?,
            check_call: module
                .declare_function("__nooks_sfi_check_call", Linkage::Local, &one)
                .map_err(m)?,
        })
    } else {
        None
    };
    let env = Env {
        input,
        names,
        native,
        inner: Default::default(),
        func_at,
        import_funcs,
        import_data,
        sections,
        commons,
        esp,
        sfi,
        ports: &opts.policy.ports,
    };
    // The object's own writable data, which the loader places in the window.
    let own: crate::instrument::OwnData = env
        .sections
        .iter()
        .filter(|(idx, _)| input.sections[**idx].kind != Kind::Rodata)
        .map(|(idx, id)| (*id, input.sections[*idx].size))
        .chain(
            env.commons
                .iter()
                .map(|(i, id)| (*id, input.symbols[*i].size)),
        )
        .collect();
    let mut out = Rewritten::default();
    let mut ctx = module.make_context();
    let mut fbc = FunctionBuilderContext::new();
    let mut lines: Vec<(FuncId, u64, Vec<(u64, String, u64)>)> = Vec::new();
    // Lift every function first, as an inner entry: that declares the inner
    // entries rewritten code calls, and a call passes only what its callee
    // needs (see `params`), which is known once every body is.
    let mut lifted = Vec::with_capacity(input.functions.len());
    for f in &input.functions {
        let decoded = decode::decode(input, f)?;
        out.stats.functions += 1;
        out.stats.instructions += decoded.insns.len();
        out.stats.input_text += f.size as usize;

        let mut func = cranelift_codegen::ir::Function::with_name_signature(
            cranelift_codegen::ir::UserFuncName::default(),
            inner_sig.clone(),
        );
        let b = FunctionBuilder::new(&mut func, &mut fbc);
        let l = Lifter::new(b, &env, &mut module, f).lift(&decoded, Entry::Inner)?;
        out.stats.stores += l.stores;
        lifted.push((func, l.frame_root, decoded));
    }
    // The jump-table entries the lifted bodies branch through: the rewritten
    // code never reads them as addresses, so their slots stay zero.
    let table_entries: crate::HashSet<(usize, u64)> = lifted
        .iter()
        .flat_map(|(.., d)| &d.tables)
        .flat_map(|t| {
            (0..t.targets.len() as u64).map(|k| (t.section, t.offset.wrapping_add(8 * k)))
        })
        .collect();
    let inner = env.inner.borrow().clone();
    let needs = crate::params::needs(
        &input
            .functions
            .iter()
            .zip(&lifted)
            .filter_map(|(f, (func, ..))| Some((*inner.get(&f.symbol)?, func)))
            .collect::<Vec<_>>(),
    );
    for (f, (func, frame_root, decoded)) in input.functions.iter().zip(lifted) {
        let native_id = env.native[&f.symbol];
        let inner_id = inner.get(&f.symbol).copied();
        let (func, frame_root, id) = match inner_id {
            Some(id) => {
                let mut func = func;
                func.name = cranelift_codegen::ir::UserFuncName::user(0, id.as_u32());
                (func, frame_root, id)
            }
            // Nothing rewritten calls it: one body, entered natively.
            None => {
                let mut probe = Context::for_function(func);
                optimize(&mut probe, &module, &f.name)?;
                let stack_words = crate::stack_args::words_read(&probe.func, lift::STACK_ARGS);
                let mut func = cranelift_codegen::ir::Function::with_name_signature(
                    cranelift_codegen::ir::UserFuncName::user(0, native_id.as_u32()),
                    native_sig.clone(),
                );
                let b = FunctionBuilder::new(&mut func, &mut fbc);
                let l = Lifter::new(b, &env, &mut module, f)
                    .lift(&decoded, Entry::Native { stack_words })?;
                (func, l.frame_root, native_id)
            }
        };
        let (size, rows, stack_words) = compile_body(
            &mut module,
            &mut ctx,
            func,
            frame_root,
            &needs,
            id,
            f,
            &env,
            &own,
            opts,
            &mut out,
        )?;
        lines.push((id, size, rows));
        let Some(inner_id) = inner_id else {
            continue;
        };

        ctx.func.signature = native_sig.clone();
        ctx.func.name = cranelift_codegen::ir::UserFuncName::user(0, native_id.as_u32());
        let b = FunctionBuilder::new(&mut ctx.func, &mut fbc);
        lift::native_entry(
            b,
            &mut module,
            esp,
            inner_id,
            env.sfi.map(|r| r.state),
            stack_words,
        );
        define(
            &mut module,
            &mut ctx,
            native_id,
            &f.name,
            None,
            opts,
            &mut out,
        )?;
    }

    define_data(&mut module, &env, estack, &table_entries)?;
    if let Some(rt) = &env.sfi {
        let mut targets: Vec<FuncId> = input
            .functions
            .iter()
            .map(|f| env.native[&f.symbol])
            .collect();
        targets.extend(env.import_funcs.values().copied());
        let data_targets: Vec<DataId> = env.import_data.values().copied().collect();
        crate::instrument::define_runtime(&mut module, rt, &targets, &data_targets)?;
    }

    let mut product = module.finish();
    // Weak imports stay weak (`if (hook) hook();` links without a hook).
    for sym in input.symbols.iter().filter(|s| s.is_undefined && s.is_weak) {
        let id = match (
            env.import_funcs.get(&sym.name),
            env.import_data.get(&sym.name),
        ) {
            (Some(&f), _) => product.functions[f],
            (_, Some(&d)) => product.data_objects[d],
            _ => None,
        };
        if let Some((sid, _)) = id {
            product.object.symbol_mut(sid).weak = true;
        }
    }
    // The original names of functions declared under unique ones.
    for f in &input.functions {
        if env.names[&f.symbol] == f.name {
            continue;
        }
        let ids = [Some(env.native[&f.symbol]), inner.get(&f.symbol).copied()];
        for (id, suffix) in ids.into_iter().zip(["", ".nooks_inner"]) {
            if let Some(Some((sid, _))) = id.map(|id| product.functions[id]) {
                product.object.symbol_mut(sid).name = format!("{}{suffix}", f.name).into_bytes();
            }
        }
    }
    if opts.isolation == Isolation::Sfi {
        let window = crate::window::define_symbol(&mut product.object);
        for (id, sites) in &out.window_sites {
            let function = product.function_symbol(*id);
            crate::window::relocate(&mut product.object, function, window, sites)?;
        }
    }
    // Aliases of functions: more names for the same native entry.
    for (&alias, &primary) in &alias_of {
        let Some((sid, _)) = product.functions[env.native[&primary]] else {
            continue;
        };
        let target = product.object.symbol(sid);
        let (section, value, size) = (target.section, target.value, target.size);
        let s = &input.symbols[alias];
        product.object.add_symbol(OutSymbol {
            name: s.name.as_bytes().to_vec(),
            value,
            size,
            kind: SymbolKind::Text,
            scope: if s.is_global {
                SymbolScope::Linkage
            } else {
                SymbolScope::Compilation
            },
            weak: s.is_weak,
            section,
            flags: SymbolFlags::None,
        });
    }
    // Re-create the original data symbols inside the carried-over sections.
    for (i, s) in input.symbols.iter().enumerate() {
        let Some(sec) = s.section else { continue };
        if s.is_function
            || s.is_section
            || s.name.is_empty()
            || input.sections[sec].kind == Kind::Text
        {
            continue;
        }
        let Some(&data) = env.sections.get(&sec) else {
            continue;
        };
        let Some((sid, _)) = product.data_objects[data] else {
            continue;
        };
        let holder = product.object.symbol(sid);
        let (section, value) = (holder.section, holder.value);
        let _ = i;
        product.object.add_symbol(OutSymbol {
            name: s.name.as_bytes().to_vec(),
            value: value.wrapping_add(s.value),
            size: s.size,
            kind: SymbolKind::Data,
            scope: if s.is_global {
                SymbolScope::Linkage
            } else {
                SymbolScope::Compilation
            },
            weak: s.is_weak,
            section: match section {
                SymbolSection::Section(id) => SymbolSection::Section(id),
                other => other,
            },
            flags: SymbolFlags::None,
        });
    }
    let functions: Vec<crate::dwarf::FunctionLines> = lines
        .into_iter()
        .filter_map(|(id, size, rows)| {
            Some(crate::dwarf::FunctionLines {
                symbol: product.functions[id]?.0,
                size,
                rows,
            })
        })
        .collect();
    crate::dwarf::add(
        &mut product.object,
        &functions,
        concat!("nooks-cc ", env!("CARGO_PKG_VERSION")),
    )?;
    let unwind: Vec<_> = std::mem::take(&mut out.unwind)
        .into_iter()
        .filter_map(|(id, info)| Some((product.functions[id]?.0, info)))
        .collect();
    crate::unwind::add(&mut product.object, &*crate::emit::isa()?, &unwind)?;
    add_metadata(&mut product.object, input, opts);
    if let Some(bytes) = original {
        let id = product.object.add_section(
            Vec::new(),
            crate::ORIGINAL_SECTION.as_bytes().to_vec(),
            cranelift_object::object::SectionKind::Metadata,
        );
        product.object.append_section_data(id, bytes, 1);
    }
    out.object = product
        .emit()
        .map_err(|e| RewriteError::new(ErrorKind::Output(e.to_string())))?;
    Ok(out)
}

/// Optimises a lifted body: the analyses then see what Cranelift sees (one
/// value for one address — two stores through `[rcx+rdx]` and
/// `[rcx+rdx+8]` share a base — constants folded, dead flag computations
/// gone).
fn optimize(ctx: &mut Context, module: &ObjectModule, name: &str) -> Result<()> {
    ctx.optimize(
        module.isa(),
        &mut cranelift_codegen::control::ControlPlane::default(),
    )
    .map_err(|e| codegen(format!("{e:?}"), name))?;
    Ok(())
}

/// Optimises, instruments (under SFI) and defines a lifted body as `id`;
/// returns its code size, its line rows, and how many stack argument words
/// it reads (for an inner entry).
#[allow(clippy::too_many_arguments)]
fn compile_body(
    module: &mut ObjectModule,
    ctx: &mut Context,
    mut func: cranelift_codegen::ir::Function,
    frame_root: cranelift_codegen::ir::Value,
    needs: &HashMap<FuncId, Vec<bool>>,
    id: FuncId,
    f: &crate::read::Function,
    env: &Env<'_>,
    own: &crate::instrument::OwnData,
    opts: &Options,
    out: &mut Rewritten,
) -> Result<(u64, Vec<(u64, String, u64)>, usize)> {
    crate::params::pass_only_needed(&mut func, needs);
    crate::params::drop_dead_block_params(&mut func, needs);
    crate::params::guard_loop_exits(&mut func, |f| module.declare_data_in_func(env.esp, f));
    ctx.func = func;
    optimize(ctx, module, &f.name)?;
    let stack_words = crate::stack_args::words_read(&ctx.func, lift::STACK_ARGS);
    let placeholder = match &env.sfi {
        Some(_) => Some(crate::window::placeholder(&ctx.func, &f.name)?),
        None => None,
    };
    if let (Some(rt), Some(p)) = (&env.sfi, placeholder) {
        // The frame's root is a parameter or a load: the optimiser keeps it.
        let kept = match ctx.func.dfg.value_def(frame_root) {
            cranelift_codegen::ir::ValueDef::Result(inst, _) => {
                ctx.func.layout.inst_block(inst).is_some()
            }
            _ => true,
        };
        let checks = crate::instrument::instrument(
            &mut ctx.func,
            module,
            rt,
            own,
            kept.then_some(frame_root),
            p,
            opts.entry_checks_only,
        )?;
        out.stats.checks += checks;
    }
    // What a dropped invariant check left unused (Cranelift keeps loads it
    // does not need).
    crate::instrument::drop_dead_code(&mut ctx.func);
    // The checks changed the control flow the optimiser recorded.
    ctx.compute_cfg();
    ctx.compute_domtree();
    let srclocs = define(module, ctx, id, &f.name, placeholder, opts, out)?;
    let input = env.input;
    let mut rows: Vec<(u64, String, u64)> = Vec::new();
    for (start, loc) in srclocs.0 {
        let (section, offset) = f.from_srcloc(loc);
        if let Some((file, line)) = input.file_line(section, offset) {
            if rows.last().is_none_or(|r| r.1 != file || r.2 != line) {
                rows.push((start, file.to_string(), line));
            }
        }
    }
    // The prologue Cranelift adds belongs where the original's began (its
    // own prologue's line, which the lifter may have left without code).
    if rows.first().is_none_or(|r| r.0 != 0) {
        let start = input
            .file_line(f.section, f.offset)
            .map(|(file, line)| (0, file.to_string(), line))
            .or_else(|| rows.first().map(|r| (0, r.1.clone(), r.2)));
        rows.splice(0..0, start);
    }
    Ok((srclocs.1, rows, stack_words))
}

/// Compiles and defines one function; returns its (code offset, source
/// location) pairs and its code size. With the placeholder its window checks
/// add, records where the code holds it (`window`).
fn define(
    module: &mut ObjectModule,
    ctx: &mut Context,
    id: FuncId,
    name: &str,
    placeholder: Option<i64>,
    opts: &Options,
    out: &mut Rewritten,
) -> Result<(Vec<(u64, u32)>, u64)> {
    if opts.emit_clif {
        out.clif
            .push((name.to_string(), ctx.func.display().to_string()));
    }
    ctx.set_disasm(opts.emit_asm);
    module
        .define_function(id, ctx)
        .map_err(|e| codegen(format!("{e:?}"), name))?;
    let mut srclocs = Vec::new();
    let mut size = 0;
    if let Some(code) = ctx.compiled_code() {
        if let Some(p) = placeholder {
            let sites = crate::window::sites(code.code_buffer(), p, name)?;
            if !sites.is_empty() {
                out.window_sites.push((id, sites));
            }
        }
        size = code.code_buffer().len() as u64;
        out.stats.output_text += code.code_buffer().len();
        if let Ok(Some(info)) = code.create_unwind_info(module.isa()) {
            out.unwind.push((id, info));
        }
        if let Some(asm) = &code.vcode {
            out.asm.push((name.to_string(), asm.clone()));
        }
        for s in code.buffer.get_srclocs_sorted() {
            if !s.loc.is_default() {
                srclocs.push((u64::from(s.start), s.loc.bits()));
            }
        }
    }
    module.clear_context(ctx);
    Ok((srclocs, size))
}

fn define_data(
    module: &mut ObjectModule,
    env: &Env<'_>,
    estack: DataId,
    table_entries: &crate::HashSet<(usize, u64)>,
) -> Result<()> {
    let m = |e: cranelift_module::ModuleError| RewriteError::new(ErrorKind::Codegen(e.to_string()));
    let input = env.input;
    // The stack, and above its top room for the stack words a call into
    // native code copies from the emulated stack pointer (a call made at
    // the top would otherwise read past the end of the object's data).
    let mut d = DataDescription::new();
    d.define_zeroinit(ESTACK_SIZE + 8 * lift::STACK_ARGS);
    d.set_align(16);
    module.define_data(estack, &d).map_err(m)?;

    let mut d = DataDescription::new();
    d.define(vec![0u8; 8].into_boxed_slice());
    d.set_align(8);
    let gv = module.declare_data_in_data(estack, &mut d);
    d.write_data_addr(0, gv, ESTACK_SIZE as i64);
    if env.sfi.is_some() {
        // Beside the runtime state, outside the window's writable part: the
        // published stack pointer is the kernel's and the rewriter's to
        // write, not the driver's checked stores'.
        d.set_custom_section(nooks_policy::abi::STATE_SECTION);
    }
    module.define_data(env.esp, &d).map_err(m)?;

    for (&i, &id) in &env.commons {
        let s = &input.symbols[i];
        let mut d = DataDescription::new();
        d.define_zeroinit(s.size as usize);
        d.set_align(s.value.max(1));
        module.define_data(id, &d).map_err(m)?;
    }

    for (&idx, &id) in &env.sections {
        let s = &input.sections[idx];
        let mut d = DataDescription::new();
        if s.kind == Kind::Bss {
            d.define_zeroinit(s.size as usize);
        } else {
            d.define(s.data.clone().into_boxed_slice());
        }
        d.set_align(s.align);
        let err = |what: String| {
            RewriteError::new(ErrorKind::UnsupportedRelocation(format!(
                "{what} in {}",
                s.name
            )))
        };
        for r in &s.relocs {
            if table_entries.contains(&(idx, r.offset)) {
                continue;
            }
            if r.r_type != nooks_policy::abi::reloc::R_X86_64_64 {
                return Err(err(format!("type {} at {:#x}", r.r_type, r.offset)));
            }
            let sym = &input.symbols[r.symbol];
            let off = r.offset as u32;
            if sym.is_undefined {
                if let Some(&f) = env.import_funcs.get(&sym.name) {
                    if r.addend != 0 {
                        return Err(err(format!(
                            "offset {} into function {}",
                            r.addend, sym.name
                        )));
                    }
                    let fr = module.declare_func_in_data(f, &mut d);
                    d.write_function_addr(off, fr);
                } else {
                    let gv = module.declare_data_in_data(env.import_data[&sym.name], &mut d);
                    d.write_data_addr(off, gv, r.addend);
                }
                continue;
            }
            if sym.is_common {
                let gv = module.declare_data_in_data(env.commons[&r.symbol], &mut d);
                d.write_data_addr(off, gv, r.addend);
                continue;
            }
            let Some(sec) = sym.section else {
                return Err(err(format!("absolute symbol {}", sym.name)));
            };
            let at = (sym.value as i64).wrapping_add(r.addend);
            match input.sections[sec].kind {
                Kind::Text => {
                    let f = u64::try_from(at)
                        .ok()
                        .and_then(|o| env.func_at.get(&(sec, o)));
                    let Some(&f) = f else {
                        return Err(err(format!(
                            "pointer into the middle of code at {:#x}",
                            r.offset
                        )));
                    };
                    let fr = module.declare_func_in_data(env.native[&f], &mut d);
                    d.write_function_addr(off, fr);
                }
                Kind::Other => {
                    return Err(err(format!(
                        "pointer into unloaded section {}",
                        input.sections[sec].name
                    )));
                }
                _ => {
                    let gv = module.declare_data_in_data(env.sections[&sec], &mut d);
                    d.write_data_addr(off, gv, at);
                }
            }
        }
        module.define_data(id, &d).map_err(m)?;
    }
    Ok(())
}

/// The `.nooks` section: what produced the object and how it is sandboxed, so
/// the loader can refuse an object whose metadata does not match what it is
/// about to run. One `key value...` line each.
pub fn metadata_text(input: &Input, opts: &Options) -> String {
    let isolation = match opts.isolation {
        Isolation::None => "none",
        Isolation::Sfi if opts.entry_checks_only => "sfi-entry-only",
        Isolation::Sfi => "sfi",
    };
    let mut entries: Vec<&str> = input.functions.iter().map(|f| f.name.as_str()).collect();
    entries.sort_unstable();
    let mut imports: Vec<&str> = input
        .symbols
        .iter()
        .filter(|s| s.is_undefined)
        .map(|s| s.name.as_str())
        .collect();
    imports.sort_unstable();
    imports.dedup();
    let policy = opts.policy.driver.as_deref().unwrap_or("default");
    let ports: Vec<String> = opts
        .policy
        .ports
        .iter()
        .map(|(lo, hi)| format!("{lo:#x}-{hi:#x}"))
        .collect();
    // What the policy allows, for the kernel to enforce again: `*` for
    // every export; entry points the kernel may be handed (none named: any
    // function of the object).
    let allowed_imports = match &opts.policy.imports {
        nooks_policy::file::Imports::All => String::from("*"),
        nooks_policy::file::Imports::Only(names) => names.join(" "),
    };
    let allowed_entries = if opts.policy.entries.is_empty() {
        String::from("*")
    } else {
        opts.policy.entries.join(" ")
    };
    format!(
        "nooks-cc {}\nisolation {isolation}\npolicy {policy}\nports {}\n{}\nentries {}\nimports {}\npolicy-imports {allowed_imports}\npolicy-entries {allowed_entries}\n",
        env!("CARGO_PKG_VERSION"),
        ports.join(" "),
        nooks_policy::abi::LINE,
        entries.join(" "),
        imports.join(" ")
    )
}

fn add_metadata(
    obj: &mut cranelift_object::object::write::Object<'_>,
    input: &Input,
    opts: &Options,
) {
    let text = metadata_text(input, opts);
    let id = obj.add_section(
        Vec::new(),
        b".nooks".to_vec(),
        cranelift_object::object::SectionKind::Metadata,
    );
    obj.append_section_data(id, text.as_bytes(), 1);
}
