//! `fftlearn bench`: training-step throughput as a user measures it on their own machine.
//! A step is the whole of one Adam step at batch B: data (Philox + Box-Muller), the exact
//! target, the forward, the loss, the backward, the reduction and the update, ended by the
//! loss read back to the host (the step's one synchronisation). Each row is one kernel x
//! precision x batch on one device, timed over repeated steps after a warm-up step (which
//! compiles the shaders); it names the adapter and the machine. With several cells (`--cells`),
//! a step is one step of every cell of a pack (src/train/pack.rs: on the GPU one command
//! buffer for all of them, on the CPU one task per cell), and a row gives cell-steps/s beside
//! samples/s; one cell is the lone model a cell-by-cell sweep runs. [`run`] returns rows and
//! prints nothing; [`measure`] is the `bench` command's procedure: the request checked, the
//! table reported to a log, the CSV written.

use crate::backend::gpu::fused::Omit;
use crate::backend::gpu::{context, Gpu, GpuBatch, GpuModel, Kernel, ModelOptions, Precision};
use crate::error::{Error, Result};
use crate::given::Given;
use crate::model::network::Network;
use crate::model::params::{Params, Scheme};
use crate::model::rng::Stream;
use crate::optim::Adam;
use crate::train::pack::{CpuPack, GpuAdamPack, PackBackend};
use crate::train::{Backend, HostBackend, TrainConfig};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Transform size.
    pub n: usize,
    /// Batch sizes.
    pub batches: Vec<usize>,
    /// Timed steps per row at least.
    pub min_steps: usize,
    /// Timed seconds per row at least.
    pub min_time: f64,
    /// Run the CPU f64 path.
    pub cpu: bool,
    /// GPU kernel shapes to run (None in the list: auto), empty for none.
    pub kernels: Vec<Option<Kernel>>,
    /// GPU precisions.
    pub precisions: Vec<Precision>,
    /// Adapter name filter.
    pub adapter: Option<String>,
    /// Samples per dispatch (None: each shape's default).
    pub chunk: Option<usize>,
    /// Most samples per fused dispatch (None: by adapter type and N).
    pub dispatch_cap: Option<crate::backend::gpu::DispatchCap>,
    /// Cells per step (1: one lone model; more: a pack, on the fused kernel on the GPU).
    pub cells: Vec<usize>,
    /// Also time the lone fused models without their target's forward and without their
    /// backward (where the adapter has GPU timestamps).
    pub parts: bool,
}

/// The most cells `bench --cells` takes (a pack's rows are one dispatch dimension).
pub const MAX_CELLS: usize = 65_535;

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct Row {
    /// `cpu` or `gpu`.
    pub device: String,
    /// The adapter (GPU) or the CPU model and thread count.
    pub adapter: String,
    /// Kernel shape that ran (`-` on the CPU).
    pub kernel: String,
    /// `f32`/`f64`.
    pub precision: String,
    /// N.
    pub n: usize,
    /// Samples per step, per cell.
    pub batch: usize,
    /// Cells per step.
    pub cells: usize,
    /// Timed steps.
    pub steps: usize,
    /// Median seconds per step.
    pub median_s: f64,
    /// Fastest step.
    pub best_s: f64,
    /// The machine: CPU model, cores.
    pub machine: String,
    /// GPU timestamps of the timed steps (fused kernel on an adapter with TIMESTAMP_QUERY):
    /// the medians.
    pub gpu: Option<GpuTimes>,
}

/// Median GPU times per step, in seconds (`timing::StepTiming`'s parts).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuTimes {
    /// From the first training dispatch's beginning to the step's last dispatch's end.
    pub span: f64,
    /// The fused kernel's dispatches (data, target, forward, loss, backward).
    pub train: f64,
    /// The reduction of the partials.
    pub combine: f64,
    /// The Adam update.
    pub adam: f64,
    /// With `parts`: the fused kernel's time without the target's forward, and without the
    /// backward (timing plans that leave them out; [`crate::backend::gpu::fused::Omit`]).
    pub without: Option<(f64, f64)>,
}

