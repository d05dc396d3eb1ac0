//! Structure-exploiting solvers on the f64 CPU path: exact block-coordinate least squares
//! (ALS) per stage and for M, the exact Gauss-Newton diagonal, and Levenberg-Marquardt.
//!
//! The network is a tree: stage s maps its input row i to output rows i and i + e only, so
//! twiddle i of stage s reaches exactly the output bins r = i (mod e), and the top and bottom
//! halves of the split reach the even and odd bins. The output is affine in one stage's
//! twiddles: y_r = c_r + w_{r mod e} d_r, where c is the output with that stage's twiddles
//! set to 0 and d the output of the stage's "bottom" inputs alone (its tangent). Because the
//! twiddles of one stage reach disjoint bins, the stage's least-squares problem splits into
//! one complex scalar problem per twiddle: w_i = sum conj(d)(t - c) / sum |d|^2 over its bins
//! and samples. M splits the same way into two 2x2 problems (even bins: M00, M01; odd bins:
//! M10, M11).

use crate::data::{Batch, Source};
use crate::error::{Error, Result};
use crate::hessian;
use crate::network::{Network, Stage};
use crate::params::Params;
use num_complex::Complex64 as C64;
use rayon::prelude::*;

/// Samples per parallel task (fixed, so sums are the same on any thread count).
const TASK: usize = 32;

/// Inputs and targets a solver fits: the population (the N identity vectors with exact DFT
/// targets, whose loss is the expected per-sample loss) or a minibatch.
#[derive(Clone, Debug)]
pub struct Problem {
    net: Network,
    /// Samples, B x N.
    x: Vec<f64>,
    /// Targets, B x (N/2 + 1).
    t: Vec<C64>,
    /// The loss is scale * sum |y - t|^2: 1/K for the population, 1/(B K) for a minibatch.
    scale: f64,
    /// The identity batch with exact targets (the structured ALS applies).
    identity: bool,
}

impl Problem {
    /// The population problem: loss = E_x (1/K) |(W - F) x|^2 = N x (identity-batch loss).
    pub fn population(net: &Network) -> Self {
        let mut p = Self::from_batch(net, &Batch::Identity);
        p.scale = 1.0 / net.bins() as f64;
        p.identity = true;
        p
    }

    /// A minibatch problem with the seed's loss (mean over B x K).
    pub fn from_batch(net: &Network, batch: &Batch) -> Self {
        let (n, k) = (net.n(), net.bins());
        let b = batch.len(net);
        let mut x = vec![0.0; b * n];
        let mut t = vec![C64::default(); b * k];
        let mut src = Source::new(net);
        for (i, (xr, tr)) in x.chunks_mut(n).zip(t.chunks_mut(k)).enumerate() {
            src.fill(batch, i, xr, tr);
        }
        Problem {
            net: net.clone(),
            x,
            t,
            scale: 1.0 / (b * k) as f64,
            identity: matches!(batch, Batch::Identity),
        }
    }

    /// The inputs (B x N) and targets (B x (N/2 + 1)).
    pub fn data(&self) -> (&[f64], &[C64]) {
        (&self.x, &self.t)
    }

    fn samples(&self) -> usize {
        self.x.len() / self.net.n()
    }
}

/// One twiddle stage on one sample's activations (length N): input (e, 2q) -> output (2e, q).
fn stage(st: &Stage, w: &[C64], inp: &[C64], out: &mut [C64]) {
    let (e, q) = (st.e, st.q);
    for i in 0..e {
        let wi = w[i];
        for j in 0..q {
            let top = inp[i * 2 * q + j];
            let p = wi * inp[i * 2 * q + q + j];
            out[i * q + j] = top + p;
            out[(i + e) * q + j] = top - p;
        }
    }
}

/// Apply stages after `from` (stages from+1..=L, 1-based; 0 = all) to `a` in place.
fn suffix(p: &Params, from: usize, a: &mut Vec<C64>, tmp: &mut Vec<C64>) {
    for st in &p.net.stages()[from..] {
        stage(st, &p.tw[st.offset..st.offset + st.e], a, tmp);
        std::mem::swap(a, tmp);
    }
}

fn split(m: &[C64; 4], x: &[f64], out: &mut [C64]) {
    let h = x.len() / 2;
    for i in 0..h {
        let (a, b) = (x[i], x[i + h]);
        out[i] = m[0] * a + m[1] * b;
        out[h + i] = m[2] * a + m[3] * b;
    }
}

