//! The exact Hessian and Gauss-Newton matrix of the population loss L = E_x\[loss\] =
//! ||W - F||_F^2 / (N/2+1), in f64, over the 2 (N + 3) real parameters (re and im of M's 4
//! entries and the N - 1 twiddles), their spectra (faer), zero modes and per-group blocks.
//!
//! W is affine in any single real parameter (each parameter appears at most once on the one
//! path from an input to an output), so L is quadratic in it and its gradient affine:
//! - Hessian column j = (grad L(theta + e_j) - grad L(theta - e_j)) / 2, exact for any step
//!   (here 1) up to rounding;
//! - Gauss-Newton column j = (2/K) J^T J e_j, where J e_j = W(theta + e_j) - W(theta) exactly;
//!   J^T is the backward pass with the output adjoint J e_j.
//!
//! Both use the analytic gradient on the identity batch (N times its loss is L).

use crate::backend::cpu;
use crate::error::{Error, Result};
use crate::model::data::Batch;
use crate::model::network::{Network, M_ENTRIES};
use crate::model::params::Params;
use num_complex::Complex64 as C64;
use rayon::prelude::*;

/// The largest N whose dense matrices are built and decomposed (4,102 real parameters: two
/// 134 MB matrices); beyond it the Lanczos method gives the spectrum's ends.
pub const DENSE_MAX_N: usize = 2048;

/// Refuse dense matrices above [`DENSE_MAX_N`], naming N and the way on.
pub fn check_dense(net: &Network) -> Result<()> {
    if net.n() > DENSE_MAX_N {
        let nr = n_real(net);
        return Err(crate::error::Error::input(format!(
            "N = {}: {nr} real parameters; the dense {nr} x {nr} matrices are limited to N <= {DENSE_MAX_N} (for larger N, `fftlearn hessian --method lanczos` gives the spectrum's ends)",
            net.n()
        )));
    }
    Ok(())
}

/// Number of real parameters: twice M's four entries and N - 1 twiddles.
pub fn n_real(net: &Network) -> usize {
    net.n_real_params()
}

/// A readable name for real parameter `j`: `M[r,c].re` or `tw[k](s=S,i=I).im`.
pub fn param_name(net: &Network, j: usize) -> String {
    let part = if j.is_multiple_of(2) { "re" } else { "im" };
    let c = j / 2;
    if c < M_ENTRIES {
        return format!("M[{},{}].{part}", c / 2, c % 2);
    }
    let k = c - M_ENTRIES;
    match net.stage_of_twiddle(k) {
        Some(st) => format!("tw[{k}](s={},i={}).{part}", st.s, k - st.offset),
        None => format!("tw[{k}, unused].{part}"),
    }
}

/// The parameter group of real parameter `j`: 0 = M, s = stage s, `None` for the unused twiddle.
pub fn group_of(net: &Network, j: usize) -> Option<usize> {
    let c = j / 2;
    if c < 4 {
        return Some(0);
    }
    net.stage_of_twiddle(c - 4).map(|st| st.s as usize)
}

fn perturbed(p: &Params, j: usize, by: f64) -> Params {
    let mut q = p.clone();
    let mut f = q.flat();
    if j.is_multiple_of(2) {
        f[j / 2].re += by;
    } else {
        f[j / 2].im += by;
    }
    q.set_flat(&f);
    q
}

fn real_of(g: &[C64], scale: f64) -> Vec<f64> {
    g.iter().flat_map(|z| [z.re * scale, z.im * scale]).collect()
}

/// Gradient of the population loss as reals (re, im per complex parameter).
pub fn population_grad(p: &Params) -> (f64, Vec<f64>) {
    let n = p.net.n() as f64;
    let g = cpu::loss_grad(p, &Batch::Identity);
    (g.loss * n, real_of(&g.flat(), n))
}

/// The Hessian of the population loss, row-major, symmetrised; also the largest asymmetry
/// |H_ij - H_ji| before symmetrising (a measure of the rounding in the columns).
pub fn hessian(p: &Params) -> (Vec<f64>, f64) {
    let nr = n_real(&p.net);
    let cols: Vec<Vec<f64>> = (0..nr)
        .into_par_iter()
        .map(|j| {
            let (_, gp) = population_grad(&perturbed(p, j, 1.0));
            let (_, gm) = population_grad(&perturbed(p, j, -1.0));
            gp.iter().zip(&gm).map(|(a, b)| 0.5 * (a - b)).collect()
        })
        .collect();
    symmetrise(nr, &cols)
}