impl GpuTimes {
    /// The medians of each part over `steps` (None for none).
    pub fn median(steps: &[crate::backend::gpu::timing::StepTiming]) -> Option<GpuTimes> {
        let med = |f: fn(&crate::backend::gpu::timing::StepTiming) -> f64| {
            let mut v: Vec<f64> = steps.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        (!steps.is_empty()).then(|| GpuTimes {
            span: med(|t| t.span),
            train: med(|t| t.train),
            combine: med(|t| t.combine),
            adam: med(|t| t.adam),
            without: None,
        })
    }
}

impl Row {
    /// Samples per second at the median step (every cell's).
    pub fn samples_per_s(&self) -> f64 {
        (self.cells * self.batch) as f64 / self.median_s
    }
    /// Cell-steps per second at the median step.
    pub fn cell_steps_per_s(&self) -> f64 {
        self.cells as f64 / self.median_s
    }
    /// The CSV header.
    pub const HEADER: &'static str =
        "device,adapter,kernel,precision,n,batch,cells,steps,median_s,best_s,samples_per_s,samples_per_s_best,cell_steps_per_s,machine,gpu_step_s,gpu_train_s,gpu_combine_s,gpu_adam_s,gpu_train_without_target_s,gpu_train_without_backward_s";
    /// One CSV line (text fields quoted).
    pub fn csv(&self) -> String {
        format!(
            "{},\"{}\",{},{},{},{},{},{},{:.6e},{:.6e},{:.1},{:.1},{:.1},\"{}\",{}",
            self.device,
            self.adapter.replace('"', "'"),
            self.kernel,
            self.precision,
            self.n,
            self.batch,
            self.cells,
            self.steps,
            self.median_s,
            self.best_s,
            self.samples_per_s(),
            (self.cells * self.batch) as f64 / self.best_s,
            self.cell_steps_per_s(),
            self.machine.replace('"', "'"),
            match &self.gpu {
                Some(g) => format!(
                    "{:.6e},{:.6e},{:.6e},{:.6e},{}",
                    g.span,
                    g.train,
                    g.combine,
                    g.adam,
                    g.without.map_or(",".to_string(), |(t, b)| format!("{t:.6e},{b:.6e}"))
                ),
                None => ",,,,,".to_string(),
            }
        )
    }
}

/// The CPU model name and the number of cores this process may use.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    format!("{model}, {cores} cores")
}

/// Time Adam steps of the lone model `m` at batch `b` from `p`: (steps, median, best seconds)
/// and the medians of its GPU timestamps.
fn time_model(
    cfg: &BenchConfig,
    m: &GpuModel,
    p: &Params,
    b: usize,
    seed: u64,
) -> Result<((usize, f64, f64), Option<GpuTimes>)> {
    m.set_params(p);
    let adam = Adam::new(1e-3);
    let mut tt = 0u64;
    let mut gpu_times = Vec::new();
    let t = time_steps_then(
        cfg.min_steps,
        cfg.min_time,
        |t| {
            tt += 1;
            let batch = GpuBatch::Gaussian {
                seed,
                stream: Stream::Data,
                step: t,
                size: b,
            };
            m.adam_step(&batch, &adam.hyper(), tt)
        },
        || {
            gpu_times.extend(m.last_step_timing()?);
            Ok(())
        },
    )?;
    Ok((t, GpuTimes::median(&gpu_times)))
}

/// Time `step` (called with step numbers from 2; step 1 is the untimed warm-up).
fn time_steps(min_steps: usize, min_time: f64, step: impl FnMut(u32) -> Result<f64>) -> Result<(usize, f64, f64)> {
    time_steps_then(min_steps, min_time, step, || Ok(()))
}

/// [`time_steps`], calling `after` untimed after each timed step.
fn time_steps_then(
    min_steps: usize,
    min_time: f64,
    mut step: impl FnMut(u32) -> Result<f64>,
    mut after: impl FnMut() -> Result<()>,
) -> Result<(usize, f64, f64)> {
    let l = step(1)?;
    if !l.is_finite() {
        return Err(Error::runtime(format!("bench: warm-up step gave loss {l}")));
    }
    let mut times = Vec::new();
    let start = Instant::now();
    let mut t = 2u32;
    while times.len() < min_steps || start.elapsed() < Duration::from_secs_f64(min_time) {
        let s = Instant::now();
        step(t)?;
        times.push(s.elapsed().as_secs_f64());
        after()?;
        t += 1;
    }
    times.sort_by(f64::total_cmp);
    Ok((times.len(), times[times.len() / 2], times[0]))
}

/// The configs of `cells` cells of Adam at lr 1e-3 on minibatches of `batch`, data seeds
/// 42, 43, ... (their own streams), at `n`.
fn cell_configs(n: usize, batch: usize, cells: usize, backend: crate::train::BackendKind) -> Vec<TrainConfig> {
    (0..cells)
        .map(|c| TrainConfig {
            n,
            lr: 1e-3,
            batch,
            seed: 42 + c as u64,
            backend,
            ..TrainConfig::default()
        })
        .collect()
}

