//! What the verifier knows at one point of a function, and how two paths'
//! knowledge joins.

use crate::value::{self, Expr, Range, Sym};
use alloc::vec::Vec;
use smallvec::SmallVec;

/// `[base + lo, base + hi)` may be written: a window check (or the slow
/// path) established it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact {
    /// The address's symbolic part (constant 0).
    pub base: Expr,
    /// First writable offset from `base`.
    pub lo: i64,
    /// One past the last.
    pub hi: i64,
}

/// The last comparison: `a` against `b` over `bits` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// Left operand.
    pub a: Expr,
    /// Right operand.
    pub b: Expr,
    /// Operand width.
    pub bits: u32,
}

/// Knowledge at one program point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The 16 general registers (iced's numbering: rax, rcx, rdx, rbx, rsp, ...).
    pub regs: [Expr; 16],
    /// Real-stack slots below the return address: (offset from it, value),
    /// 8 bytes each, sorted.
    pub slots: SmallVec<[(i64, Expr); 16]>,
    /// Ranges of symbols, sorted.
    pub ranges: SmallVec<[(Sym, Range); 8]>,
    /// Writable ranges.
    pub facts: SmallVec<[Fact; 4]>,
    /// The last comparison, while the flags still hold it.
    pub flags: Option<Flags>,
    /// No call and no store to the state since entry: the lock count and
    /// interrupt flag are what they were at entry.
    pub pristine: bool,
    /// The symbol holding the invariants word loaded while pristine.
    pub entry_inv: Option<Sym>,
    /// The symbol holding the invariants word loaded since the last call.
    pub current_inv: Option<Sym>,
    /// The two were compared equal since the last call.
    pub inv_ok: bool,
    /// Symbols the indirect-call check accepted.
    pub targets: SmallVec<[Sym; 2]>,
}

impl State {
    /// At a function's entry.
    pub fn entry() -> State {
        let mut regs = [Expr::TOP; 16];
        for (r, e) in regs.iter_mut().enumerate() {
            *e = Expr::sym(value::entry(r));
        }
        State {
            regs,
            slots: SmallVec::new(),
            ranges: SmallVec::new(),
            facts: SmallVec::new(),
            flags: None,
            pristine: true,
            entry_inv: None,
            current_inv: None,
            inv_ok: false,
            targets: SmallVec::new(),
        }
    }

    /// The range of `s`, if known.
    pub fn range(&self, s: Sym) -> Option<Range> {
        self.ranges
            .binary_search_by_key(&s, |r| r.0)
            .ok()
            .map(|i| self.ranges[i].1)
    }

    /// Sets the range of `s` (`FULL` forgets it).
    pub fn set_range(&mut self, s: Sym, r: Range) {
        match self.ranges.binary_search_by_key(&s, |r| r.0) {
            Ok(i) if r == Range::FULL => {
                self.ranges.remove(i);
            }
            Ok(i) => self.ranges[i].1 = r,
            Err(_) if r == Range::FULL => {}
            Err(i) => self.ranges.insert(i, (s, r)),
        }
    }

    /// The integers `c + sum(k * s)` ranges over when every symbol of `e`
    /// has a range (exact arithmetic; `None` for an unknown or unranged term).
    pub fn interval(&self, e: &Expr) -> Option<(i128, i128)> {
        if e.is_top() {
            return None;
        }
        let (mut lo, mut hi) = (i128::from(e.c), i128::from(e.c));
        for &(s, k) in e.terms() {
            let r = self.range(s)?;
            let (a, b) = (
                i128::from(k) * i128::from(r.lo),
                i128::from(k) * i128::from(r.hi),
            );
            lo += a.min(b);
            hi += a.max(b);
        }
        Some((lo, hi))
    }

    /// The values `e` may take, if bounded.
    pub fn value_range(&self, e: &Expr) -> Option<Range> {
        // (Unknown has no terms, but no value either.)
        if e.is_top() {
            return None;
        }
        if let Some(c) = e.as_const() {
            return Some(Range::exactly(c as u64));
        }
        match e.terms() {
            [(s, k)] => self.range(*s)?.affine(i64::from(*k), e.c),
            terms => {
                // A sum of ranged symbols: the sum of their ranges.
                let (lo, hi) = self.interval(e)?;
                let mut stride = 0u64;
                for &(s, k) in terms {
                    let r = self.range(s)?;
                    if r.lo != r.hi {
                        stride = gcd(
                            stride,
                            (i128::from(r.stride) * i128::from(k)).unsigned_abs() as u64,
                        );
                    }
                }
                if lo < 0 || hi > i128::from(u64::MAX) {
                    return None;
                }
                Some(Range {
                    lo: lo as u64,
                    hi: hi as u64,
                    stride: if lo == hi { 1 } else { stride.max(1) },
                })
            }
        }
    }