/// The Gauss-Newton matrix (2/K) J^T J of the population loss, row-major, symmetrised.
pub fn gauss_newton(p: &Params) -> (Vec<f64>, f64) {
    let net = &p.net;
    let n = net.n();
    let nr = n_real(net);
    let mut eye = vec![0.0; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
    }
    let y0 = cpu::forward(p, &eye);
    let cols: Vec<Vec<f64>> = (0..nr)
        .into_par_iter()
        .map(|j| {
            let yj = cpu::forward(&perturbed(p, j, 1.0), &eye);
            // target y0 - (yj - y0): the loss's output adjoint becomes J e_j
            let t: Vec<C64> = y0.iter().zip(&yj).map(|(a, b)| a - (b - a)).collect();
            let g = cpu::loss_grad(
                p,
                &Batch::Given {
                    x: &eye,
                    target: Some(&t),
                },
            );
            real_of(&g.flat(), n as f64)
        })
        .collect();
    symmetrise(nr, &cols)
}

fn symmetrise(nr: usize, cols: &[Vec<f64>]) -> (Vec<f64>, f64) {
    let mut h = vec![0.0; nr * nr];
    let mut asym: f64 = 0.0;
    for i in 0..nr {
        for j in 0..nr {
            asym = asym.max((cols[j][i] - cols[i][j]).abs());
            h[i * nr + j] = 0.5 * (cols[j][i] + cols[i][j]);
        }
    }
    (h, asym)
}

/// Eigenvalues (ascending) and eigenvectors (column-major, one per eigenvalue) of a symmetric
/// row-major matrix.
pub fn eigen(nr: usize, h: &[f64]) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
    let m = faer::Mat::<f64>::from_fn(nr, nr, |i, j| h[i * nr + j]);
    let e = m
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| Error::runtime(format!("eigendecomposition failed: {e:?}")))?;
    let s = e.S();
    let u = e.U();
    let mut pairs: Vec<(f64, Vec<f64>)> = (0..nr).map(|c| (s[c], (0..nr).map(|r| u[(r, c)]).collect())).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(pairs.into_iter().unzip())
}

/// Eigenvalues only (ascending).
pub fn eigenvalues(nr: usize, h: &[f64]) -> Result<Vec<f64>> {
    let m = faer::Mat::<f64>::from_fn(nr, nr, |i, j| h[i * nr + j]);
    let mut v = m
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .map_err(|e| Error::runtime(format!("eigendecomposition failed: {e:?}")))?;
    v.sort_by(f64::total_cmp);
    Ok(v)
}

/// What the report says about one spectrum.
#[derive(Clone, Debug)]
pub struct Spectrum {
    /// Eigenvalues, ascending.
    pub eig: Vec<f64>,
    /// |lambda| <= tol count as zero.
    pub tol: f64,
    /// Zero modes: eigenvalue and the parameters carrying it (name, weight |u_i|^2 >= 0.05).
    pub zero_modes: Vec<(f64, Vec<(String, f64)>)>,
    /// Eigenvalues below -tol.
    pub negative: usize,
    /// lambda_max / smallest eigenvalue above tol.
    pub kappa: f64,
}

/// Analyse a symmetric matrix: zero modes (|lambda| <= rel_tol * lambda_max) with their
/// parameters, negative count, condition number over the rest.
pub fn spectrum(net: &Network, h: &[f64], rel_tol: f64) -> Result<Spectrum> {
    let nr = n_real(net);
    let (eig, vecs) = eigen(nr, h)?;
    let lmax = eig.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    let tol = rel_tol * lmax;
    let mut zero_modes = Vec::new();
    for (l, u) in eig.iter().zip(&vecs) {
        if l.abs() <= tol {
            let mut carriers: Vec<(String, f64)> = u
                .iter()
                .enumerate()
                .filter(|(_, x)| **x * **x >= 0.05)
                .map(|(i, x)| (param_name(net, i), x * x))
                .collect();
            carriers.sort_by(|a, b| b.1.total_cmp(&a.1));
            zero_modes.push((*l, carriers));
        }
    }
    let negative = eig.iter().filter(|&&l| l < -tol).count();
    let min_pos = eig.iter().copied().filter(|&l| l > tol).fold(f64::INFINITY, f64::min);
    Ok(Spectrum {
        kappa: lmax / min_pos,
        eig,
        tol,
        zero_modes,
        negative,
    })
}

/// One group's diagonal block: (group name, size, min eig, max eig, mean diagonal).
pub type Block = (String, usize, f64, f64, f64);

