//! The anatomy of one point in parameter space (`fftlearn inspect`): where the error lives,
//! which parameters are off the canonical ones and in what pattern, the population gradient
//! there, the extreme eigenvalues of the exact Hessian, and whether a perturbation leads back
//! to the FFT.
//!
//! The structure it reports follows from the wiring ([`crate::model::network`]): output bin k
//! is reached by M's row k mod 2 and, at stage s, by twiddle (s, k mod 2^s) only. So the bins
//! k = r (mod 2^d) and the parameters that reach only them form a *subtree*, and the two halves
//! (d = 1: the even bins with M row 0 and the twiddles (s, i) of even i; the odd bins with M
//! row 1 and the odd twiddles) share no parameter: the population loss is the sum of two
//! independent problems. A half whose output is switched off contributes its whole target
//! energy: N/4 of the N/2 + 1 bins for the odd half, hence a relative operator error of
//! sqrt((N/4) / (N/2 + 1)) -> 1/sqrt(2).
//!
//! Everything here is f64 on the CPU path and returns structs; the CLI prints them.

use crate::analysis::snr::median;
use crate::backend::cpu;
use crate::error::Result;
use crate::model::network::{Network, M_ENTRIES};
use crate::model::params::{exact_twiddles, root_of_unity, Params, EXACT_M};
use crate::objective::hessian;
use crate::train::{self, Backend, End, Span, UntilThreshold};
use num_complex::Complex64 as C64;
use rayon::prelude::*;

/// One output bin: ||W_k - F_k||^2 / ||F_k||^2 and ||W_k||^2 / ||F_k||^2 (||F_k||^2 = N).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bin {
    /// Bin index, 0..=N/2.
    pub bin: usize,
    /// Relative squared error of the bin's row.
    pub err2: f64,
    /// The row's energy relative to the target's.
    pub energy: f64,
}

/// Per-bin error and energy of `p`'s operator against the DFT: the N identity inputs in
/// blocks, reduced in a fixed order (bit-identical at any thread count).
pub fn bins(p: &Params) -> Vec<Bin> {
    let net = &p.net;
    let (n, k) = (net.n(), net.bins());
    let roots: Vec<C64> = (0..n as u64).map(|m| root_of_unity(m, n as u64)).collect();
    const BLOCK: usize = 64;
    let parts: Vec<Vec<f64>> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
            let mut x = vec![0.0; (hi - lo) * n];
            for j in lo..hi {
                x[(j - lo) * n + j] = 1.0;
            }
            let y = cpu::forward(p, &x);
            let mut acc = vec![0.0; 2 * k];
            for j in lo..hi {
                for r in 0..k {
                    let w = y[(j - lo) * k + r];
                    let f = roots[(r * j) % n];
                    acc[r] += (w - f).norm_sqr();
                    acc[k + r] += w.norm_sqr();
                }
            }
            acc
        })
        .collect();
    let mut acc = vec![0.0; 2 * k];
    for part in &parts {
        for (a, v) in acc.iter_mut().zip(part) {
            *a += v;
        }
    }
    (0..k)
        .map(|r| Bin {
            bin: r,
            err2: acc[r] / n as f64,
            energy: acc[k + r] / n as f64,
        })
        .collect()
}

/// The relative operator error from per-bin errors: sqrt(sum err2 / (N/2 + 1)).
pub fn rel_error(bins: &[Bin]) -> f64 {
    (bins.iter().map(|b| b.err2).sum::<f64>() / bins.len() as f64).sqrt()
}

/// A subtree: the bins k = residue (mod modulus), with their mean error and energy and their
/// share of the total squared error.
#[derive(Clone, Debug, PartialEq)]
pub struct Subtree {
    /// 2^d.
    pub modulus: usize,
    /// r, 0 <= r < modulus.
    pub residue: usize,
    /// Bins in it.
    pub bins: usize,
    /// Mean relative squared error of its bins.
    pub mean_err2: f64,
    /// Smallest relative squared error among its bins.
    pub min_err2: f64,
    /// Mean relative energy of its bins.
    pub mean_energy: f64,
    /// Its share of the total squared error.
    pub share: f64,
}

