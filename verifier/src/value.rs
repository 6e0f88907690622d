//! The abstract values: a register or stack slot holds a linear expression
//! over *symbols* (values the verifier cannot compute but can name), and a
//! symbol may carry a range.
//!
//! A symbol names one value: a register's value at function entry, the
//! window's `-lo`, a section's or an import's address, the result of one
//! instruction (its latest execution), or the value a block joins from its
//! predecessors (a phi). Expressions are computed modulo 2^64, as the CPU
//! does; a range bounds a symbol's value as an unsigned 64-bit number.

/// A symbol (see the module doc); its kind is in the top bits.
pub type Sym = u32;

/// The value of register `r` (0..16) at function entry.
pub const fn entry(r: usize) -> Sym {
    r as Sym
}
/// `-lo`, the window symbol's value.
pub const WIN: Sym = 16;
const SECTION: Sym = 0x1000_0000;
const IMPORT: Sym = 0x2000_0000;
const COMMON: Sym = 0x3000_0000;
const DEF: Sym = 0x4000_0000;
const PHI: Sym = 0x8000_0000;
/// Unknown, with no identity: an expression holding it is [`Expr::TOP`].
pub const TOP: Sym = Sym::MAX;

/// The address of section `i`.
pub const fn section(i: usize) -> Sym {
    SECTION | i as Sym
}
/// The address of undefined symbol `i` (an import).
pub const fn import(i: usize) -> Sym {
    IMPORT | i as Sym
}
/// The address of COMMON symbol `i`.
pub const fn common(i: usize) -> Sym {
    COMMON | i as Sym
}
/// Result `k` (0 or 1) of the function's instruction number `i`.
pub const fn def(i: usize, k: usize) -> Sym {
    DEF | (2 * i + k) as Sym
}
/// Largest instruction count of one function (symbols stay distinct).
pub const MAX_INSNS: usize = 1 << 28;
/// Locations a phi can name per block: 16 registers, then stack slots.
pub const LOCS: usize = 16 + (nooks_policy::abi::MAX_FRAME as usize / 8) + 1;
/// Largest block count of one function (phi symbols stay distinct).
pub const MAX_BLOCKS: usize = (PHI as usize - 1) / LOCS;
/// The value block `b` joins for location `loc`.
pub const fn phi(b: usize, loc: usize) -> Sym {
    PHI | (b * LOCS + loc) as Sym
}

/// The key under which widening thresholds for location `loc` (a register
/// or slot, whatever symbol holds it) are kept; never a symbol itself.
pub const fn loc_key(loc: usize) -> Sym {
    0x7000_0000 | loc as Sym
}

/// The block a phi symbol belongs to.
pub fn phi_block(s: Sym) -> Option<usize> {
    (kind(s) == Kind::Phi).then(|| (s & !PHI) as usize / LOCS)
}

/// The location a phi symbol joins.
pub fn phi_loc(s: Sym) -> Option<usize> {
    (kind(s) == Kind::Phi).then(|| (s & !PHI) as usize % LOCS)
}

/// What a symbol is, for messages and for the rules that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Register `r` at entry.
    Entry(usize),
    /// The window symbol.
    Window,
    /// A section's address.
    Section(usize),
    /// An import's address.
    Import(usize),
    /// A COMMON block's address.
    Common(usize),
    /// An instruction's result.
    Def,
    /// A join.
    Phi,
    /// Unknown.
    Top,
}

/// The kind of `s`.
pub fn kind(s: Sym) -> Kind {
    match s {
        TOP => Kind::Top,
        WIN => Kind::Window,
        s if s < 16 => Kind::Entry(s as usize),
        s if s & PHI != 0 => Kind::Phi,
        s if s & DEF != 0 => Kind::Def,
        s if s & 0xf000_0000 == SECTION => Kind::Section((s & 0x0fff_ffff) as usize),
        s if s & 0xf000_0000 == IMPORT => Kind::Import((s & 0x0fff_ffff) as usize),
        s if s & 0xf000_0000 == COMMON => Kind::Common((s & 0x0fff_ffff) as usize),
        _ => Kind::Top,
    }
}

/// Terms an expression may have (base, index, alignment, window...).
const N: usize = 5;

/// `c + sum(k * s)` over at most five terms, modulo 2^64; or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expr {
    terms: [(Sym, i32); N],
    n: u8,
    /// The constant part.
    pub c: i64,
}

impl Expr {
    /// Unknown.
    pub const TOP: Expr = Expr {
        terms: [(TOP, 0); N],
        n: 0xff,
        c: 0,
    };

    /// The constant `c`.
    pub const fn constant(c: i64) -> Expr {
        Expr {
            terms: [(0, 0); N],
            n: 0,
            c,
        }
    }

