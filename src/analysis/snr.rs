//! Gradient signal and noise per parameter group (M, stages 1..n-1): statistics of K
//! independent minibatch gradients, the exact population gradient, the exact per-sample
//! gradient variance (closed form), McCandlish's noise scale, and the scaling fits.
//!
//! Closed form. For one sample x the loss is (1/K) |(W - F) x|^2 with K = N/2 + 1 bins; its
//! derivative along any real parameter j is a quadratic form g_j(x) = x^T A_j x with A_j
//! symmetric, because the residual and its derivative are both linear in x. For x ~ N(0, I):
//! E g_j = tr A_j (the population gradient) and Var g_j = 2 ||A_j||_F^2. A_j is recovered
//! exactly by polarisation from per-sample gradients at e_a and e_a + e_b:
//! `A_j[a,b]` = (g_j(e_a + e_b) - g_j(e_a) - g_j(e_b)) / 2, which costs N (N + 1) / 2
//! per-sample gradients (131,328 at N = 512). A minibatch of B samples then has mean tr A_j
//! and variance 2 ||A_j||_F^2 / B.

use crate::backend::cpu;
use crate::backend::gpu::multi::MultiGpu;
use crate::backend::gpu::{GpuBatch, GpuModel};
use crate::error::{Error, Result};
use crate::given::Given;
use crate::io::table::{Shown, Table};
use crate::model::data::Batch;
use crate::model::network::Network;
use crate::model::params::{root_of_unity, Params};
use crate::model::rng::Stream;
use crate::objective::hessian::{group_of, n_real};
use num_complex::Complex64 as C64;

/// Exact first and second moments of the per-sample gradient under x ~ N(0, I).
#[derive(Clone, Debug)]
pub struct Exact {
    /// E g_j = tr A_j: the population gradient (reals, re/im per complex parameter).
    pub grad: Vec<f64>,
    /// Var g_j = 2 ||A_j||_F^2: the per-sample variance.
    pub var: Vec<f64>,
}

/// The exact per-sample moments at `p` (see the module notes). Costs N (N + 1) / 2
/// per-sample gradients.
pub fn exact(p: &Params) -> Exact {
    let net = &p.net;
    let (n, k) = (net.n(), net.bins());
    let nr = n_real(net);
    let diag = cpu::per_sample_grads(p, &Batch::Identity); // row a = g(e_a) = A[a,a]
    let mut grad = vec![0.0; nr];
    let mut sq = vec![0.0; nr];
    for row in diag.chunks(nr) {
        for j in 0..nr {
            grad[j] += row[j];
            sq[j] += row[j] * row[j];
        }
    }
    let mut x = Vec::with_capacity(n * n);
    let mut t = Vec::with_capacity(n * k);
    for a in 0..n - 1 {
        x.clear();
        t.clear();
        for b in a + 1..n {
            let mut row = vec![0.0; n];
            row[a] = 1.0;
            row[b] = 1.0;
            x.extend_from_slice(&row);
            t.extend((0..k).map(|r| root_of_unity((a * r) as u64, n as u64) + root_of_unity((b * r) as u64, n as u64)));
        }
        let g = cpu::per_sample_grads(
            p,
            &Batch::Given {
                x: &x,
                target: Some(&t),
            },
        );
        let da = &diag[a * nr..(a + 1) * nr];
        for (bi, row) in g.chunks(nr).enumerate() {
            let db = &diag[(a + 1 + bi) * nr..(a + 2 + bi) * nr];
            for j in 0..nr {
                let aab = 0.5 * (row[j] - da[j] - db[j]);
                sq[j] += 2.0 * aab * aab;
            }
        }
    }
    Exact {
        grad,
        var: sq.iter().map(|s| 2.0 * s).collect(),
    }
}

/// The groups reported: M (0), stages 1..n-1, then all used parameters together.
pub fn groups(net: &Network) -> Vec<(String, Vec<usize>)> {
    let nr = n_real(net);
    let mut out: Vec<(String, Vec<usize>)> = (0..=net.stages().len())
        .map(|g| {
            let name = if g == 0 { "M".to_string() } else { format!("stage{g}") };
            (name, (0..nr).filter(|&j| group_of(net, j) == Some(g)).collect())
        })
        .collect();
    out.push(("all".into(), (0..nr).filter(|&j| group_of(net, j).is_some()).collect()));
    out
}