fn subtree(bins: &[Bin], modulus: usize, residue: usize, total: f64) -> Subtree {
    let sel: Vec<&Bin> = bins.iter().filter(|b| b.bin % modulus == residue).collect();
    let cnt = sel.len().max(1) as f64;
    let sum: f64 = sel.iter().map(|b| b.err2).sum();
    Subtree {
        modulus,
        residue,
        bins: sel.len(),
        mean_err2: sum / cnt,
        min_err2: sel.iter().map(|b| b.err2).fold(f64::INFINITY, f64::min),
        mean_energy: sel.iter().map(|b| b.energy).sum::<f64>() / cnt,
        share: if total > 0.0 { sum / total } else { 0.0 },
    }
}

/// Every subtree of modulus 2^d, d = 1..=depth.
pub fn subtrees(bins: &[Bin], depth: u32) -> Vec<Subtree> {
    let total: f64 = bins.iter().map(|b| b.err2).sum();
    (1..=depth)
        .flat_map(|d| (0..1usize << d).map(move |r| (1usize << d, r)))
        .map(|(m, r)| subtree(bins, m, r, total))
        .collect()
}

/// The largest subtrees in which *every* bin is wrong (relative squared error above
/// `floor`), each with its parent not so: where the stall lives. Empty at the FFT.
pub fn failed_subtrees(bins: &[Bin], net: &Network, floor: f64) -> Vec<Subtree> {
    let total: f64 = bins.iter().map(|b| b.err2).sum();
    let mut out = Vec::new();
    let mut walk = vec![(1usize, 0usize)];
    // breadth over the tree: the root (modulus 1) first
    while let Some((m, r)) = walk.pop() {
        let t = subtree(bins, m, r, total);
        if t.bins > 0 && t.min_err2 > floor {
            out.push(t);
        } else if 2 * m <= net.n() && t.bins > 1 {
            walk.push((2 * m, r + m));
            walk.push((2 * m, r));
        }
    }
    out.sort_by_key(|t| (t.modulus, t.residue));
    out
}

/// How one stage's twiddles of one half (i even or odd) stand against the canonical ones.
#[derive(Clone, Debug, PartialEq)]
pub struct StageHalf {
    /// Stage s.
    pub stage: u32,
    /// 0: i even (the even bins), 1: i odd.
    pub half: usize,
    /// Twiddles.
    pub count: usize,
    /// Those within 1e-6 of the canonical twiddle.
    pub exact: usize,
    /// Largest |w - t|.
    pub max_dev: f64,
    /// Mean |w - t|.
    pub mean_dev: f64,
    /// Smallest, median and largest |w|.
    pub modulus: (f64, f64, f64),
    /// Median |arg(w / t)| (radians).
    pub median_phase_err: f64,
}

/// |w - t| of every used twiddle, with its stage and row: (k, s, i, w, t).
pub fn twiddle_deviation(p: &Params) -> Vec<(usize, u32, usize, C64, C64)> {
    let ex = exact_twiddles(&p.net);
    p.net
        .stages()
        .iter()
        .flat_map(|st| (0..st.e).map(move |i| (st.tw(i), st.s, i)))
        .map(|(k, s, i)| (k, s, i, p.tw[k], ex[k]))
        .collect()
}

/// Per stage and half: how many twiddles are canonical, their deviation, moduli and phases.
pub fn stages(p: &Params) -> Vec<StageHalf> {
    let dev = twiddle_deviation(p);
    let mut out = Vec::new();
    for st in p.net.stages() {
        for half in 0..2 {
            let sel: Vec<&(usize, u32, usize, C64, C64)> =
                dev.iter().filter(|d| d.1 == st.s && d.2 % 2 == half).collect();
            if sel.is_empty() {
                continue;
            }
            let d: Vec<f64> = sel.iter().map(|x| (x.3 - x.4).norm()).collect();
            let mods: Vec<f64> = sel.iter().map(|x| x.3.norm()).collect();
            out.push(StageHalf {
                stage: st.s,
                half,
                count: sel.len(),
                exact: d.iter().filter(|&&v| v <= 1e-6).count(),
                max_dev: d.iter().cloned().fold(0.0, f64::max),
                mean_dev: d.iter().sum::<f64>() / d.len() as f64,
                modulus: (
                    mods.iter().cloned().fold(f64::INFINITY, f64::min),
                    median(mods.clone()),
                    mods.iter().cloned().fold(0.0, f64::max),
                ),
                median_phase_err: median(sel.iter().map(|x| (x.3 / x.4).arg().abs()).collect()),
            });
        }
    }
    out
}