/// Per-group diagonal blocks (M, stage 1..).
pub fn blocks(net: &Network, h: &[f64]) -> Result<Vec<Block>> {
    let nr = n_real(net);
    let groups = 1 + net.stages().len();
    let mut out = Vec::new();
    for g in 0..groups {
        let idx: Vec<usize> = (0..nr).filter(|&j| group_of(net, j) == Some(g)).collect();
        let b = idx.len();
        let sub: Vec<f64> = idx
            .iter()
            .flat_map(|&i| idx.iter().map(move |&j| h[i * nr + j]))
            .collect();
        let e = eigenvalues(b, &sub)?;
        let mean_diag = idx.iter().map(|&i| h[i * nr + i]).sum::<f64>() / b as f64;
        let name = if g == 0 { "M".to_string() } else { format!("stage{g}") };
        out.push((name, b, e[0], e[b - 1], mean_diag));
    }
    Ok(out)
}

/// The population Gauss-Newton matrix as an operator, v -> (2/K) J^T (J v), for sizes where
/// the dense matrix is out of reach: J v by forward-mode (tangent) propagation of the N
/// identity inputs, J^T by the backward pass with that output adjoint. Exact up to rounding.
pub struct GnOperator {
    p: Params,
    eye: Vec<f64>,
    y: Vec<C64>,
}

impl GnOperator {
    /// The operator at `p` (holds the N x N identity and the N x (N/2+1) outputs; each
    /// application makes two more N x (N/2+1) arrays). Refused, before any allocation, when
    /// that is more than the machine's available memory.
    pub fn new(p: &Params) -> Result<Self> {
        let n = p.net.n();
        let (nn, k) = (n as u128, p.net.bins() as u128);
        crate::io::memory::check(
            nn * nn * 8 + 3 * nn * k * 16,
            &format!("the Gauss-Newton operator at N = {n} (N^2 identity inputs and their outputs)"),
        )?;
        let mut eye = vec![0.0; n * n];
        for i in 0..n {
            eye[i * n + i] = 1.0;
        }
        let y = cpu::forward(p, &eye);
        Ok(GnOperator { p: p.clone(), eye, y })
    }

    /// J v for the real direction `v` (re, im per complex parameter): N x (N/2+1) outputs.
    fn jvp(&self, v: &[f64]) -> Vec<C64> {
        let net = &self.p.net;
        let (n, k) = (net.n(), net.bins());
        let h = n / 2;
        let dz: Vec<C64> = v.chunks(2).map(|c| C64::new(c[0], c[1])).collect();
        let (dm, dtw) = dz.split_at(M_ENTRIES);
        let mut out = vec![C64::default(); n * k];
        out.par_chunks_mut(k).enumerate().for_each(|(a, o)| {
            // the split of e_a: column a mod h of rows 0 and 1
            let (mut y, mut t) = (vec![C64::default(); n], vec![C64::default(); n]);
            let (c, hi) = (a % h, (a >= h) as usize);
            y[c] = self.p.m[hi];
            y[h + c] = self.p.m[2 + hi];
            t[c] = dm[hi];
            t[h + c] = dm[2 + hi];
            let (mut y2, mut t2) = (vec![C64::default(); n], vec![C64::default(); n]);
            for st in net.stages() {
                for i in 0..st.e {
                    let (w, dw) = (self.p.tw[st.tw(i)], dtw[st.tw(i)]);
                    for j in 0..st.q {
                        let (ti, bi) = st.inputs(i, j);
                        let (o1, o2) = st.outputs(i, j);
                        let pv = w * y[bi];
                        let pt = dw * y[bi] + w * t[bi];
                        y2[o1] = y[ti] + pv;
                        y2[o2] = y[ti] - pv;
                        t2[o1] = t[ti] + pt;
                        t2[o2] = t[ti] - pt;
                    }
                }
                std::mem::swap(&mut y, &mut y2);
                std::mem::swap(&mut t, &mut t2);
            }
            o.copy_from_slice(&t[..k]);
        });
        out
    }

    /// (2/K) J^T J v.
    pub fn apply(&self, v: &[f64]) -> Vec<f64> {
        let jv = self.jvp(v);
        // target y - J v: the loss's output adjoint becomes J v (as in `gauss_newton`)
        let t: Vec<C64> = self.y.iter().zip(&jv).map(|(a, d)| a - d).collect();
        let g = cpu::loss_grad(
            &self.p,
            &Batch::Given {
                x: &self.eye,
                target: Some(&t),
            },
        );
        real_of(&g.flat(), self.p.net.n() as f64)
    }
}