/// The refusals of a configuration [`run`] would make, before anything is measured.
pub fn check(cfg: &BenchConfig) -> Result<()> {
    Network::new(cfg.n)?;
    if let Some(&c) = cfg.cells.iter().find(|&&c| c == 0 || c > MAX_CELLS) {
        return Err(Error::input(format!("--cells {c}: each count must be 1..={MAX_CELLS}")));
    }
    if cfg.parts && !cfg.kernels.iter().any(|k| k.is_none_or(|k| k == Kernel::Fused)) {
        return Err(Error::input(
            "--parts times the fused kernel's parts by removal: add fused (or auto) to --kernel and use --device gpu|both",
        ));
    }
    if cfg.cells.iter().any(|&c| c > 1) {
        if let Some(k) = cfg.kernels.iter().flatten().find(|&&k| k != Kernel::Fused) {
            return Err(Error::input(format!(
                "--cells above 1 runs packs, on the fused kernel; --kernel {} runs one cell (use --kernel fused or auto)",
                k.name()
            )));
        }
    }
    Ok(())
}

/// `bench` as a front end asks for it: the configuration with the shapes still named as given
/// (`all`, `auto`, `lane`, `group`, `fused`), whether the GPU path is measured, where the CSV
/// goes, and which settings were given.
#[derive(Clone, Debug)]
pub struct BenchRequest {
    /// What to measure (its `kernels` are filled from `kernel_names`).
    pub config: BenchConfig,
    /// The shapes as given.
    pub kernel_names: Vec<String>,
    /// Whether the GPU path is measured.
    pub gpu: bool,
    /// The CSV's path.
    pub out: Option<PathBuf>,
    /// Which settings were given.
    pub given: Given,
}

/// The shapes `names` asks for at N = `n`: `all` is every shape offered at N (lane stops at
/// [`crate::backend::gpu::abi::LANE_MAX_N`], said on `log`), `auto` is the adapter's pick (None).
fn kernels(names: &[String], n: usize, g: &Given, log: &mut dyn Write) -> Result<Vec<Option<Kernel>>> {
    use crate::backend::gpu::abi::LANE_MAX_N;
    let mut kernels = Vec::new();
    for k in names {
        match k.as_str() {
            "all" => {
                if n > LANE_MAX_N {
                    writeln!(
                        log,
                        "[bench] {} at N = {n}: lane left out (offered up to N = {LANE_MAX_N})",
                        g.with("kernel", "all")
                    )?;
                }
                kernels.extend(
                    Kernel::ALL
                        .into_iter()
                        .filter(|&k| k != Kernel::Lane || n <= LANE_MAX_N)
                        .map(Some),
                )
            }
            "auto" => kernels.push(None),
            other => kernels.push(Some(other.parse::<Kernel>()?)),
        }
    }
    Ok(kernels)
}

/// The request's own checks: batches, timing bounds, and the GPU path's settings refused
/// where only the CPU path is measured.
fn check_request(r: &BenchRequest) -> Result<()> {
    let (c, g) = (&r.config, &r.given);
    if c.batches.is_empty() || c.batches.contains(&0) {
        return Err(Error::input(format!(
            "{} {:?}: every batch must be at least 1",
            g.name("batches"),
            c.batches
        )));
    }
    if let Some(b) = c.batches.iter().find(|&&b| b > 1 << 32) {
        return Err(Error::input(format!(
            "{}: at most 2^32 samples per step, as train takes",
            g.with("batches", b)
        )));
    }
    if !(c.min_time >= 0.0 && c.min_time <= 3600.0) {
        return Err(Error::input(format!(
            "{}: must be 0..=3600 seconds per row",
            g.with("min_time", c.min_time)
        )));
    }
    if !(1..=1_000_000).contains(&c.min_steps) {
        return Err(Error::input(format!(
            "{}: 1..=1000000 timed steps per row",
            g.with("min_steps", c.min_steps)
        )));
    }
    g.refuse_repeats("batches", &c.batches, "batch", "each is measured once")?;
    if let Some(out) = &r.out {
        // refused now, not after the measurements
        crate::io::npy::check_out_early(out)?;
    }
    if !r.gpu {
        let unused = g.names(&["kernel", "precision", "adapter", "chunk", "dispatch_cap", "parts"]);
        if !unused.is_empty() {
            return Err(Error::input(format!(
                "{} {} the GPU path, and {} measures the CPU f64 path only; drop {} or use {}",
                unused.join(", "),
                crate::given::agree(&unused, "sets", "set"),
                g.with("device", "cpu"),
                crate::given::agree(&unused, "it", "them"),
                g.with("device", "gpu|both")
            )));
        }
    }
    Ok(())
}