    /// `e` with every symbol whose range is one value replaced by it.
    pub fn normalize(&self, e: &Expr) -> Expr {
        let mut out = *e;
        for &(s, _) in e.terms() {
            if let Some(r) = self.range(s)
                && r.lo == r.hi
            {
                out = out
                    .without(s)
                    .offset((r.lo as i64).wrapping_mul(e.coeff(s)));
            }
        }
        out
    }

    /// The value in slot `off`.
    pub fn slot(&self, off: i64) -> Option<Expr> {
        self.slots
            .binary_search_by_key(&off, |s| s.0)
            .ok()
            .map(|i| self.slots[i].1)
    }

    /// Writes `[off, off + len)` of the stack: an aligned 8-byte store sets
    /// the slot, anything else forgets the slots it touches.
    pub fn store_stack(&mut self, off: i64, len: i64, v: Option<Expr>) {
        self.slots.retain(|s| s.0 + 8 <= off || s.0 >= off + len);
        if let (Some(v), 8, 0) = (v, len, off.rem_euclid(8)) {
            let i = self.slots.partition_point(|s| s.0 < off);
            self.slots.insert(i, (off, v));
        }
    }

    /// Forgets everything about `s`: a new value takes its name.
    pub fn kill(&mut self, s: Sym) {
        // Most names are not held anywhere yet: look before rewriting.
        let held = self.mentions(s)
            || self.range(s).is_some()
            || self.entry_inv == Some(s)
            || self.current_inv == Some(s)
            || self.targets.contains(&s);
        if held {
            self.kill_where(|x| x == s);
        }
    }

    /// Forgets everything about the symbols `f` accepts.
    pub fn kill_where(&mut self, f: impl Fn(Sym) -> bool) {
        for r in self.regs.iter_mut() {
            if r.mentions_any(&f) {
                *r = Expr::TOP;
            }
        }
        self.slots.retain(|s| !s.1.mentions_any(&f));
        self.ranges.retain(|r| !f(r.0));
        self.facts.retain(|x| !x.base.mentions_any(&f));
        if self
            .flags
            .is_some_and(|x| x.a.mentions_any(&f) || x.b.mentions_any(&f))
        {
            self.flags = None;
        }
        if self.entry_inv.is_some_and(&f) {
            self.entry_inv = None;
        }
        if self.current_inv.is_some_and(&f) {
            self.current_inv = None;
        }
        self.targets.retain(|s| !f(*s));
    }

    /// Whether anything (a register, slot, fact or comparison) holds `s`.
    pub fn mentions(&self, s: Sym) -> bool {
        self.regs.iter().any(|r| r.terms().iter().any(|t| t.0 == s))
            || self
                .slots
                .iter()
                .any(|x| x.1.terms().iter().any(|t| t.0 == s))
            || self
                .facts
                .iter()
                .any(|f| f.base.terms().iter().any(|t| t.0 == s))
            || self
                .flags
                .is_some_and(|f| f.a.terms().iter().chain(f.b.terms()).any(|t| t.0 == s))
    }

    /// Forgets the ranges of symbols nothing holds any more.
    pub fn collect(&mut self) {
        if self.ranges.is_empty() {
            return;
        }
        let mut held: SmallVec<[Sym; 64]> = SmallVec::new();
        let mut add = |e: &Expr| held.extend(e.terms().iter().map(|t| t.0));
        self.regs.iter().for_each(&mut add);
        self.slots.iter().for_each(|s| add(&s.1));
        self.facts.iter().for_each(|f| add(&f.base));
        if let Some(f) = self.flags {
            add(&f.a);
            add(&f.b);
        }
        held.sort_unstable();
        self.ranges.retain(|r| held.binary_search(&r.0).is_ok());
    }

