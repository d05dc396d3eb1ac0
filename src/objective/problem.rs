//! The problem every solver fits, as exact f64 mathematics: inputs and targets (the
//! population: the N identity vectors with exact DFT targets, or a minibatch), the loss, the
//! per-sample activations, and the exact Gauss-Newton diagonal (the curvature `dgn` uses).
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

use crate::model::data::{Batch, Source};
use crate::model::network::{Network, Stage};
use crate::model::params::Params;
use num_complex::Complex64 as C64;
use rayon::prelude::*;

/// Samples per parallel task (fixed, so sums are the same on any thread count).
pub(crate) const TASK: usize = 32;

/// Inputs and targets a solver fits: the population (the N identity vectors with exact DFT
/// targets, whose loss is the expected per-sample loss) or a minibatch.
#[derive(Clone, Debug)]
pub struct Problem {
    pub(crate) net: Network,
    /// Samples, B x N.
    pub(crate) x: Vec<f64>,
    /// Targets, B x (N/2 + 1).
    pub(crate) t: Vec<C64>,
    /// The loss is scale * sum |y - t|^2: 1/K for the population, 1/(B K) for a minibatch.
    pub(crate) scale: f64,
    /// The identity batch with exact targets (the structured ALS applies).
    pub(crate) identity: bool,
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

    pub(crate) fn samples(&self) -> usize {
        self.x.len() / self.net.n()
    }
}

/// One twiddle stage on one sample's activations (length N): input (e, 2q) -> output (2e, q).
pub(crate) fn stage(st: &Stage, w: &[C64], inp: &[C64], out: &mut [C64]) {
    for (i, &wi) in w.iter().enumerate().take(st.e) {
        for j in 0..st.q {
            let (t, b) = st.inputs(i, j);
            let (o1, o2) = st.outputs(i, j);
            let top = inp[t];
            let p = wi * inp[b];
            out[o1] = top + p;
            out[o2] = top - p;
        }
    }
}

/// Apply stages after `from` (stages from+1..=L, 1-based; 0 = all) to `a` in place.
pub(crate) fn suffix(p: &Params, from: usize, a: &mut Vec<C64>, tmp: &mut Vec<C64>) {
    for st in &p.net.stages()[from..] {
        stage(st, &p.tw[st.twiddles()], a, tmp);
        std::mem::swap(a, tmp);
    }
}

pub(crate) fn split(m: &[C64; 4], x: &[f64], out: &mut [C64]) {
    let h = x.len() / 2;
    for i in 0..h {
        let (a, b) = (x[i], x[i + h]);
        out[i] = m[0] * a + m[1] * b;
        out[h + i] = m[2] * a + m[3] * b;
    }
}

/// Fixed-size tasks over the samples, reduced in index order (deterministic).
pub(crate) fn par_sum<T: Send>(
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
pub(crate) fn layers(p: &Params, prob: &Problem) -> Vec<Vec<C64>> {
    let n = p.net.n();
    (0..prob.samples())
        .into_par_iter()
        .map(|s| {
            let mut all = vec![C64::default(); n * (p.net.stages().len() + 1)];
            split(&p.m, &prob.x[s * n..(s + 1) * n], &mut all[..n]);
            for (li, st) in p.net.stages().iter().enumerate() {
                let (a, b) = all.split_at_mut((li + 1) * n);
                stage(st, &p.tw[st.twiddles()], &a[li * n..], &mut b[..n]);
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
            let j = 2 * st.param(i);
            diag[j] = 2.0 * prob.scale * v;
            diag[j + 1] = diag[j];
        }
    }
    diag
}

/// The "top" (twiddles 0) and "bottom" (tangent) outputs of stage `st` for one sample whose
/// stage input is `inp`.
pub(crate) fn stage_parts(st: &Stage, inp: &[C64], top: &mut [C64], bot: &mut [C64]) {
    for i in 0..st.e {
        for j in 0..st.q {
            let (it, ib) = st.inputs(i, j);
            let (o1, o2) = st.outputs(i, j);
            let (t, b) = (inp[it], inp[ib]);
            top[o1] = t;
            top[o2] = t;
            bot[o1] = b;
            bot[o2] = -b;
        }
    }
}

/// The outputs for one sample x with M = [[1,0],[1,0]] (u) and [[0,1],[0,1]] (v): on the even
/// bins d y / d M[0][c], on the odd bins d y / d M[1][c], for c = 0 (u) and 1 (v).
pub(crate) fn m_basis(p: &Params, x: &[f64]) -> (Vec<C64>, Vec<C64>) {
    let n = x.len();
    let (one, z) = (C64::new(1.0, 0.0), C64::default());
    let (mut u, mut v, mut tmp) = (vec![z; n], vec![z; n], vec![z; n]);
    split(&[one, z, one, z], x, &mut u);
    split(&[z, one, z, one], x, &mut v);
    suffix(p, 0, &mut u, &mut tmp);
    suffix(p, 0, &mut v, &mut tmp);
    (u, v)
}