    /// The symbol `s` (unknown if `s` is [`TOP`]).
    pub fn sym(s: Sym) -> Expr {
        if s == TOP {
            return Expr::TOP;
        }
        let mut e = Expr::constant(0);
        e.terms[0] = (s, 1);
        e.n = 1;
        e
    }

    /// Whether nothing is known.
    pub fn is_top(&self) -> bool {
        self.n == 0xff
    }

    /// Its terms, sorted by symbol.
    pub fn terms(&self) -> &[(Sym, i32)] {
        if self.is_top() {
            &[]
        } else {
            &self.terms[..self.n as usize]
        }
    }

    /// Its constant, if it has no terms.
    pub fn as_const(&self) -> Option<i64> {
        (self.n == 0).then_some(self.c)
    }

    /// The symbol it is, exactly (one term, coefficient 1, no constant).
    pub fn as_sym(&self) -> Option<Sym> {
        (self.n == 1 && self.terms[0].1 == 1 && self.c == 0).then_some(self.terms[0].0)
    }

    /// The coefficient of `s`.
    pub fn coeff(&self, s: Sym) -> i64 {
        self.terms()
            .iter()
            .find(|t| t.0 == s)
            .map_or(0, |t| i64::from(t.1))
    }

    /// Whether `s` occurs in it.
    pub fn mentions(&self, s: Sym) -> bool {
        self.is_top() || self.terms().iter().any(|t| t.0 == s)
    }

    /// Whether a symbol `f` accepts occurs in it.
    pub fn mentions_any(&self, f: impl Fn(Sym) -> bool) -> bool {
        self.terms().iter().any(|t| f(t.0))
    }

    /// `self + k * other`.
    pub fn add_scaled(&self, other: &Expr, k: i64) -> Expr {
        if self.is_top() || other.is_top() {
            return Expr::TOP;
        }
        let mut out = [(0, 0i32); 2 * N];
        let mut n = 0;
        let (a, b) = (self.terms(), other.terms());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let (sym, coeff): (Sym, i64) = if j == b.len() || (i < a.len() && a[i].0 < b[j].0) {
                i += 1;
                (a[i - 1].0, i64::from(a[i - 1].1))
            } else if i == a.len() || b[j].0 < a[i].0 {
                j += 1;
                (b[j - 1].0, i64::from(b[j - 1].1).wrapping_mul(k))
            } else {
                i += 1;
                j += 1;
                (
                    a[i - 1].0,
                    i64::from(a[i - 1].1).wrapping_add(i64::from(b[j - 1].1).wrapping_mul(k)),
                )
            };
            if coeff != 0 {
                // A coefficient past 32 bits (a product of large constants)
                // is not followed.
                let Ok(coeff) = i32::try_from(coeff) else {
                    return Expr::TOP;
                };
                out[n] = (sym, coeff);
                n += 1;
            }
        }
        if n > N {
            return Expr::TOP;
        }
        let mut e = Expr::constant(self.c.wrapping_add(other.c.wrapping_mul(k)));
        e.terms[..n].copy_from_slice(&out[..n]);
        e.n = n as u8;
        e
    }

    /// `self + other`.
    pub fn add(&self, other: &Expr) -> Expr {
        self.add_scaled(other, 1)
    }

    /// `self - other`.
    pub fn sub(&self, other: &Expr) -> Expr {
        self.add_scaled(other, -1)
    }

    /// `self + c`.
    pub fn offset(&self, c: i64) -> Expr {
        if self.is_top() {
            return *self;
        }
        Expr {
            c: self.c.wrapping_add(c),
            ..*self
        }
    }

    /// `k * self`.
    pub fn scale(&self, k: i64) -> Expr {
        Expr::constant(0).add_scaled(self, k)
    }

    /// Its symbolic part (constant 0; unknown stays unknown).
    pub fn symbolic(&self) -> Expr {
        if self.is_top() {
            return *self;
        }
        Expr { c: 0, ..*self }
    }

    /// It without the term of `s`.
    pub fn without(&self, s: Sym) -> Expr {
        self.add_scaled(&Expr::sym(s), -self.coeff(s))
    }
}