    /// Records `[base + lo, base + hi)` as writable.
    pub fn add_fact(&mut self, base: Expr, lo: i64, hi: i64) {
        if base.is_top() || lo >= hi {
            return;
        }
        // One name per base: symbols known to be one value become constants.
        let n = self.normalize(&base);
        let shift = n.c.wrapping_sub(base.c);
        let (lo, hi) = (lo.wrapping_add(shift), hi.wrapping_add(shift));
        let base = n.symbolic();
        if let Some(f) = self.facts.iter_mut().find(|f| f.base == base) {
            // Two overlapping or adjacent ranges of one base are one range.
            if lo <= f.hi && f.lo <= hi {
                f.lo = f.lo.min(lo);
                f.hi = f.hi.max(hi);
                return;
            }
        }
        self.facts.push(Fact { base, lo, hi });
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The registers, facts, ranges and slots, one line each (debug tracing).
impl core::fmt::Display for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (r, e) in self.regs.iter().enumerate() {
            write!(f, "r{r}={e} ")?;
        }
        writeln!(f)?;
        for x in &self.facts {
            writeln!(f, "fact {} [{:#x},{:#x})", x.base, x.lo, x.hi)?;
        }
        for (s, r) in &self.ranges {
            writeln!(f, "range {} {:?}", Expr::sym(*s), r)?;
        }
        write!(f, "slots")?;
        for (o, e) in &self.slots {
            write!(f, " {o}:{e}")?;
        }
        Ok(())
    }
}

/// Where a location's phi lives: registers are 0..16, slot `off` after.
fn slot_loc(off: i64) -> Option<usize> {
    let max = nooks_policy::abi::MAX_FRAME as i64;
    (off < 0 && off >= -max && off % 8 == 0).then(|| 16 + (-off / 8) as usize)
}