/// Fixed-size tasks over the samples, reduced in index order (deterministic).
fn par_sum<T: Send>(
    nsamp: usize,
    zero: impl Fn() -> T + Sync,
    f: impl Fn(usize, &mut T) + Sync,
    add: impl Fn(&mut T, T),
) -> T {
    let parts: Vec<T> = (0..nsamp.div_ceil(TASK))
        .into_par_iter()
        .map(|c| {
            let mut acc = zero();
            for s in c * TASK..((c + 1) * TASK).min(nsamp) {
                f(s, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = zero();
    for p in parts {
        add(&mut total, p);
    }
    total
}

/// Per-sample activations: the input to every stage (index s-1 for stage s; index L is the output).
fn layers(p: &Params, prob: &Problem) -> Vec<Vec<C64>> {
    let n = p.net.n();
    (0..prob.samples())
        .into_par_iter()
        .map(|s| {
            let mut all = vec![C64::default(); n * (p.net.stages().len() + 1)];
            split(&p.m, &prob.x[s * n..(s + 1) * n], &mut all[..n]);
            for (li, st) in p.net.stages().iter().enumerate() {
                let (a, b) = all.split_at_mut((li + 1) * n);
                stage(st, &p.tw[st.offset..st.offset + st.e], &a[li * n..], &mut b[..n]);
            }
            all
        })
        .collect()
}

/// The loss of `prob` at `p` (scale * sum |y - t|^2).
pub fn loss(p: &Params, prob: &Problem) -> f64 {
    let (n, k) = (p.net.n(), p.net.bins());
    let l = p.net.stages().len();
    let acts = layers(p, prob);
    let sq = par_sum(
        prob.samples(),
        || 0.0,
        |s, acc| {
            let y = &acts[s][l * n..l * n + k];
            *acc += y
                .iter()
                .zip(&prob.t[s * k..(s + 1) * k])
                .map(|(a, b)| (a - b).norm_sqr())
                .sum::<f64>();
        },
        |a, b| *a += b,
    );
    prob.scale * sq
}

/// Sums for one stage's per-twiddle problems: (sum conj(d)(t - c), sum |d|^2) per twiddle.
type StageSums = (Vec<C64>, Vec<f64>);

/// The "top" (twiddles 0) and "bottom" (tangent) outputs of stage `st` for one sample whose
/// stage input is `inp`.
fn stage_parts(st: &Stage, inp: &[C64], top: &mut [C64], bot: &mut [C64]) {
    let (e, q) = (st.e, st.q);
    for i in 0..e {
        for j in 0..q {
            let t = inp[i * 2 * q + j];
            let b = inp[i * 2 * q + q + j];
            top[i * q + j] = t;
            top[(i + e) * q + j] = t;
            bot[i * q + j] = b;
            bot[(i + e) * q + j] = -b;
        }
    }
}

fn stage_sums(p: &Params, prob: &Problem, si: usize, inputs: &[Vec<C64>], at: usize) -> StageSums {
    let (n, k) = (p.net.n(), p.net.bins());
    let st = p.net.stages()[si];
    par_sum(
        prob.samples(),
        || (vec![C64::default(); st.e], vec![0.0; st.e]),
        |s, acc| {
            let inp = &inputs[s][at * n..(at + 1) * n];
            let (mut c, mut d, mut tmp) = (
                vec![C64::default(); n],
                vec![C64::default(); n],
                vec![C64::default(); n],
            );
            stage_parts(&st, inp, &mut c, &mut d);
            suffix(p, si + 1, &mut c, &mut tmp);
            suffix(p, si + 1, &mut d, &mut tmp);
            let t = &prob.t[s * k..(s + 1) * k];
            for r in 0..k {
                let i = r % st.e;
                acc.0[i] += d[r].conj() * (t[r] - c[r]);
                acc.1[i] += d[r].norm_sqr();
            }
        },
        |a, b| {
            for (x, y) in a.0.iter_mut().zip(b.0) {
                *x += y;
            }
            for (x, y) in a.1.iter_mut().zip(b.1) {
                *x += y;
            }
        },
    )
}

/// Gram sums for M: for parity h (0 even bins: M00, M01; 1 odd bins: M10, M11),
/// G[h] = [[sum |u|^2, sum conj(u) v], [.., sum |v|^2]] and rhs [sum conj(u) t, sum conj(v) t],
/// where u, v are the outputs for M = [[1,0],[1,0]] and [[0,1],[0,1]].
type MSums = [[C64; 5]; 2];

/// The outputs for one sample x with M = [[1,0],[1,0]] (u) and [[0,1],[0,1]] (v): on the even
/// bins d y / d M[0][c], on the odd bins d y / d M[1][c], for c = 0 (u) and 1 (v).
fn m_basis(p: &Params, x: &[f64]) -> (Vec<C64>, Vec<C64>) {
    let n = x.len();
    let (one, z) = (C64::new(1.0, 0.0), C64::default());
    let (mut u, mut v, mut tmp) = (vec![z; n], vec![z; n], vec![z; n]);
    split(&[one, z, one, z], x, &mut u);
    split(&[z, one, z, one], x, &mut v);
    suffix(p, 0, &mut u, &mut tmp);
    suffix(p, 0, &mut v, &mut tmp);
    (u, v)
}

fn m_sums(p: &Params, prob: &Problem) -> MSums {
    let (n, k) = (p.net.n(), p.net.bins());
    par_sum(
        prob.samples(),
        || [[C64::default(); 5]; 2],
        |s, acc| {
            let (u, v) = m_basis(p, &prob.x[s * n..(s + 1) * n]);
            let t = &prob.t[s * k..(s + 1) * k];
            for r in 0..k {
                let a = &mut acc[r % 2];
                a[0] += u[r].norm_sqr();
                a[1] += u[r].conj() * v[r];
                a[2] += v[r].norm_sqr();
                a[3] += u[r].conj() * t[r];
                a[4] += v[r].conj() * t[r];
            }
        },
        |a, b| {
            for h in 0..2 {
                for i in 0..5 {
                    a[h][i] += b[h][i];
                }
            }
        },
    )
}

/// Solve [[a, b], [conj b, c]] (m0, m1) = (r0, r1) (Hermitian PSD); None if singular.
fn solve2(g: &[C64; 5]) -> Option<(C64, C64)> {
    let (a, b, c, r0, r1) = (g[0].re, g[1], g[2].re, g[3], g[4]);
    let det = a * c - b.norm_sqr();
    if det.is_nan() || det <= 1e-14 * (a * c).max(f64::MIN_POSITIVE) {
        return None;
    }
    Some(((c * r0 - b * r1) / det, (a * r1 - b.conj() * r0) / det))
}

/// One ALS sweep: M, then stages 1..L, each set to its exact least-squares optimum given the
/// rest. Returns the loss before the sweep. Blocks whose problem is singular (no signal
/// reaches them) are left unchanged; the unused twiddle is never touched. On the population
/// problem this runs [`als_sweep_population`]; otherwise [`als_sweep_generic`].
pub fn als_sweep(p: &mut Params, prob: &Problem) -> f64 {
    if prob.identity {
        let before = als_sweep_population(p);
        prob.scale * before
    } else {
        als_sweep_generic(p, prob)
    }
}

/// ALS sweeps on the population until the relative operator error ||W - F||_F / ||F||_F is at
/// most `tol` (or `max_sweeps`); returns (sweeps, relative error). A sweep never raises the
/// loss (each block update is an exact minimisation), so the error is read off the loss each
/// sweep returns and confirmed once at the end.
pub fn als_solve(p: &mut Params, tol: f64, max_sweeps: u32) -> (u32, f64) {
    let fnorm2 = (p.net.n() * p.net.bins()) as f64; // ||F||_F^2: every entry has modulus 1
    let mut sweeps = 0;
    while sweeps < max_sweeps {
        let before = als_sweep_population(p);
        sweeps += 1;
        if (before / fnorm2).sqrt() <= tol {
            break;
        }
    }
    (sweeps, crate::cpu::rel_operator_error(p))
}

/// The same sweep as [`als_sweep`] by propagating every sample through the network (any
/// inputs); the reference for the structured population sweep.
pub fn als_sweep_generic(p: &mut Params, prob: &Problem) -> f64 {
    let before = loss(p, prob);
    let ms = m_sums(p, prob);
    for (h, g) in ms.iter().enumerate() {
        if let Some((a, b)) = solve2(g) {
            p.m[2 * h] = a;
            p.m[2 * h + 1] = b;
        }
    }
    let acts = layers(p, prob);
    let mut inputs = acts;
    for si in 0..p.net.stages().len() {
        let st = p.net.stages()[si];
        let (num, den) = stage_sums(p, prob, si, &inputs, si);
        for i in 0..st.e {
            if den[i] > 0.0 {
                p.tw[st.offset + i] = num[i] / den[i];
            }
        }
        // refresh this stage's output (the next stage's input) with the new twiddles
        let n = p.net.n();
        let w = &p.tw[st.offset..st.offset + st.e];
        inputs.par_iter_mut().for_each(|a| {
            let (lo, hi) = a.split_at_mut((si + 1) * n);
            stage(&st, w, &lo[si * n..], &mut hi[..n]);
        });
    }
    before
}

/// One ALS sweep on the population (identity inputs, exact DFT targets), exploiting that an
/// identity input reaches stage s in a single column: with e = 2^s, q = N / 2^(s+1), input e_a
/// sits in column a mod 2q of the stage's (e, 2q) input, one value per row (the "prefix"
/// vector v_a, length e), and stage-s output row r reaches the final rows b = r (mod 2e)
/// through a q x q matrix P_r (the later stages). So every d, c and target inner product is a
/// short sum, the P matrices follow from the next stage's by one butterfly (descending), and
/// the prefix vectors from the previous stage's (ascending). Returns sum |W - F|^2 before the
/// sweep. Costs O(N^2 log N) per sweep instead of O(N^2 log^2 N) for the generic sweep.
pub fn als_sweep_population(p: &mut Params) -> f64 {
    ALS_WORK.with(|w| {
        let mut w = w.borrow_mut();
        if w.as_ref().is_none_or(|w| w.n != p.net.n()) {
            *w = Some(AlsWork::new(&p.net));
        }
        sweep_population(p, w.as_mut().expect("set above"))
    })
}

/// Buffers of the population sweep, kept between sweeps (allocating them each sweep costs
/// more than the arithmetic: fresh pages are faulted in and zeroed).
struct AlsWork {
    n: usize,
    roots: Vec<C64>,
    pm: Vec<Vec<C64>>,
    v: Vec<C64>,
    nv: Vec<C64>,
}

impl AlsWork {
    fn new(net: &Network) -> Self {
        let n = net.n();
        let levels = net.stages().len();
        let pm = (0..=levels)
            .map(|s| {
                let q = n >> (s + 1);
                vec![C64::default(); (2usize << s) * q.max(1) * q.max(1)]
            })
            .collect();
        AlsWork {
            n,
            roots: (0..n)
                .map(|k| crate::params::root_of_unity(k as u64, n as u64))
                .collect(),
            pm,
            v: vec![C64::default(); n * n],
            nv: vec![C64::default(); n * n],
        }
    }
}

thread_local! {
    static ALS_WORK: std::cell::RefCell<Option<AlsWork>> = const { std::cell::RefCell::new(None) };
}

fn sweep_population(p: &mut Params, work: &mut AlsWork) -> f64 {
    let net = p.net.clone();
    let n = net.n();
    let h = n / 2;
    let mask = n - 1; // n is a power of two: x mod n = x & mask
    let levels = net.stages().len(); // L; level s = output of stage s (0 = the split)
    let roots = &work.roots;
    let q_of = |s: usize| n >> (s + 1);
    // P[s][(r q + b') q + j]: final row b = r + 2e b' from level-s output row r, column j
    let pm = &mut work.pm;
    pm[levels].fill(C64::new(1.0, 0.0));
    for s in (0..levels).rev() {
        let (e, q) = (1usize << s, q_of(s));
        let qn = q / 2;
        let st = net.stages()[s]; // stage s+1 (0-based index s)
        let (lo, hi) = pm.split_at_mut(s + 1);
        let next = &hi[0];
        let cur = &mut lo[s];
        cur.par_chunks_mut(q * q).enumerate().for_each(|(r, blk)| {
            let w = p.tw[st.offset + r];
            for bp in 0..q {
                let src = ((r + 2 * e * (bp % 2)) * qn + bp / 2) * qn;
                let sign = if bp % 2 == 0 { w } else { -w };
                for j in 0..q {
                    let v = next[src + (j % qn)];
                    blk[bp * q + j] = if j < qn { v } else { sign * v };
                }
            }
        });
    }
    // the loss before the sweep, from level 0: W[b][a] = m(b mod 2, a >= h) P0[b mod 2][b / 2][a mod h]
    let m_of = |m: &[C64; 4], rho: usize, hi: bool| m[2 * rho + hi as usize];
    let loss_sum: f64 = (0..n)
        .into_par_iter()
        .map(|a| {
            let (hi, j) = (a >= h, a % h);
            let mut acc = 0.0;
            for b in 0..=h {
                let (rho, bp) = (b % 2, b / 2);
                let y = m_of(&p.m, rho, hi) * pm[0][(rho * h + bp) * h + j];
                acc += (y - roots[(b * a) & mask]).norm_sqr();
            }
            acc
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    // M: each identity input involves one entry per parity, so all four decouple
    let mut newm = p.m;
    for rho in 0..2 {
        for hi in 0..2 {
            let (mut num, mut den) = (C64::default(), 0.0);
            for j in 0..h {
                let a = j + hi * h;
                let (mut bp, mut k, dk) = (0, (rho * a) & mask, (2 * a) & mask);
                while rho + 2 * bp <= h {
                    let pv = pm[0][(rho * h + bp) * h + j];
                    den += pv.norm_sqr();
                    num += pv.conj() * roots[k];
                    k = (k + dk) & mask;
                    bp += 1;
                }
            }
            if den > 0.0 {
                newm[2 * rho + hi] = num / den;
            }
        }
    }
    p.m = newm;
    // prefix vectors at level 0 (the split output): v_a = (m[0 or 1], m[2 or 3])
    let (mut v, mut nv) = (std::mem::take(&mut work.v), std::mem::take(&mut work.nv));
    for a in 0..n {
        let hi = (a >= h) as usize;
        v[2 * a] = p.m[hi];
        v[2 * a + 1] = p.m[2 + hi];
    }
    for (si, st) in net.stages().iter().enumerate() {
        let s = si + 1;
        let (e, q) = (st.e, st.q);
        debug_assert_eq!(q, q_of(s));
        let ps = &pm[s];
        // per twiddle i: sums over the inputs whose stage-s value is a "bottom" one
        let upd: Vec<Option<C64>> = (0..e)
            .into_par_iter()
            .map(|i| {
                let (mut num, mut den) = (C64::default(), 0.0);
                for a in 0..n {
                    let c = a & (2 * q - 1);
                    if c < q {
                        continue;
                    }
                    let j = c - q;
                    let vi = v[a * e + i];
                    if vi == C64::default() {
                        continue;
                    }
                    let (mut pn, mut pt) = (0.0, C64::default());
                    for (r, sign) in [(i, 1.0), (i + e, -1.0)] {
                        let (mut bp, mut k, dk) = (0, (r * a) & mask, (2 * e * a) & mask);
                        let (mut tn, mut tt) = (0.0, C64::default());
                        while r + 2 * e * bp <= h {
                            let pv = ps[(r * q + bp) * q + j];
                            tn += pv.norm_sqr();
                            tt += pv.conj() * roots[k];
                            k = (k + dk) & mask;
                            bp += 1;
                        }
                        pn += tn;
                        pt += sign * tt;
                    }
                    den += vi.norm_sqr() * pn;
                    num += vi.conj() * pt;
                }
                (den > 0.0).then(|| num / den)
            })
            .collect();
        for (i, u) in upd.into_iter().enumerate() {
            if let Some(w) = u {
                p.tw[st.offset + i] = w;
            }
        }
        // advance the prefix vectors to the next stage's input (2e values each)
        let w = &p.tw[st.offset..st.offset + e];
        nv[..n * 2 * e].par_chunks_mut(2 * e).enumerate().for_each(|(a, out)| {
            let va = &v[a * e..(a + 1) * e];
            let (top, bot) = out.split_at_mut(e);
            if a & (2 * q - 1) >= q {
                for ((t, b), (x, w)) in top.iter_mut().zip(bot.iter_mut()).zip(va.iter().zip(w)) {
                    *t = w * x;
                    *b = -(w * x);
                }
            } else {
                top.copy_from_slice(va);
                bot.copy_from_slice(va);
            }
        });
        std::mem::swap(&mut v, &mut nv);
    }
    work.v = v;
    work.nv = nv;
    loss_sum
}

/// The exact diagonal of the Gauss-Newton matrix 2 scale J^T J of `prob`'s loss, as reals
/// (re, im per complex parameter; both parts of a parameter share the value because the
/// output is holomorphic in every parameter). The unused twiddle gets 0.
pub fn gn_diagonal(p: &Params, prob: &Problem) -> Vec<f64> {
    let (n, k) = (p.net.n(), p.net.bins());
    let acts = layers(p, prob);
    let mut diag = vec![0.0; 2 * p.len()];
    // M: d y / d M[h][c] is u (c = 0) or v (c = 1) on the bins of parity h
    let z = C64::default();
    let msq = par_sum(
        prob.samples(),
        || [0.0; 4],
        |s, acc| {
            let (u, v) = m_basis(p, &prob.x[s * n..(s + 1) * n]);
            for r in 0..k {
                acc[2 * (r % 2)] += u[r].norm_sqr();
                acc[2 * (r % 2) + 1] += v[r].norm_sqr();
            }
        },
        |a, b| {
            for i in 0..4 {
                a[i] += b[i];
            }
        },
    );
    for (c, v) in msq.iter().enumerate() {
        diag[2 * c] = 2.0 * prob.scale * v;
        diag[2 * c + 1] = 2.0 * prob.scale * v;
    }
    for (si, st) in p.net.stages().iter().enumerate() {
        let sq = par_sum(
            prob.samples(),
            || vec![0.0; st.e],
            |s, acc| {
                let inp = &acts[s][si * n..(si + 1) * n];
                let (mut c, mut d, mut tmp) = (vec![z; n], vec![z; n], vec![z; n]);
                stage_parts(st, inp, &mut c, &mut d);
                suffix(p, si + 1, &mut d, &mut tmp);
                for r in 0..k {
                    acc[r % st.e] += d[r].norm_sqr();
                }
            },
            |a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            },
        );
        for (i, v) in sq.iter().enumerate() {
            let j = 2 * (4 + st.offset + i);
            diag[j] = 2.0 * prob.scale * v;
            diag[j + 1] = diag[j];
        }
    }
    diag
}

/// Levenberg-Marquardt on the population loss: state is the damping lambda.
#[derive(Clone, Debug)]
pub struct Lm {
    /// Damping (added to the diagonal of the Gauss-Newton matrix).
    pub lambda: f64,
}

/// Largest N for ALS on the population (its buffers hold ~1.5 N^2 complex values).
pub const ALS_POPULATION_MAX_N: usize = 4096;

/// Largest N for LM (the dense 2 (N + 3) square Gauss-Newton matrix is rebuilt every step).
pub const LM_MAX_N: usize = 1024;

impl Lm {
    /// Initial damping 1e-3 x the largest GN diagonal entry, set at the first step.
    pub fn new() -> Self {
        Lm { lambda: 0.0 }
    }

    /// One LM step on the population loss: solve (GN + lambda I) delta = -grad, accept if the
    /// loss falls (lambda / 3), else lambda x 4 and retry (up to 20 times). Returns the loss
    /// before the step.
    pub fn step(&mut self, p: &mut Params) -> Result<f64> {
        let net = p.net.clone();
        if net.n() > LM_MAX_N {
            return Err(Error::input(format!(
                "optimizer lm at N = {}: the Gauss-Newton matrix is dense, offered up to N = {LM_MAX_N}",
                net.n()
            )));
        }
        let prob = Problem::population(&net);
        let (f0, g) = hessian::population_grad(p);
        let (gn, _) = hessian::gauss_newton(p);
        let nr = g.len();
        if self.lambda == 0.0 {
            let dmax = (0..nr).map(|j| gn[j * nr + j]).fold(0.0, f64::max);
            self.lambda = 1e-3 * dmax.max(f64::MIN_POSITIVE);
        }
        for _ in 0..20 {
            let mut a = gn.clone();
            for j in 0..nr {
                a[j * nr + j] += self.lambda;
            }
            let rhs: Vec<f64> = g.iter().map(|v| -v).collect();
            if let Some(delta) = cholesky_solve(nr, &mut a, &rhs) {
                let mut q = p.clone();
                let mut f = q.flat();
                for (c, z) in f.iter_mut().enumerate() {
                    *z += C64::new(delta[2 * c], delta[2 * c + 1]);
                }
                q.set_flat(&f);
                let f1 = loss(&q, &prob);
                if f1 <= f0 {
                    *p = q;
                    self.lambda = (self.lambda / 3.0).max(1e-300);
                    return Ok(f0);
                }
            }
            self.lambda *= 4.0;
        }
        Ok(f0)
    }
}

impl Default for Lm {
    fn default() -> Self {
        Self::new()
    }
}

/// Solve A x = b for symmetric positive definite A (row-major, overwritten by its Cholesky
/// factor); None if A is not positive definite.
pub fn cholesky_solve(n: usize, a: &mut [f64], b: &[f64]) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        let (head, tail) = a.split_at_mut((j + 1) * n);
        let rowj = &head[j * n..j * n + j];
        tail.par_chunks_mut(n).for_each(|ri| {
            let mut s = ri[j];
            for k in 0..j {
                s -= ri[k] * rowj[k];
            }
            ri[j] = s / d;
        });
    }
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[i * n + k] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[k * n + i] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    Some(y)
}