/// A set of unsigned 64-bit values: `lo, lo + stride, ..., hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    /// Smallest.
    pub lo: u64,
    /// Largest (`lo + k * stride`).
    pub hi: u64,
    /// Step between values (at least 1).
    pub stride: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Range {
    /// Every value.
    pub const FULL: Range = Range {
        lo: 0,
        hi: u64::MAX,
        stride: 1,
    };

    /// `[lo, hi]`.
    pub fn new(lo: u64, hi: u64) -> Range {
        Range { lo, hi, stride: 1 }
    }

    /// The one value `v`.
    pub fn exactly(v: u64) -> Range {
        Range {
            lo: v,
            hi: v,
            stride: 1,
        }
    }

    /// The smallest range holding both.
    pub fn hull(&self, other: &Range) -> Range {
        let lo = self.lo.min(other.lo);
        let hi = self.hi.max(other.hi);
        let s1 = if self.lo == self.hi { 0 } else { self.stride };
        let s2 = if other.lo == other.hi {
            0
        } else {
            other.stride
        };
        let g = gcd(gcd(s1, s2), self.lo.abs_diff(other.lo));
        Range {
            lo,
            hi,
            stride: if lo == hi || g == 0 { 1 } else { g },
        }
    }

    /// It and `[lo, hi]`, `None` if empty.
    pub fn within(&self, lo: u64, hi: u64) -> Option<Range> {
        let mut l = self.lo.max(lo);
        let rem = (l - self.lo) % self.stride;
        if rem != 0 {
            l = l.checked_add(self.stride - rem)?;
        }
        let mut h = self.hi.min(hi);
        if h < l {
            return None;
        }
        h -= (h - l) % self.stride;
        Some(Range {
            lo: l,
            hi: h,
            stride: if l == h { 1 } else { self.stride },
        })
    }

    /// It without the value `v`, `None` if empty (only ends are removed).
    pub fn without(&self, v: u64) -> Option<Range> {
        if self.lo == self.hi && v == self.lo {
            return None;
        }
        if v == self.lo {
            return self.within(self.lo + 1, self.hi);
        }
        if v == self.hi {
            return self.within(self.lo, self.hi - 1);
        }
        Some(*self)
    }

    /// `k * x + c` for every x in it, if no value wraps.
    pub fn affine(&self, k: i64, c: i64) -> Option<Range> {
        let (a, b) = (
            i128::from(k) * i128::from(self.lo) + i128::from(c),
            i128::from(k) * i128::from(self.hi) + i128::from(c),
        );
        let (lo, hi) = (a.min(b), a.max(b));
        if lo < 0 || hi > i128::from(u64::MAX) {
            return None;
        }
        let stride = (i128::from(self.stride) * i128::from(k)).unsigned_abs();
        Some(Range {
            lo: lo as u64,
            hi: hi as u64,
            stride: if lo == hi {
                1
            } else {
                u64::try_from(stride).ok()?.max(1)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_cancel_and_overflow_to_top() {
        let a = Expr::sym(entry(7)).offset(16);
        let w = a.add(&Expr::sym(WIN));
        assert_eq!(w.sub(&Expr::sym(WIN)), a);
        assert_eq!(w.sub(&a), Expr::sym(WIN));
        let mut many = w;
        for r in [6, 2, 3, 1] {
            many = many.add(&Expr::sym(entry(r)));
        }
        assert!(many.is_top(), "six terms are too many");
        assert_eq!(a.scale(8).coeff(entry(7)), 8);
        assert!(Expr::TOP.add(&a).is_top());
    }

    #[test]
    fn ranges_keep_their_stride() {
        let r = Range::exactly(0).hull(&Range::exactly(8));
        assert_eq!(
            r,
            Range {
                lo: 0,
                hi: 8,
                stride: 8
            }
        );
        let r = r.hull(&Range::exactly(16)).hull(&Range {
            lo: 8,
            hi: 64,
            stride: 8,
        });
        assert_eq!(
            r,
            Range {
                lo: 0,
                hi: 64,
                stride: 8
            }
        );
        assert_eq!(
            r.without(64),
            Some(Range {
                lo: 0,
                hi: 56,
                stride: 8
            })
        );
        assert_eq!(
            r.within(3, 30),
            Some(Range {
                lo: 8,
                hi: 24,
                stride: 8
            })
        );
        assert_eq!(Range::exactly(5).without(5), None);
        assert_eq!(
            r.affine(-1, 64),
            Some(Range {
                lo: 0,
                hi: 64,
                stride: 8
            })
        );
    }
}

impl core::fmt::Display for Expr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_top() {
            return write!(f, "?");
        }
        for (s, k) in self.terms() {
            let name = match kind(*s) {
                Kind::Entry(r) => alloc::format!("in{r}"),
                Kind::Window => alloc::format!("W"),
                Kind::Section(i) => alloc::format!("sec{i}"),
                Kind::Import(i) => alloc::format!("imp{i}"),
                Kind::Common(i) => alloc::format!("com{i}"),
                Kind::Def => alloc::format!("d{}", (s & 0x3fff_ffff) / 2),
                Kind::Phi => alloc::format!(
                    "phi{}.{}",
                    (s & 0x7fff_ffff) as usize / LOCS,
                    (s & 0x7fff_ffff) as usize % LOCS
                ),
                Kind::Top => alloc::format!("?"),
            };
            if *k == 1 {
                write!(f, "{name}+")?
            } else {
                write!(f, "{k}*{name}+")?
            }
        }
        write!(f, "{:#x}", self.c)
    }
}