/// Joins the states reaching block `block` along its edges. `prev` is the
/// block's state before (for widening), `thresholds` the bounds widening
/// takes a symbol's range to (its comparisons' bounds, sorted), one at a
/// time, or straight to the top with `jump`.
pub fn join(
    block: usize,
    ins: &[&State],
    prev: Option<&State>,
    widen: bool,
    jump: bool,
    thresholds: &[(Sym, u64)],
) -> State {
    if ins.len() == 1 {
        let mut out = ins[0].clone();
        out.collect();
        return out;
    }
    // Locations whose values differ become phis; so do locations whose
    // (equal) values mention a phi of this block being redefined.
    let mut locs: Vec<(usize, Option<i64>)> = (0..16).map(|r| (r, None)).collect();
    for &(off, _) in &ins[0].slots {
        if let Some(loc) = slot_loc(off)
            && ins[1..].iter().all(|s| s.slot(off).is_some())
        {
            locs.push((loc, Some(off)));
        }
    }
    let get = |s: &State, l: &(usize, Option<i64>)| match l.1 {
        None => s.regs[l.0],
        Some(off) => s.slot(off).unwrap_or(Expr::TOP),
    };
    // A value a loop carries around unchanged comes back as the block's own
    // phi: it says nothing against the values entering (if the loop did
    // change it, the next round's back edge brings the change).
    // Once a phi, always a phi: a location that flipped back to a value
    // from outside could flip again (two loops trading stale names).
    let entering = |l: &(usize, Option<i64>)| {
        let own = Expr::sym(value::phi(block, l.0));
        if prev.is_some_and(|p| get(p, l).mentions_any(|x| value::phi_block(x) == Some(block))) {
            return None;
        }
        let mut vals = ins.iter().map(|s| get(s, l)).filter(move |v| *v != own);
        let first = vals.next();
        match first {
            Some(v) if vals.all(|x| x == v) => Some(v),
            _ => None,
        }
    };
    let kept: Vec<Option<Expr>> = locs.iter().map(entering).collect();
    let mut phi: Vec<bool> = kept.iter().map(|k| k.is_none()).collect();
    loop {
        let mut changed = false;
        for i in 0..locs.len() {
            let redefined = |s: Sym| {
                locs.iter()
                    .zip(&phi)
                    .any(|(l, &p)| p && s == value::phi(block, l.0))
            };
            if !phi[i] && kept[i].is_some_and(|v| v.mentions_any(redefined)) {
                phi[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let redefined = |s: Sym| {
        locs.iter()
            .zip(&phi)
            .any(|(l, &p)| p && s == value::phi(block, l.0))
    };
    // The phis' new values, computed before their old names are forgotten.
    let mut values: Vec<(usize, Expr, Option<Range>)> = Vec::new();
    for (i, l) in locs.iter().enumerate() {
        if !phi[i] {
            continue;
        }
        // Two locations holding the same value on every incoming path (a
        // register and the slot it was spilled to) join to one phi, so a
        // check of one covers a store through the other.
        let same_as = values
            .iter()
            .find(|v| ins.iter().all(|s| get(s, &locs[v.0]) == get(s, l)));
        if let Some(&(_, e, r)) = same_as {
            values.push((i, e, r));
            continue;
        }
        let p = value::phi(block, l.0);
        // Each incoming value as base terms + [lo, hi] (stride).
        let mut base: Option<Expr> = None;
        let mut same = true;
        let mut parts: Vec<(i128, i128, u64)> = Vec::new();
        for s in ins {
            let e = get(s, l);
            if e.is_top() {
                same = false;
                break;
            }
            let (b, lo, hi, stride) = if e.coeff(p) == 1 {
                match s.range(p) {
                    Some(r) => (e.without(p), i128::from(r.lo), i128::from(r.hi), r.stride),
                    None => {
                        same = false;
                        break;
                    }
                }
            } else {
                (e, 0, 0, 1)
            };
            let b0 = b.symbolic();
            if b0.mentions_any(redefined) || base.is_some_and(|x| x != b0) {
                same = false;
                break;
            }
            base = Some(b0);
            parts.push((lo + i128::from(b.c), hi + i128::from(b.c), stride));
        }
        if same && let Some(b) = base {
            // The phi is `base + p + anchor`: a plain number is its own value
            // (anchor 0); an offset from symbols keeps the anchor it had, so
            // the expression stays put while the range widens.
            let lowest = parts.iter().map(|p| p.0).min().unwrap_or(0);
            let before = prev.map(|s| get(s, l)).and_then(|e| {
                (e.coeff(p) == 1 && e.without(p).symbolic() == b)
                    .then(|| i128::from(e.without(p).c))
            });
            let min = match before {
                _ if b.terms().is_empty() => 0,
                Some(m) if m <= lowest => m,
                Some(_) if widen => {
                    parts.clear();
                    i128::MAX
                }
                _ => lowest,
            };
            if parts.is_empty() || parts.iter().any(|p| p.0 < min) {
                same = false;
            }
            let mut r: Option<Range> = None;
            for &(lo, hi, stride) in parts.iter().filter(|_| same) {
                let (lo, hi) = (lo - min, hi - min);
                if hi > i128::from(u64::MAX) {
                    r = None;
                    same = false;
                    break;
                }
                let part = Range {
                    lo: lo as u64,
                    hi: hi as u64,
                    stride,
                };
                r = Some(r.map_or(part, |x| x.hull(&part)));
            }
            if same {
                values.push((i, b.add(&Expr::sym(p)).offset(min as i64), r));
                continue;
            }
        }
        // Otherwise the phi is the value itself, bounded if every input is.
        let mut r: Option<Range> = None;
        for s in ins {
            match s.value_range(&get(s, l)) {
                Some(x) => r = Some(r.map_or(x, |y| y.hull(&x))),
                None => {
                    r = None;
                    break;
                }
            }
        }
        values.push((i, Expr::sym(p), r));
    }
    // The merge below pairs equal things (facts of one base, equal slots,
    // one symbol's ranges), so forgetting the redefined phis' old values
    // commutes with it: done once, on the result.
    let mut out = ins[0].clone();
    let mut slots = SmallVec::new();
    for (i, l) in locs.iter().enumerate() {
        match (phi[i], l.1, kept[i]) {
            (false, None, Some(v)) => out.regs[l.0] = v,
            (false, Some(off), Some(v)) => slots.push((off, v)),
            _ => {}
        }
    }
    out.slots = slots;
    for s in &ins[1..] {
        // A state that does not mention a symbol at all (a back edge from
        // before the symbol reached the loop) says nothing about its range.
        out.ranges.retain_mut(|(sym, r)| match s.range(*sym) {
            Some(x) => {
                *r = r.hull(&x);
                true
            }
            None => !s.mentions(*sym),
        });
        for &(sym, r) in &s.ranges {
            if out.range(sym).is_none() && !out.mentions(sym) && !ins[0].mentions(sym) {
                out.set_range(sym, r);
            }
        }
        let mut facts = SmallVec::new();
        for f in &out.facts {
            for g in s.facts.iter().filter(|g| g.base == f.base) {
                let (lo, hi) = (f.lo.max(g.lo), f.hi.min(g.hi));
                if lo < hi
                    && !facts.contains(&Fact {
                        base: f.base,
                        lo,
                        hi,
                    })
                {
                    facts.push(Fact {
                        base: f.base,
                        lo,
                        hi,
                    });
                }
            }
        }
        out.facts = facts;
        if out.flags != s.flags {
            out.flags = None;
        }
        out.pristine &= s.pristine;
        if out.entry_inv != s.entry_inv {
            out.entry_inv = None;
        }
        if out.current_inv != s.current_inv {
            out.current_inv = None;
        }
        out.inv_ok &= s.inv_ok;
        out.targets.retain(|t| s.targets.contains(t));
    }
    if phi.iter().any(|&p| p) {
        out.kill_where(redefined);
    }
    for (i, e, r) in values {
        let l = locs[i];
        let p = value::phi(block, l.0);
        match l.1 {
            None => out.regs[l.0] = e,
            Some(off) => out.store_stack(off, 8, Some(e)),
        }
        if let Some(r) = r
            && e.mentions(p)
        {
            out.set_range(p, r);
        }
    }
    out.collect();
    if widen && let Some(prev) = prev {
        for (s, r) in out.ranges.iter_mut() {
            let Some(old) = prev.range(*s) else { continue };
            // From here on a range only grows: the iteration must climb.
            *r = r.hull(&old);
            if r.hi > old.hi {
                let next = |key: Sym| {
                    let from = thresholds.partition_point(|t| *t < (key, r.hi));
                    thresholds
                        .get(from)
                        .filter(|t| t.0 == key && !jump)
                        .map(|t| t.1)
                };
                let by_loc = value::phi_loc(*s).and_then(|l| next(value::loc_key(l)));
                let t = match (next(*s), by_loc) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or(u64::MAX),
                };
                r.hi = r.lo + (t - r.lo) / r.stride * r.stride;
            }
            if r.lo < old.lo {
                let lo = r.lo % r.stride;
                r.lo = lo;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{WIN, entry};

    #[test]
    fn unknown_has_no_range() {
        // The mutation test found TOP read as the constant 0: a branch on it
        // looked impossible and the stores behind it went unchecked.
        let st = State::entry();
        assert_eq!(st.value_range(&Expr::TOP), None);
        assert_eq!(st.value_range(&Expr::constant(5)), Some(Range::exactly(5)));
    }

    #[test]
    fn a_counter_and_a_pointer_become_phis_with_ranges() {
        // Entering: rcx = 0, rdi = p; back edge: rcx = phi + 1, rdi = p + 8 * (phi + 1).
        let b = 3;
        let mut pre = State::entry();
        pre.regs[1] = Expr::constant(0);
        let p = Expr::sym(entry(7));
        pre.regs[7] = p;
        let first = join(b, &[&pre], None, false, false, &[]);
        let mut back = first.clone();
        back.regs[1] = Expr::constant(1);
        back.regs[7] = p.offset(8);
        let h = join(b, &[&pre, &back], Some(&first), false, false, &[]);
        let rcx = value::phi(b, 1);
        assert_eq!(h.regs[1], Expr::sym(rcx));
        assert_eq!(h.range(rcx), Some(Range::new(0, 1)));
        // The pointer keeps its base: p + q, q in {0, 8}.
        let q = value::phi(b, 7);
        assert_eq!(h.regs[7], p.add(&Expr::sym(q)));
        assert_eq!(
            h.range(q),
            Some(Range {
                lo: 0,
                hi: 8,
                stride: 8
            })
        );
    }

    #[test]
    fn facts_meet_at_joins_and_fold_known_symbols() {
        let x = Expr::sym(entry(7));
        let mut a = State::entry();
        a.add_fact(x.offset(16), 16, 64);
        let mut b = State::entry();
        b.add_fact(x, 32, 128);
        let j = join(0, &[&a, &b], None, false, false, &[]);
        assert_eq!(
            j.facts.as_slice(),
            &[Fact {
                base: x,
                lo: 32,
                hi: 64
            }]
        );
        // A symbol known to be one value folds into the fact's offsets.
        let mut c = State::entry();
        c.set_range(entry(6), Range::exactly(8));
        c.add_fact(
            x.add(&Expr::sym(entry(6)))
                .add(&Expr::sym(WIN))
                .sub(&Expr::sym(WIN)),
            0,
            4,
        );
        assert_eq!(
            c.facts.as_slice(),
            &[Fact {
                base: x,
                lo: 8,
                hi: 12
            }]
        );
    }
}