/// One (group, batch size) row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// Group name: M, stage1.., all.
    pub group: String,
    /// Samples per minibatch.
    pub batch: usize,
    /// Real parameters in the group.
    pub params: usize,
    /// Minibatches.
    pub k: usize,
    /// Mean |g| over the group's parameters and the K minibatches.
    pub mean_abs_g: f64,
    /// sqrt(mean over the group of the unbiased across-minibatch variance).
    pub std: f64,
    /// The same from the closed form, sqrt(mean 2 ||A_j||^2 / B) (NaN when not computed).
    pub std_exact: f64,
    /// Median over the group of |mean_k g_j| / std_k(g_j).
    pub snr_median: f64,
    /// Median over the group of |E g_j| / sqrt(Var g_j / B), closed form.
    pub snr_exact_median: f64,
    /// Cockpit's MeanGSNR: mean over the group of G_j^2 / (B var_j), B var_j being the
    /// per-sample variance estimated from the minibatches, G the population gradient
    /// (parameters where it is 0/0 are left out).
    pub mean_gsnr: f64,
    /// MeanGSNR from the closed form: mean of G_j^2 / Var g_j.
    pub mean_gsnr_exact: f64,
    /// Mean over minibatches of cos(g_k, G) restricted to the group.
    pub cos_mean: f64,
    /// Smallest of those cosines.
    pub cos_min: f64,
    /// B_simple = tr(Sigma) / |G|^2, Sigma estimated as B times the minibatch covariance.
    pub b_simple: f64,
    /// B_simple from the closed form.
    pub b_simple_exact: f64,
    /// |G| restricted to the group.
    pub pop_norm: f64,
}

/// The rows as a report: every field a column (snr.csv's columns, Python's keys), the
/// console's columns given their headings.
pub fn table(rows: &[Row]) -> Table {
    let f = |get: fn(&Row) -> f64| rows.iter().map(get).collect::<Vec<f64>>();
    Table::new()
        .text("group", rows.iter().map(|r| r.group.clone()))
        .shown("group", 7, Shown::Left)
        .int("batch", rows.iter().map(|r| r.batch as i64))
        .int("params", rows.iter().map(|r| r.params as i64))
        .int("k", rows.iter().map(|r| r.k as i64))
        .float("mean_abs_g", f(|r| r.mean_abs_g))
        .shown("mean|g|", 11, Shown::Sci(4))
        .float("std", f(|r| r.std))
        .shown("std", 11, Shown::Sci(4))
        .float("std_exact", f(|r| r.std_exact))
        .shown("std exact", 11, Shown::Sci(4))
        .float("snr_median", f(|r| r.snr_median))
        .shown("SNR med", 10, Shown::Sci(3))
        .float("snr_exact_median", f(|r| r.snr_exact_median))
        .shown("SNR exact", 10, Shown::Sci(3))
        .float("mean_gsnr", f(|r| r.mean_gsnr))
        .shown("MeanGSNR", 10, Shown::Sci(3))
        .float("mean_gsnr_exact", f(|r| r.mean_gsnr_exact))
        .shown("GSNR ex", 10, Shown::Sci(3))
        .float("cos_mean", f(|r| r.cos_mean))
        .shown("cos", 8, Shown::Fixed(4))
        .float("cos_min", f(|r| r.cos_min))
        .float("b_simple", f(|r| r.b_simple))
        .shown("B_simple", 10, Shown::Sci(3))
        .float("b_simple_exact", f(|r| r.b_simple_exact))
        .shown("B_s exact", 10, Shown::Sci(3))
        .float("pop_norm", f(|r| r.pop_norm))
}

/// Median of the finite values (NaN if none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// Mean of the values that are not NaN (NaN if none): ratios 0/0 of parameters with no signal
/// and no noise (e.g. imaginary parts held at zero by symmetry) are left out.
pub fn nan_mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, c) = v
        .filter(|x| !x.is_nan())
        .fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
    if c == 0 {
        f64::NAN
    } else {
        s / c as f64
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else if num > 0.0 {
        f64::INFINITY
    } else {
        f64::NAN
    }
}

