//! Link 3 of the chain of trust: GPU loss and gradients against the f64 CPU path on identical
//! f32-representable inputs and targets, reported per parameter group (M, each stage) the
//! way VkFFT reports precision: max abs, max and mean relative error, and the norm's error.

use super::model::{GpuBatch, GpuModel};
use super::Precision;
use crate::backend::cpu::{self, Grad};
use crate::error::{Error, Result};
use crate::io::table::{Shown, Table};
use crate::model::data::{rfft_rows, Batch};
use crate::model::network::M_ENTRIES;
use crate::model::params::Params;
use crate::model::rng::{self, Stream};
use num_complex::Complex64 as C64;

/// Errors of one parameter group.
#[derive(Clone, Debug)]
pub struct GroupError {
    /// "M" or "stage{s}".
    pub name: String,
    /// max |g_gpu - g_cpu|.
    pub max_abs: f64,
    /// max over entries of |g_gpu - g_cpu| / max(|g_cpu|, 1e-3 max_group |g_cpu|).
    pub max_rel: f64,
    /// mean of the same.
    pub mean_rel: f64,
    /// ||g_gpu - g_cpu|| / ||g_cpu|| over the group.
    pub norm_rel: f64,
    /// ||g_gpu - g_cpu|| / max(||g_cpu||, ||g_0||), g_0 = the gradient with zero targets (the
    /// model's natural gradient scale). Equals `norm_rel` wherever the residual is O(1); at the
    /// exact FFT, where g_cpu ~ 0 and relative error is undefined, it measures error against
    /// the scale the f32 rounding lives on.
    pub scaled: f64,
    /// ||g_cpu|| over the group.
    pub norm: f64,
}

/// A gradcheck report.
#[derive(Clone, Debug)]
pub struct Report {
    /// CPU loss.
    pub loss_cpu: f64,
    /// GPU loss.
    pub loss_gpu: f64,
    /// |loss_gpu - loss_cpu| / loss_cpu.
    pub loss_rel: f64,
    /// |loss_gpu - loss_cpu| / max(loss_cpu, mean |y|^2): the loss error on the model's scale.
    pub loss_scaled: f64,
    /// Per group.
    pub groups: Vec<GroupError>,
}

/// The errors a gradcheck at precision `p` passes within: (the loss's scaled error, the worst
/// group's scaled norm error). f32 rounds at 2^-24 (6e-8) per operation: 1e-5 and 1e-4 sit
/// well above the errors of correct kernels (docs/verification.md lists them per plan and N)
/// and far below a wrong gradient's, which is of order 1; f64 kernels must agree to 1e-12.
pub fn tolerances(p: Precision) -> (f64, f64) {
    match p {
        Precision::F32 => (1e-5, 1e-4),
        Precision::F64 => (1e-12, 1e-12),
    }
}

impl Report {
    /// Whether both errors are within [`tolerances`] at precision `p` (a NaN fails).
    pub fn passed(&self, p: Precision) -> bool {
        let (loss, grad) = tolerances(p);
        self.loss_scaled <= loss && self.worst_scaled() <= grad
    }

    /// The per-group errors as a report (the console's table; Python's `groups`).
    pub fn table(&self) -> Table {
        let f = |get: fn(&GroupError) -> f64| self.groups.iter().map(get).collect::<Vec<f64>>();
        Table::new()
            .text("name", self.groups.iter().map(|g| g.name.clone()))
            .shown("group", 8, Shown::Left)
            .float("norm", f(|g| g.norm))
            .shown("|g| cpu", 12, Shown::Sci(4))
            .float("max_abs", f(|g| g.max_abs))
            .shown("max abs", 12, Shown::Sci(3))
            .float("max_rel", f(|g| g.max_rel))
            .shown("max rel", 12, Shown::Sci(3))
            .float("mean_rel", f(|g| g.mean_rel))
            .shown("mean rel", 12, Shown::Sci(3))
            .float("norm_rel", f(|g| g.norm_rel))
            .shown("norm rel", 12, Shown::Sci(3))
            .float("scaled", f(|g| g.scaled))
            .shown("scaled", 12, Shown::Sci(3))
    }