/// M against [[1, 1], [1, -1]]: |M_rc - exact| per entry, row-major.
pub fn m_deviation(p: &Params) -> [f64; 4] {
    [0, 1, 2, 3].map(|i| (p.m[i] - EXACT_M[i]).norm())
}

/// The names of the halves, by index (0: the even bins, 1: the odd bins).
pub const HALVES: [&str; 2] = ["even", "odd"];

/// The half (0 even, 1 odd) a real parameter belongs to; `None` for the unused twiddle.
pub fn half_of(net: &Network, j: usize) -> Option<usize> {
    let c = j / 2;
    if c < 4 {
        return Some(c / 2);
    }
    net.stage_of_twiddle(c - M_ENTRIES)
        .map(|st| (c - M_ENTRIES - st.offset) % 2)
}

/// The population gradient at a point: its norm, per half and per group (M, stage 1..).
#[derive(Clone, Debug, PartialEq)]
pub struct GradNorms {
    /// Population loss E_x\[loss\] = ||W - F||_F^2 / (N/2 + 1).
    pub loss: f64,
    /// ||grad||.
    pub total: f64,
    /// ||grad|| over the even half's and the odd half's parameters.
    pub halves: [f64; 2],
    /// ||grad|| per group: 0 = M, s = stage s.
    pub groups: Vec<f64>,
    /// The gradient (re, im per complex parameter).
    pub grad: Vec<f64>,
}

/// The population gradient's norms at `p`.
pub fn grad_norms(p: &Params) -> GradNorms {
    let (loss, g) = hessian::population_grad(p);
    let net = &p.net;
    let mut halves = [0.0; 2];
    let mut groups = vec![0.0; net.stages().len() + 1];
    for (j, v) in g.iter().enumerate() {
        if let Some(h) = half_of(net, j) {
            halves[h] += v * v;
        }
        if let Some(gr) = hessian::group_of(net, j) {
            groups[gr] += v * v;
        }
    }
    GradNorms {
        loss,
        total: g.iter().map(|v| v * v).sum::<f64>().sqrt(),
        halves: halves.map(f64::sqrt),
        groups: groups.into_iter().map(f64::sqrt).collect(),
        grad: g,
    }
}

/// The exact Hessian of the population loss applied to `v`: a fourth-order central
/// difference of the analytic population gradient, step `h` along v (error O(h^4): the
/// gradient is a polynomial along any line).
pub fn hessian_vector(p: &Params, v: &[f64], h: f64) -> Vec<f64> {
    let at = |t: f64| hessian::population_grad(&perturbed(p, v, t)).1;
    let (g1, g_1, g2, g_2) = (at(h), at(-h), at(2.0 * h), at(-2.0 * h));
    (0..v.len())
        .map(|j| (8.0 * (g1[j] - g_1[j]) - (g2[j] - g_2[j])) / (12.0 * h))
        .collect()
}

/// The extreme eigenvalues of the exact Hessian with the unused twiddle excluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Curvature {
    /// Smallest and largest Ritz values.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Lanczos steps taken.
    pub steps: usize,
    /// The unit eigenvector estimate of the smallest (re, im per complex parameter).
    pub min_vector: Vec<f64>,
}

/// Lanczos (full reorthogonalisation, seeded start) on the exact Hessian at `p`, the unused
/// twiddle masked out, for at most `max_iter` steps.
pub fn curvature(p: &Params, max_iter: usize, seed: u64) -> Result<Curvature> {
    let net = &p.net;
    let nr = hessian::n_real(net);
    let mask: Vec<bool> = (0..nr).map(|j| hessian::group_of(net, j).is_some()).collect();
    let l = hessian::lanczos_vectors(|v| hessian_vector(p, v, 1e-3), &mask, max_iter, seed)?;
    Ok(Curvature {
        min: l.ritz[0],
        max: *l.ritz.last().expect("at least one Lanczos step"),
        steps: l.steps,
        min_vector: l.lowest_vector,
    })
}