/// The report rows for one batch size from K minibatch gradients (`grads`, K rows of real
/// parameters), the population gradient `pop` and, if computed, the closed form.
pub fn rows(net: &Network, batch: usize, grads: &[Vec<f64>], pop: &[f64], ex: Option<&Exact>) -> Vec<Row> {
    let k = grads.len();
    let nr = pop.len();
    let kf = k as f64;
    let bf = batch as f64;
    // two-pass mean and unbiased variance across minibatches, per parameter
    let mean: Vec<f64> = (0..nr).map(|j| grads.iter().map(|g| g[j]).sum::<f64>() / kf).collect();
    let var: Vec<f64> = (0..nr)
        .map(|j| grads.iter().map(|g| (g[j] - mean[j]).powi(2)).sum::<f64>() / (kf - 1.0))
        .collect();
    let nan = f64::NAN;
    groups(net)
        .into_iter()
        .map(|(group, idx)| {
            let m = idx.len() as f64;
            let pop_sq: f64 = idx.iter().map(|&j| pop[j] * pop[j]).sum();
            let var_sum: f64 = idx.iter().map(|&j| var[j]).sum();
            let cos: Vec<f64> = grads
                .iter()
                .map(|g| {
                    let dot: f64 = idx.iter().map(|&j| g[j] * pop[j]).sum();
                    let gg: f64 = idx.iter().map(|&j| g[j] * g[j]).sum();
                    ratio(dot, (gg * pop_sq).sqrt())
                })
                .collect();
            let (std_exact, snr_exact_median, mean_gsnr_exact, b_simple_exact) = match ex {
                Some(e) => {
                    let vs: f64 = idx.iter().map(|&j| e.var[j]).sum();
                    (
                        (vs / m / bf).sqrt(),
                        median(
                            idx.iter()
                                .map(|&j| ratio(e.grad[j].abs(), (e.var[j] / bf).sqrt()))
                                .collect(),
                        ),
                        nan_mean(idx.iter().map(|&j| ratio(e.grad[j].powi(2), e.var[j]))),
                        ratio(vs, idx.iter().map(|&j| e.grad[j].powi(2)).sum()),
                    )
                }
                None => (nan, nan, nan, nan),
            };
            Row {
                group,
                batch,
                params: idx.len(),
                k,
                mean_abs_g: idx
                    .iter()
                    .map(|&j| grads.iter().map(|g| g[j].abs()).sum::<f64>())
                    .sum::<f64>()
                    / (m * kf),
                std: (var_sum / m).sqrt(),
                std_exact,
                snr_median: median(idx.iter().map(|&j| ratio(mean[j].abs(), var[j].sqrt())).collect()),
                snr_exact_median,
                mean_gsnr: nan_mean(idx.iter().map(|&j| ratio(pop[j].powi(2), bf * var[j]))),
                mean_gsnr_exact,
                cos_mean: cos.iter().sum::<f64>() / kf,
                cos_min: cos.iter().copied().fold(f64::INFINITY, f64::min),
                b_simple: ratio(bf * var_sum, pop_sq),
                b_simple_exact,
                pop_norm: pop_sq.sqrt(),
            }
        })
        .collect()
}

/// Least-squares slope of y against x over the pairs where both are finite.
pub fn slope(pts: &[(f64, f64)]) -> f64 {
    let p: Vec<&(f64, f64)> = pts.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if p.len() < 2 {
        return f64::NAN;
    }
    let n = p.len() as f64;
    let mx = p.iter().map(|q| q.0).sum::<f64>() / n;
    let my = p.iter().map(|q| q.1).sum::<f64>() / n;
    let sxy: f64 = p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum();
    let sxx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
    sxy / sxx
}

/// The seed's per-stage claim: slope of ln std(g_s) against (L - s) ln 2 over stages
/// s = 1..L (L = n - 1 stages; 8 at N = 512). The seed predicts 1/2. `pick` chooses the
/// column (measured or exact std).
pub fn stage_slope(rows: &[Row], batch: usize, pick: impl Fn(&Row) -> f64) -> f64 {
    let stages: Vec<&Row> = rows
        .iter()
        .filter(|r| r.batch == batch && r.group.starts_with("stage"))
        .collect();
    let l = stages.len() as f64;
    let pts: Vec<(f64, f64)> = stages
        .iter()
        .enumerate()
        .map(|(i, r)| ((l - (i + 1) as f64) * std::f64::consts::LN_2, pick(r).ln()))
        .collect();
    slope(&pts)
}