    /// Largest per-group norm error.
    pub fn worst_norm_rel(&self) -> f64 {
        // NaN-propagating: a group that is NaN makes the worst NaN (and the check fail)
        self.groups
            .iter()
            .map(|g| g.norm_rel)
            .fold(0.0, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
    }
    /// Largest per-group scaled norm error.
    pub fn worst_scaled(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| g.scaled)
            .fold(0.0, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
    }
}

/// Inputs for a gradcheck: `b` Gaussian rows rounded to f32 (exactly representable on both
/// paths) and their rfft targets, also rounded to f32.
pub fn inputs(n: usize, b: usize, seed: u64) -> (Vec<f64>, Vec<C64>) {
    let mut x = vec![0.0; b * n];
    for (s, row) in x.chunks_mut(n).enumerate() {
        rng::normals(seed, Stream::Measure, 0, s as u32, row);
        for v in row.iter_mut() {
            *v = *v as f32 as f64;
        }
    }
    let net = crate::model::network::Network::new(n).expect("caller checked n");
    let t: Vec<C64> = rfft_rows(&net, &x)
        .into_iter()
        .map(|z| C64::new(z.re as f32 as f64, z.im as f32 as f64))
        .collect();
    (x, t)
}

/// Compare two gradients group by group; `zero` is the CPU gradient with zero targets
/// (the scale for [`GroupError::scaled`]), or None to use the CPU gradient itself.
pub fn compare(p: &Params, cpu: &Grad, gpu: &Grad, zero: Option<&Grad>) -> Report {
    let net = &p.net;
    let mut groups = Vec::new();
    let mut ranges = vec![("M".to_string(), 0usize, M_ENTRIES)];
    for st in net.stages() {
        ranges.push((format!("stage{}", st.s), st.param(0), st.param(st.e)));
    }
    let (a, b) = (cpu.flat(), gpu.flat());
    let z = zero.map_or_else(|| a.clone(), |g| g.flat());
    for (name, lo, hi) in ranges {
        let gmax = a[lo..hi].iter().map(|z| z.norm()).fold(0.0, f64::max);
        let floor = (1e-3 * gmax).max(f64::MIN_POSITIVE);
        let mut max_abs: f64 = 0.0;
        let mut max_rel: f64 = 0.0;
        let mut sum_rel = 0.0;
        let (mut dn, mut nn, mut zn) = (0.0, 0.0, 0.0);
        for i in lo..hi {
            let d = (b[i] - a[i]).norm();
            max_abs = max_abs.max(d);
            let r = d / a[i].norm().max(floor);
            max_rel = max_rel.max(r);
            sum_rel += r;
            dn += d * d;
            nn += a[i].norm_sqr();
            zn += z[i].norm_sqr();
        }
        groups.push(GroupError {
            name,
            max_abs,
            max_rel,
            mean_rel: sum_rel / (hi - lo) as f64,
            norm_rel: (dn / nn.max(f64::MIN_POSITIVE)).sqrt(),
            scaled: (dn / nn.max(zn).max(f64::MIN_POSITIVE)).sqrt(),
            norm: nn.sqrt(),
        });
    }
    let d = (gpu.loss - cpu.loss).abs();
    let zl = zero.map_or(cpu.loss, |g| g.loss);
    Report {
        loss_cpu: cpu.loss,
        loss_gpu: gpu.loss,
        loss_rel: d / cpu.loss.abs(),
        loss_scaled: d / cpu.loss.abs().max(zl),
        groups,
    }
}

/// Refuse an empty batch (before a device is opened for it).
pub fn check_batch(b: usize) -> Result<()> {
    if b == 0 {
        return Err(Error::input("--batch 0: the batch must be at least 1"));
    }
    Ok(())
}

/// Run both paths on the same inputs and targets at the model's parameters `p`.
pub fn run(model: &GpuModel, p: &Params, b: usize, seed: u64) -> Result<Report> {
    model.set_params(p);
    run_with(
        &|x, t| model.loss_grad(&GpuBatch::Host { x, target: Some(t) }),
        p,
        b,
        seed,
    )
}

/// A GPU gradient of host rows and targets (the parameters already on the device).
pub type GpuGrad<'a> = dyn Fn(&[f64], &[C64]) -> Result<Grad> + 'a;

/// [`run`] with any GPU gradient (`gpu(x, targets)`, parameters already `p`): one model, or
/// several adapters' parts summed ([`super::multi::MultiGpu::loss_grad_host`]).
pub fn run_with(gpu: &GpuGrad, p: &Params, b: usize, seed: u64) -> Result<Report> {
    check_batch(b)?;
    let (x, t) = inputs(p.net.n(), b, seed);
    let g_gpu = gpu(&x, &t)?;
    let g_cpu = cpu::loss_grad(
        p,
        &Batch::Given {
            x: &x,
            target: Some(&t),
        },
    );
    let zeros = vec![C64::default(); t.len()];
    let g_zero = cpu::loss_grad(
        p,
        &Batch::Given {
            x: &x,
            target: Some(&zeros),
        },
    );
    Ok(compare(p, &g_cpu, &g_gpu, Some(&g_zero)))
}