/// Extreme eigenvalues of a symmetric operator on the subspace `mask` (true = kept) by
/// Lanczos with full reorthogonalisation from a seeded random start: the Ritz values (ascending)
/// after convergence of the smallest and largest (relative change < 1e-10 over 10 steps) or
/// `max_iter` steps, and the steps taken.
pub fn lanczos(
    op: impl Fn(&[f64]) -> Vec<f64>,
    mask: &[bool],
    max_iter: usize,
    seed: u64,
) -> Result<(Vec<f64>, usize)> {
    let l = lanczos_vectors(op, mask, max_iter, seed)?;
    Ok((l.ritz, l.steps))
}

/// What [`lanczos_vectors`] found.
#[derive(Clone, Debug)]
pub struct Lanczos {
    /// Ritz values, ascending.
    pub ritz: Vec<f64>,
    /// Steps taken.
    pub steps: usize,
    /// The unit Ritz vector of the smallest Ritz value.
    pub lowest_vector: Vec<f64>,
}

/// [`lanczos`], also returning the Ritz vector of the smallest Ritz value.
pub fn lanczos_vectors(op: impl Fn(&[f64]) -> Vec<f64>, mask: &[bool], max_iter: usize, seed: u64) -> Result<Lanczos> {
    let dim = mask.len();
    let kept = mask.iter().filter(|&&m| m).count();
    let max_iter = max_iter.min(kept).max(1);
    let mut q0 = vec![0.0; dim];
    crate::model::rng::normals(seed, crate::model::rng::Stream::Measure, u32::MAX, 0, &mut q0);
    let proj = |v: &mut [f64]| {
        for (x, &m) in v.iter_mut().zip(mask) {
            if !m {
                *x = 0.0;
            }
        }
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    proj(&mut q0);
    let nrm = dot(&q0, &q0).sqrt();
    q0.iter_mut().for_each(|x| *x /= nrm);
    let mut qs: Vec<Vec<f64>> = vec![q0];
    let (mut alpha, mut beta): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut last: Option<(f64, f64)> = None;
    let tridiagonal = |alpha: &[f64], beta: &[f64]| {
        let m = alpha.len();
        let mut t = vec![0.0; m * m];
        for i in 0..m {
            t[i * m + i] = alpha[i];
            if i + 1 < m {
                t[i * m + i + 1] = beta[i];
                t[(i + 1) * m + i] = beta[i];
            }
        }
        t
    };
    for it in 0..max_iter {
        let q = &qs[it];
        let mut w = op(q);
        proj(&mut w);
        let a = dot(q, &w);
        alpha.push(a);
        for (x, y) in w.iter_mut().zip(q) {
            *x -= a * y;
        }
        if it > 0 {
            let b = beta[it - 1];
            for (x, y) in w.iter_mut().zip(&qs[it - 1]) {
                *x -= b * y;
            }
        }
        for _ in 0..2 {
            for qj in &qs {
                let c = dot(qj, &w);
                for (x, y) in w.iter_mut().zip(qj) {
                    *x -= c * y;
                }
            }
        }
        let b = dot(&w, &w).sqrt();
        let m = alpha.len();
        let breakdown = b <= 1e-12 * a.abs().max(1e-300);
        if (m % 10 == 0) || breakdown || m == max_iter {
            let ritz = eigenvalues(m, &tridiagonal(&alpha, &beta))?;
            let ext = (ritz[0], ritz[m - 1]);
            let done = breakdown
                || m == max_iter
                || last.is_some_and(|(lo, hi): (f64, f64)| {
                    ((ext.0 - lo) / ext.0).abs() < 1e-10 && ((ext.1 - hi) / ext.1).abs() < 1e-10
                });
            last = Some(ext);
            if done {
                let (_, vecs) = eigen(m, &tridiagonal(&alpha, &beta))?;
                let y = &vecs[0];
                let mut v = vec![0.0; dim];
                for (qj, c) in qs.iter().zip(y) {
                    for (x, q) in v.iter_mut().zip(qj) {
                        *x += c * q;
                    }
                }
                let nv = dot(&v, &v).sqrt();
                v.iter_mut().for_each(|x| *x /= nv);
                return Ok(Lanczos {
                    ritz,
                    steps: m,
                    lowest_vector: v,
                });
            }
        }
        beta.push(b);
        qs.push(w.iter().map(|x| x / b).collect());
    }
    unreachable!("the loop returns at m == max_iter")
}
