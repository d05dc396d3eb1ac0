//! ALS: exact block-coordinate least squares, one block per stage and M, on the population
//! (a structured solve that never forms a sample) or on a minibatch.
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

use crate::model::network::{level, Network};
use crate::model::params::Params;
use crate::objective::problem::{layers, loss, m_basis, par_sum, stage, stage_parts, suffix, Problem};
use num_complex::Complex64 as C64;
use rayon::prelude::*;

/// Largest N for ALS on the population (its buffers hold ~1.5 N^2 complex values).
pub const ALS_POPULATION_MAX_N: usize = 4096;

/// Sums for one stage's per-twiddle problems: (sum conj(d)(t - c), sum |d|^2) per twiddle.
type StageSums = (Vec<C64>, Vec<f64>);

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
    (sweeps, crate::backend::cpu::rel_operator_error(p))
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
                p.tw[st.tw(i)] = num[i] / den[i];
            }
        }
        // refresh this stage's output (the next stage's input) with the new twiddles
        let n = p.net.n();
        let w = &p.tw[st.twiddles()];
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
        let pm = (0..=levels as u32)
            .map(|s| {
                let (e, q) = level(n, s);
                vec![C64::default(); 2 * e * q.max(1) * q.max(1)]
            })
            .collect();
        AlsWork {
            n,
            roots: (0..n)
                .map(|k| crate::model::params::root_of_unity(k as u64, n as u64))
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

/// One ALS sweep over the population loss (see the module notes). Long on purpose: the
/// suffix matrices, the loss, and the stage-by-stage solves share their work buffers and
/// read as the derivation does.
fn sweep_population(p: &mut Params, work: &mut AlsWork) -> f64 {
    let net = p.net.clone();
    let n = net.n();
    let h = n / 2;
    let mask = n - 1; // n is a power of two: x mod n = x & mask
    let levels = net.stages().len(); // L; level s = output of stage s (0 = the split)
    let roots = &work.roots;
    // P[s][(r q + b') q + j]: final row b = r + 2e b' from level-s output row r, column j
    let pm = &mut work.pm;
    pm[levels].fill(C64::new(1.0, 0.0));
    for s in (0..levels).rev() {
        let (e, q) = level(n, s as u32);
        let qn = q / 2;
        let st = net.stages()[s]; // stage s+1 (0-based index s)
        let (lo, hi) = pm.split_at_mut(s + 1);
        let next = &hi[0];
        let cur = &mut lo[s];
        cur.par_chunks_mut(q * q).enumerate().for_each(|(r, blk)| {
            let w = p.tw[st.tw(r)];
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
        debug_assert_eq!((e, q), level(n, s as u32));
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
                p.tw[st.tw(i)] = w;
            }
        }
        // advance the prefix vectors to the next stage's input (2e values each)
        let w = &p.tw[st.twiddles()];
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