/// Slope of ln SNR (median, measured) against ln B for one group; iid minibatches give 1/2.
pub fn batch_slope(rows: &[Row], group: &str, pick: impl Fn(&Row) -> f64) -> f64 {
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.group == group)
        .map(|r| ((r.batch as f64).ln(), pick(r).ln()))
        .collect();
    slope(&pts)
}

/// The minibatch gradient of batch `size` at generator position `step` on the CPU, as reals.
pub fn cpu_minibatch(p: &Params, seed: u64, step: u32, size: usize) -> Vec<f64> {
    let g = cpu::loss_grad(
        p,
        &Batch::Gaussian {
            seed,
            stream: crate::model::rng::Stream::Measure,
            step,
            size,
        },
    );
    reals(&g.flat())
}

/// Complex gradients as reals (re, im per parameter).
pub fn reals(g: &[C64]) -> Vec<f64> {
    g.iter().flat_map(|z| [z.re, z.im]).collect()
}

/// Where [`minibatch_grads`] computes: the CPU f64 path, one GPU model, or several adapters.
#[derive(Clone, Copy)]
pub enum On<'a> {
    /// The exact f64 CPU path.
    Cpu,
    /// One GPU model.
    Gpu(&'a GpuModel),
    /// Several adapters, each minibatch split into parts (`--adapters`).
    Multi(&'a MultiGpu),
}

/// `k` independent minibatch gradients (as reals) at batch size `b`, from the Measure stream
/// at steps `first_step..first_step + k`, computed `on` the CPU path or the GPU. A
/// non-finite gradient is an error naming the minibatch.
pub fn minibatch_grads(p: &Params, on: On, seed: u64, first_step: u32, k: usize, b: usize) -> Result<Vec<Vec<f64>>> {
    let mut grads = Vec::with_capacity(k);
    for i in 0..k {
        if crate::interrupt::requested() {
            return Err(Error::interrupted(format!(
                "snr interrupted at batch size {b}, minibatch {i} of {k}; nothing written"
            )));
        }
        let step = first_step + i as u32;
        let g = match on {
            On::Gpu(m) => reals(
                &m.loss_grad(&GpuBatch::Gaussian {
                    seed,
                    stream: Stream::Measure,
                    step,
                    size: b,
                })?
                .flat(),
            ),
            On::Multi(m) => reals(&m.loss_grad(seed, Stream::Measure, step, b)?.flat()),
            On::Cpu => cpu_minibatch(p, seed, step, b),
        };
        if g.iter().any(|v| !v.is_finite()) {
            return Err(Error::runtime(format!(
                "non-finite gradient at batch size {b}, minibatch {i}: the point overflows {}",
                if matches!(on, On::Cpu) {
                    "f64"
                } else {
                    "the GPU's precision"
                }
            )));
        }
        grads.push(g);
    }
    Ok(grads)
}

/// Largest N for the closed-form moments (N (N + 1) / 2 per-sample gradients).
pub const EXACT_MAX_N: usize = 1024;

/// When to compute the closed-form moments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExactMode {
    /// For N <= [`EXACT_MAX_N`].
    Auto,
    /// Always (refused above [`EXACT_MAX_N`]).
    On,
    /// Never.
    Off,
}

/// A checked `snr` measurement: the batch sizes, K minibatches per batch size, and whether
/// the closed form is computed. Built here for both front ends ([`super::snr_report::run`]),
/// so they accept and refuse the same requests, each in its own spelling ([`Given`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SnrRequest {
    /// Batch sizes, each 1..=2^32.
    pub batches: Vec<usize>,
    /// Minibatches per batch size (>= 2).
    pub k: usize,
    /// Whether the closed-form moments are computed.
    pub exact: bool,
}

/// The population side of an `snr` measurement: the population loss and gradient, and where
/// the request asks for them the closed-form moments, with the seconds they took.
pub struct Baseline {
    /// The population loss.
    pub pop_loss: f64,
    /// The population gradient (reals).
    pub pop: Vec<f64>,
    /// The closed-form moments.
    pub exact: Option<Exact>,
    /// Seconds the closed form took (0 without it).
    pub exact_s: f64,
}