/// A unit direction of Gaussian entries (unused twiddle excluded), from `seed`.
pub fn random_direction(net: &Network, seed: u64) -> Vec<f64> {
    let nr = hessian::n_real(net);
    let mut v = vec![0.0; nr];
    crate::model::rng::normals(seed, crate::model::rng::Stream::Measure, u32::MAX - 1, 0, &mut v);
    for (j, x) in v.iter_mut().enumerate() {
        if hessian::group_of(net, j).is_none() {
            *x = 0.0;
        }
    }
    let nrm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / nrm).collect()
}

/// `p + eps v` for a real direction `v` (re, im per complex parameter).
pub fn perturbed(p: &Params, v: &[f64], eps: f64) -> Params {
    let mut q = p.clone();
    let mut f = q.flat();
    for (c, z) in f.iter_mut().enumerate() {
        *z += C64::new(v[2 * c], v[2 * c + 1]) * eps;
    }
    q.set_flat(&f);
    q
}

/// What Adam did from one starting point.
#[derive(Clone, Debug, PartialEq)]
pub struct Escape {
    /// "kept" (the point with its checkpoint's Adam state: the run continued), "fresh" (the
    /// point with a fresh Adam state), "lowest" (moved along the most negative curvature
    /// direction) or "random" (along a random direction); the last two with the checkpoint's
    /// state when there is one, else a fresh one.
    pub direction: String,
    /// Perturbation size (Euclidean, over the real parameters).
    pub eps: f64,
    /// Relative operator error at the start.
    pub start_rel: f64,
    /// At the end (or at success).
    pub final_rel: f64,
    /// Steps after the start to the first evaluation at or below [`LEFT_PLATEAU`].
    pub left: Option<u32>,
    /// Steps after the start to the first evaluation at or below the threshold.
    pub reached: Option<u32>,
}

/// An escape run has left the plateau once its relative operator error is at most this (the
/// stalls sit at 0.5..0.71; Adam at lr 1e-2 then needs a while longer to reach 1e-6).
pub const LEFT_PLATEAU: f64 = 1e-2;

/// [`UntilThreshold`] that also notes the first evaluation at or below [`LEFT_PLATEAU`].
struct Watch {
    inner: UntilThreshold,
    left: Option<u32>,
}

impl train::Observer for Watch {
    fn after_step(&mut self, s: &train::StepInfo, backend: &mut dyn Backend) -> Result<train::Flow> {
        let flow = self.inner.after_step(s, backend)?;
        if self.left.is_none() && self.inner.rel <= LEFT_PLATEAU {
            self.left = Some(s.step);
        }
        Ok(flow)
    }
}

/// The Adam runs of an escape test: the seed's Adam (CPU f64, constant lr) on minibatches.
#[derive(Clone, Copy, Debug)]
pub struct EscapeRun {
    /// Data position: the run continues the data stream after this step.
    pub start_step: u32,
    /// Most steps.
    pub steps: u32,
    /// Samples per step.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Data seed.
    pub seed: u64,
    /// Steps between exact evaluations.
    pub every: u32,
    /// Success threshold on the relative operator error.
    pub threshold: f64,
}

/// Adam from `start` (with `state`, a checkpoint's Adam moments and step, or a fresh state)
/// for `run.steps` steps: the final relative operator error and the steps it took to leave
/// the plateau ([`LEFT_PLATEAU`]) and to reach the threshold.
pub fn adam_from(
    start: &Params,
    state: Option<&crate::optim::OptState>,
    run: &EscapeRun,
) -> Result<(f64, Option<u32>, Option<u32>)> {
    let mut backend = crate::train::stepper::HostBackend::cpu_adam(start.clone(), run.lr, run.batch, run.seed);
    if let Some(st) = state {
        backend.restore(start, st)?;
    }
    let mut obs = Watch {
        inner: UntilThreshold::new(run.every, run.threshold),
        left: None,
    };
    let span = Span {
        start: run.start_step,
        steps: run.start_step + run.steps,
        max_loss_ratio: 1e8,
        loss_floor: Span::loss_floor(start.net.n()),
        first_loss: None,
    };
    let end = train::drive(span, &mut backend as &mut dyn Backend, &mut obs)?;
    let rel = match end {
        End::Diverged { .. } => f64::NAN,
        End::Interrupted(step) => {
            return Err(crate::error::Error::interrupted(format!(
                "escape run interrupted after {} of its {} steps",
                step.saturating_sub(run.start_step),
                run.steps
            )))
        }
        _ => obs.inner.rel,
    };
    let after = |s: Option<u32>| s.map(|s| s - run.start_step);
    Ok((rel, after(obs.left), after(obs.inner.reached)))
}