/// Run `bench`: every row reported to `log` as it is measured (with its GPU timestamps and,
/// with `parts`, the parts by removal), the CSV written where `r.out` says, and the rows.
pub fn measure(r: &BenchRequest, log: &mut dyn Write) -> Result<Vec<Row>> {
    check_request(r)?;
    let kernels = kernels(&r.kernel_names, r.config.n, &r.given, log)?;
    let cfg = BenchConfig {
        kernels: if r.gpu { kernels } else { Vec::new() },
        ..r.config.clone()
    };
    // refused before the table's header, not after it
    check(&cfg)?;
    writeln!(
        log,
        "bench: N = {}, machine: {}{}",
        cfg.n,
        machine(),
        cfg.dispatch_cap.map_or(String::new(), |c| format!(
            ", {}",
            r.given.with("dispatch_cap", c.name())
        ))
    )?;
    writeln!(
        log,
        "{:<4} {:<6} {:<4} {:>9} {:>6} {:>6} {:>12} {:>14} {:>14}  adapter",
        "dev", "kernel", "prec", "batch", "cells", "steps", "median s", "samples/s", "cell-steps/s"
    )?;
    let mut failed = None;
    let rows = run(&cfg, |row| {
        if failed.is_none() {
            failed = report(row, log).err();
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if let Some(out) = &r.out {
        let mut text = String::from(Row::HEADER);
        text.push('\n');
        for row in &rows {
            text.push_str(&row.csv());
            text.push('\n');
        }
        crate::io::npy::write_text(out, &text)?;
        writeln!(log, "wrote {}", out.display())?;
    }
    Ok(rows)
}

/// One row's lines: the row, and the GPU timestamps' and parts' lines where it has them.
fn report(r: &Row, log: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        log,
        "{:<4} {:<6} {:<4} {:>9} {:>6} {:>6} {:>12.4e} {:>14.1} {:>14.1}  {}",
        r.device,
        r.kernel,
        r.precision,
        r.batch,
        r.cells,
        r.steps,
        r.median_s,
        r.samples_per_s(),
        r.cell_steps_per_s(),
        r.adapter
    )?;
    let Some(g) = &r.gpu else { return Ok(()) };
    writeln!(
        log,
        "     GPU timestamps (median step): {:.4} ms = train {:.4} + combine {:.4} + Adam {:.4} ms (and gaps); host wall {:.4} ms, {:.1}% of it outside that span",
        g.span * 1e3,
        g.train * 1e3,
        g.combine * 1e3,
        g.adam * 1e3,
        r.median_s * 1e3,
        100.0 * (1.0 - g.span / r.median_s).max(0.0)
    )?;
    if let Some((t, b)) = g.without {
        let (target, backward) = (g.train - t, g.train - b);
        writeln!(
            log,
            "     parts by removal (kernel, median step): target's forward {:.4} ms, backward {:.4} ms, the rest (data, learned forward, loss, reduction) {:.4} ms, of {:.4} ms (kernel without the target {:.4} ms, without the backward {:.4} ms)",
            target * 1e3,
            backward * 1e3,
            (g.train - target - backward) * 1e3,
            g.train * 1e3,
            t * 1e3,
            b * 1e3
        )?;
    }
    Ok(())
}

/// Run every configuration; `each` sees every row as it is measured. Long on purpose: the
/// CPU rows, the GPU packs and the lone GPU models are three loops over the same grid.
pub fn run(cfg: &BenchConfig, mut each: impl FnMut(&Row)) -> Result<Vec<Row>> {
    check(cfg)?;
    let net = Network::new(cfg.n)?;
    let p = Params::init(&net, &Scheme::Seed, 0);
    let machine = machine();
    let mut rows = Vec::new();
    let mut record = |device: &str,
                      adapter: String,
                      kernel: &str,
                      precision: &str,
                      batch: usize,
                      cells: usize,
                      t: (usize, f64, f64),
                      gpu: Option<GpuTimes>| {
        let r = Row {
            device: device.into(),
            adapter,
            kernel: kernel.into(),
            precision: precision.into(),
            n: cfg.n,
            batch,
            cells,
            steps: t.0,
            median_s: t.1,
            best_s: t.2,
            machine: machine.clone(),
            gpu,
        };
        each(&r);
        rows.push(r);
    };
    let seed = 42;
    if cfg.cpu {
        let threads = rayon::current_num_threads();
        for &cells in &cfg.cells {
            for &b in &cfg.batches {
                let t = if cells == 1 {
                    let mut be = HostBackend::cpu_adam(p.clone(), 1e-3, b, seed);
                    time_steps(cfg.min_steps, cfg.min_time, |t| be.step(t))?
                } else {
                    let configs = cell_configs(cfg.n, b, cells, crate::train::BackendKind::CpuF64);
                    let mut pack = CpuPack::new(configs.into_iter().map(|c| (c, p.clone())).collect())?;
                    time_pack(cfg, &mut pack)?
                };
                record(
                    "cpu",
                    format!("cpu f64 ({threads} threads)"),
                    "-",
                    "f64",
                    b,
                    cells,
                    t,
                    None,
                );
            }
        }
    }
    if !cfg.kernels.is_empty() {
        let adapter = context::pick(cfg.adapter.as_deref(), true)?;
        for &prec in &cfg.precisions {
            for &kernel in &cfg.kernels {
                let opts = ModelOptions {
                    prec,
                    kernel,
                    chunk: cfg.chunk,
                    int64: true,
                    fused_shape: None,
                    fused_hoist: None,
                    fused_omit: Default::default(),
                    dispatch_cap: cfg.dispatch_cap,
                };
                for &cells in &cfg.cells {
                    if cells > 1 {
                        for &b in &cfg.batches {
                            let g = Gpu::open(&adapter, prec == Precision::F64)?;
                            let m = GpuModel::pack(g, &vec![p.clone(); cells], opts, b)?;
                            let (name, kname) = (m.gpu().name(), m.kernel().name());
                            let backend = crate::train::BackendKind::gpu(prec);
                            let mut pack = GpuAdamPack::new(m, &cell_configs(cfg.n, b, cells, backend))?;
                            let t = time_pack(cfg, &mut pack)?;
                            record("gpu", name, kname, prec.wgsl(), b, cells, t, None);
                        }
                        continue;
                    }
                    let g = Gpu::open(&adapter, prec == Precision::F64)?;
                    let mut m = GpuModel::with_options(g, &p, opts)?;
                    // GPU timestamps where the adapter has them (fused steps)
                    m.enable_timing();
                    // --parts: the same plan without the target's forward and without the
                    // backward, for timing only (built once, timed at every batch)
                    let timing_plans = if cfg.parts && m.kernel() == Kernel::Fused {
                        [
                            Omit {
                                target: true,
                                backward: false,
                            },
                            Omit {
                                target: false,
                                backward: true,
                            },
                        ]
                        .into_iter()
                        .map(|fused_omit| {
                            let g = Gpu::open(&adapter, prec == Precision::F64)?;
                            let mut mo = GpuModel::with_options(g, &p, ModelOptions { fused_omit, ..opts })?;
                            mo.enable_timing();
                            Ok(mo)
                        })
                        .collect::<Result<Vec<_>>>()?
                    } else {
                        Vec::new()
                    };
                    for &b in &cfg.batches {
                        let (t, mut gpu) = time_model(cfg, &m, &p, b, seed)?;
                        if let (Some(g), [no_target, no_backward]) = (gpu.as_mut(), &timing_plans[..]) {
                            let kernel_s = |mo: &GpuModel| -> Result<f64> {
                                Ok(time_model(cfg, mo, &p, b, seed)?.1.map_or(f64::NAN, |t| t.train))
                            };
                            g.without = Some((kernel_s(no_target)?, kernel_s(no_backward)?));
                        }
                        record("gpu", m.gpu().name(), m.kernel().name(), prec.wgsl(), b, 1, t, gpu);
                    }
                }
            }
        }
    }
    Ok(rows)
}

/// Time steps of every cell of `pack` (the step's loss: the first cell's).
fn time_pack(cfg: &BenchConfig, pack: &mut dyn PackBackend) -> Result<(usize, f64, f64)> {
    let cells = pack.len();
    time_steps(cfg.min_steps, cfg.min_time, |t| {
        let rows: Vec<(usize, u32)> = (0..cells).map(|c| (c, t)).collect();
        let l = pack.step(&rows)?;
        l.first()
            .copied()
            .flatten()
            .ok_or_else(|| Error::interrupted("bench interrupted"))
    })
}