impl Baseline {
    /// The largest |tr A_j - population gradient_j|: how far the closed form's mean is from the
    /// population gradient computed directly (a check; rounding only).
    pub fn gap(&self, e: &Exact) -> f64 {
        e.grad
            .iter()
            .zip(&self.pop)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
    }
}

impl SnrRequest {
    /// The population loss and gradient at `p`, and the closed form if asked for.
    /// A point whose loss overflows (parameters beyond the network's f64 range) is refused
    /// here, before the closed form: every figure of it would be NaN.
    pub fn baseline(&self, p: &Params) -> Result<Baseline> {
        let (pop_loss, pop) = crate::objective::hessian::population_grad(p);
        if !pop_loss.is_finite() || pop.iter().any(|v| !v.is_finite()) {
            return Err(Error::input(format!(
                "the point's population loss is {pop_loss} (its parameters overflow the network's f64 range); measure a point of finite error"
            )));
        }
        let t = std::time::Instant::now();
        let exact = self.exact.then(|| exact(p));
        Ok(Baseline {
            pop_loss,
            pop,
            exact_s: if self.exact { t.elapsed().as_secs_f64() } else { 0.0 },
            exact,
        })
    }

    /// Check `batches`, `k` and `exact` for a point of size `n` (named as `g` spells them).
    pub fn new(n: usize, batches: Vec<usize>, k: usize, exact: ExactMode, g: &Given) -> Result<Self> {
        if k < 2 {
            return Err(Error::input(format!(
                "{}: at least 2 minibatches per batch size (the variance needs K - 1 > 0)",
                g.with("k", k)
            )));
        }
        if batches.is_empty() {
            return Err(Error::input(format!(
                "{}: give at least one batch size",
                g.name("batches")
            )));
        }
        if let Some(b) = batches.iter().find(|&&b| b == 0 || b > 1 << 32) {
            return Err(Error::input(format!(
                "{}: batch size {b} is out of range (1..=2^32)",
                g.name("batches")
            )));
        }
        g.refuse_repeats("batches", &batches, "batch size", "each size is measured once")?;
        // minibatch i of batch size j is Measure step j K + i, a u32: at most 2^32 of them
        if (batches.len() as u64).saturating_mul(k as u64) > 1 << 32 {
            return Err(Error::input(format!(
                "{} with {} batch sizes: more than 2^32 minibatches",
                g.with("k", k),
                batches.len()
            )));
        }
        // the K gradients of one batch size are held at once: 2 (N + 3) reals each
        let reals = 2 * (n as u128 + 3);
        crate::io::memory::check(
            k as u128 * (8 * reals + 24),
            &format!(
                "{} (K minibatch gradients of {reals} reals each, held at once)",
                g.with("k", k)
            ),
        )?;
        let exact = match exact {
            ExactMode::Off => false,
            ExactMode::Auto => n <= EXACT_MAX_N,
            ExactMode::On if n > EXACT_MAX_N => {
                return Err(Error::input(format!(
                    "{} at N = {n}: the closed form needs N (N + 1) / 2 = {} per-sample gradients; it is offered up to N = {EXACT_MAX_N} (use {})",
                    g.with("exact", "on"),
                    n * (n + 1) / 2,
                    g.with("exact", "off")
                )))
            }
            ExactMode::On => true,
        };
        Ok(SnrRequest { batches, k, exact })
    }

    /// The rows of every batch size at `p`, computed `on` a device, from the Measure stream
    /// of `seed` (batch size i takes steps i K .. (i + 1) K), against the population gradient
    /// `pop` and the closed form `ex`; `each(batch, rows, seconds)` sees each batch size's rows
    /// as they are measured.
    pub fn rows(
        &self,
        p: &Params,
        on: On,
        seed: u64,
        pop: &[f64],
        ex: Option<&Exact>,
        mut each: impl FnMut(usize, &[Row], f64) -> Result<()>,
    ) -> Result<Vec<Row>> {
        let mut all = Vec::new();
        for (bi, &b) in self.batches.iter().enumerate() {
            let t = std::time::Instant::now();
            let grads = minibatch_grads(p, on, seed, (bi * self.k) as u32, self.k, b)?;
            let rows = rows(&p.net, b, &grads, pop, ex);
            each(b, &rows, t.elapsed().as_secs_f64())?;
            all.extend(rows);
        }
        Ok(all)
    }
}