/// Adam's state at a point, per half and group: the median bias-corrected second-moment scale
/// sqrt(v_hat) (re and im together) and the median step Adam takes, |m_hat / (sqrt(v_hat) +
/// eps)| in units of the learning rate (about 1 for a consistent gradient; far below 1 where
/// v_hat still holds gradients much larger than the present ones).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamScale {
    /// Group (0 = M, s = stage s).
    pub group: usize,
    /// 0 even, 1 odd.
    pub half: usize,
    /// Median sqrt(v_hat).
    pub rms: f64,
    /// Median step / lr.
    pub step: f64,
}

/// [`AdamScale`] for every group and half from a checkpoint's Adam state (torch's betas 0.9 /
/// 0.999, eps 1e-8). `None` if the state has no `m` and `v` slots.
pub fn adam_scales(net: &Network, st: &crate::optim::OptState) -> Option<Vec<AdamScale>> {
    let a = crate::optim::Adam::new(1.0);
    let (m, v) = (st.slot("m")?, st.slot("v")?);
    let t = st.step as i32;
    let (c1, c2) = (1.0 - a.beta1.powi(t), 1.0 - a.beta2.powi(t));
    let mut cells: Vec<Vec<(f64, f64)>> = vec![Vec::new(); 2 * (net.stages().len() + 1)];
    for c in 0..m.len() {
        let j = 2 * c;
        let (Some(h), Some(g)) = (half_of(net, j), hessian::group_of(net, j)) else {
            continue;
        };
        let (vr, vi) = (v[c].re / c2, v[c].im / c2);
        let (mr, mi) = (m[c].re / c1, m[c].im / c1);
        let step = ((mr / (vr.sqrt() + a.eps)).powi(2) + (mi / (vi.sqrt() + a.eps)).powi(2)).sqrt();
        cells[2 * g + h].push(((vr + vi).sqrt(), step));
    }
    Some(
        cells
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty())
            .map(|(i, c)| AdamScale {
                group: i / 2,
                half: i % 2,
                rms: median(c.iter().map(|x| x.0).collect()),
                step: median(c.iter().map(|x| x.1).collect()),
            })
            .collect(),
    )
}

/// A hand-built Adam state "remembering" earlier gradients: step `t`, first moments 0, second
/// moments such that the bias-corrected v_hat equals `g_early`^2 per real parameter (re, im
/// per complex parameter). What Adam carries into a plateau after a transient of gradients
/// of size `g_early`: its steps there are |g| / |g_early| of the learning rate until v forgets
/// (time constant 1 / (1 - beta2) = 1000 steps).
pub fn remembered_state(g_early: &[f64], t: u64) -> crate::optim::OptState {
    let a = crate::optim::Adam::new(1.0);
    let c2 = 1.0 - a.beta2.powi(t as i32);
    let v: Vec<C64> = g_early
        .chunks(2)
        .map(|c| C64::new(c[0] * c[0] * c2, c[1] * c[1] * c2))
        .collect();
    crate::optim::OptState {
        step: t,
        slots: vec![("m".into(), vec![C64::default(); v.len()]), ("v".into(), v)],
    }
}

/// The hand-built stall's predicted relative operator error: the odd half (N/4 bins) switched
/// off, the even half exact.
pub fn odd_off_error(net: &Network) -> f64 {
    ((net.n() / 4) as f64 / net.bins() as f64).sqrt()
}
