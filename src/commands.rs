//! What each subcommand does: validate its inputs, run the library, write its outputs.

use crate::checkpoint::{self, Checkpoint};
use crate::cli::{
    Cmd, DeviceArg, ForwardArgs, GpuArgs, GradArgs, GradcheckArgs, InitArgs, KernelArg, PlotArgs, PrecisionArg,
    TrainArgs,
};
use crate::cpu;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::{self, context, Gpu, GpuModel, Kernel, ModelOptions, Precision};
use crate::network::Network;
use crate::npyio::{self, Out};
use crate::params::{Params, Scheme};
use crate::train::{self, Backend, CpuBackend, TrainConfig};
use std::io::Write;
use std::path::Path;

/// Run one subcommand.
pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Init(a) => init(a),
        Cmd::Forward(a) => forward(a),
        Cmd::Grad(a) => grad(a),
        Cmd::Train(a) => train_cmd(a),
        Cmd::Devices => devices(),
        Cmd::Gradcheck(a) => gradcheck(a),
        Cmd::Plot(a) => plot_runs(a),
        Cmd::Hessian(a) => crate::measure::hessian_cmd(a),
        Cmd::Rsweep(a) => crate::measure::rsweep_cmd(a),
        Cmd::Snr(a) => crate::measure::snr_cmd(a),
        Cmd::Sweep(a) => crate::sweep::run(&a.config, a.out.as_deref()),
        Cmd::Bench(a) => bench_cmd(a),
        Cmd::Claims(a) => crate::claims::run(&a.out, (!a.no_readme).then_some(a.readme.as_path())),
    }
}

fn plot_runs(a: PlotArgs) -> Result<()> {
    use crate::plot::{charts, Chart, Series};
    if !a.labels.is_empty() && a.labels.len() != a.runs.len() {
        return Err(Error::input(format!(
            "{} --label for {} --run: give one label per run, or none",
            a.labels.len(),
            a.runs.len()
        )));
    }
    if a.out.extension().is_none_or(|e| e != "png") {
        return Err(Error::input(format!(
            "--out {}: the plot is a PNG; use a .png name",
            a.out.display()
        )));
    }
    let mut loss = Vec::new();
    let mut err = Vec::new();
    for (i, r) in a.runs.iter().enumerate() {
        let csv = if r.is_dir() { r.join("metrics.csv") } else { r.clone() };
        let m = train::read_metrics(&csv)?;
        let label = a.labels.get(i).cloned().unwrap_or_else(|| {
            let dir = if r.is_dir() {
                r.as_path()
            } else {
                r.parent().unwrap_or(r)
            };
            dir.file_name()
                .map_or("run".into(), |n| n.to_string_lossy().to_string())
        });
        loss.push(Series {
            label: label.clone(),
            points: m.iter().map(|m| (m.step as f64, m.loss)).collect(),
            markers: false,
        });
        err.push(Series {
            label,
            points: m.iter().map(|m| (m.step as f64, m.rel_op_err)).collect(),
            markers: false,
        });
    }
    let panel = |title: &str, y: &str, series| Chart {
        title: title.into(),
        x_label: "step".into(),
        y_label: y.into(),
        log_x: false,
        log_y: true,
        series,
    };
    charts(
        &a.out,
        &[
            panel("training loss", "minibatch loss", loss),
            panel("relative operator error", "||W - F||_F / ||F||_F", err),
        ],
        640,
        480,
    )?;
    println!("wrote {}", a.out.display());
    Ok(())
}

fn init(a: InitArgs) -> Result<()> {
    let net = Network::new(a.n)?;
    let scheme: Scheme = a.scheme.parse()?;
    let p = Params::init(&net, &scheme, a.seed);
    p.save(&a.out)?;
    println!(
        "wrote {} (N = {}, scheme {scheme}, {} complex parameters)",
        a.out.display(),
        net.n(),
        p.len()
    );
    Ok(())
}

fn load_inputs(p: &Params, path: &Path) -> Result<Vec<f64>> {
    let (shape, x) = npyio::read_npy_f64(path, &[None, Some(p.net.n())]).map_err(|e| {
        e.context(format!(
            "--input (expected float64 of shape (B, {}) for N = {})",
            p.net.n(),
            p.net.n()
        ))
    })?;
    if shape[0] == 0 {
        return Err(Error::input(format!(
            "--input {}: batch of 0 rows; at least 1 is needed",
            path.display()
        )));
    }
    if !x.iter().all(|v| v.is_finite()) {
        return Err(Error::input(format!(
            "--input {}: contains NaN or infinity",
            path.display()
        )));
    }
    Ok(x)
}

fn forward(a: ForwardArgs) -> Result<()> {
    let p = Params::load(&a.params)?;
    let x = load_inputs(&p, &a.input)?;
    let b = x.len() / p.net.n();
    let y = cpu::forward(&p, &x);
    npyio::write_npy(&a.out, Out::C128(&[b, p.net.bins()], &y))?;
    println!("wrote {} ({b} x {} complex128)", a.out.display(), p.net.bins());
    Ok(())
}

fn grad(a: GradArgs) -> Result<()> {
    let p = Params::load(&a.params)?;
    let x = load_inputs(&p, &a.input)?;
    let b = x.len() / p.net.n();
    let target = match &a.target {
        Some(t) => {
            let (_, t) = npyio::read_npy_c128(t, &[Some(b), Some(p.net.bins())]).map_err(|e| {
                e.context(format!(
                    "--target (expected complex128 of shape ({b}, {}))",
                    p.net.bins()
                ))
            })?;
            Some(t)
        }
        None => None,
    };
    let g = cpu::loss_grad(
        &p,
        &Batch::Given {
            x: &x,
            target: target.as_deref(),
        },
    );
    npyio::write_npz(
        &a.out,
        &[
            ("loss", Out::Scalar(g.loss)),
            ("M", Out::C128(&[2, 2], &g.m)),
            ("twiddles", Out::C128(&[g.tw.len()], &g.tw)),
        ],
    )?;
    println!("wrote {} (loss {:.6e}, batch {b})", a.out.display(), g.loss);
    Ok(())
}

/// Parse `--init`: a scheme name or an .npz file.
pub fn init_params(net: &Network, init: &str, seed: u64) -> Result<Params> {
    if init.ends_with(".npz") {
        let p = Params::load(Path::new(init))?;
        if p.net != *net {
            return Err(Error::input(format!(
                "--init {init} holds parameters for N = {} but --n is {}",
                p.net.n(),
                net.n()
            )));
        }
        return Ok(p);
    }
    let scheme: Scheme = init.parse().map_err(|e: Error| e.context("--init"))?;
    Ok(Params::init(net, &scheme, seed))
}

/// With `--resume`: the checkpoint's config, with the allowed overrides applied and any
/// conflicting explicit flag reported by name.
fn resume_config(a: &TrainArgs, dir: &Path, ck: &Checkpoint) -> Result<TrainConfig> {
    let given = |id: &str| a.explicit.iter().any(|e| e == id);
    let mut cfg = ck.config.clone();
    let gpu_prec = match a.gpu.precision {
        PrecisionArg::F32 => "gpu-f32",
        PrecisionArg::F64 => "gpu-f64",
    };
    let checks: [(&str, String, String); 11] = [
        ("optimizer", a.optimizer.clone(), cfg.optimizer.clone()),
        ("momentum", format!("{:e}", a.momentum), format!("{:e}", cfg.momentum)),
        ("schedule", a.schedule.clone(), cfg.schedule.clone()),
        ("data", a.data.clone(), cfg.data.clone()),
        ("n", a.n.to_string(), cfg.n.to_string()),
        ("batch", a.batch.to_string(), cfg.batch.to_string()),
        ("lr", format!("{:e}", a.lr), format!("{:e}", cfg.lr)),
        ("seed", a.seed.to_string(), cfg.seed.to_string()),
        ("init", a.init.clone(), cfg.init.clone()),
        ("print_every", a.print_every.to_string(), cfg.print_every.to_string()),
        ("precision", gpu_prec.to_string(), cfg.backend.clone()),
    ];
    for (id, cli, stored) in checks {
        let conflict = if id == "precision" {
            cfg.backend.starts_with("gpu") && cli != stored
        } else {
            cli != stored
        };
        if given(id) && conflict {
            return Err(Error::input(format!(
                "--{} {cli} conflicts with the checkpoint's {id} = {stored} ({}); a resumed run keeps its config (may change: --steps, --checkpoint-every, --max-loss-ratio, --adapter)",
                id.replace('_', "-"),
                checkpoint::path_in(dir).display()
            )));
        }
    }
    if given("device") {
        let want = match a.device {
            DeviceArg::Cpu => Some("cpu"),
            DeviceArg::Gpu => Some("gpu"),
            DeviceArg::Auto => None,
        };
        if let Some(w) = want.filter(|w| !cfg.backend.starts_with(w)) {
            return Err(Error::input(format!(
                "--device {w} conflicts with the checkpoint's backend = {} ({}); a run resumes on the backend it started on",
                cfg.backend,
                checkpoint::path_in(dir).display()
            )));
        }
    }
    if given("out") && a.out != dir {
        return Err(Error::input(format!(
            "--out {} conflicts with --resume {}: a resumed run writes into its own directory",
            a.out.display(),
            dir.display()
        )));
    }
    cfg.out = dir.to_path_buf();
    if given("steps") {
        cfg.steps = a.steps;
    }
    if let Some(c) = a.checkpoint_every {
        cfg.checkpoint_every = c;
    }
    if given("max_loss_ratio") {
        cfg.max_loss_ratio = a.max_loss_ratio;
    }
    if cfg.steps <= ck.step {
        return Err(Error::input(format!(
            "--steps {}: the checkpoint in {} is already at step {}; pass --steps above {} to continue",
            cfg.steps,
            dir.display(),
            ck.step,
            ck.step
        )));
    }
    Ok(cfg)
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    let resume = match &a.resume {
        Some(dir) => Some(Checkpoint::load(&checkpoint::path_in(dir))?),
        None => None,
    };
    let mut cfg = match (&resume, &a.resume) {
        (Some(ck), Some(dir)) => resume_config(&a, dir, ck)?,
        _ => TrainConfig {
            n: a.n,
            steps: a.steps,
            batch: a.batch,
            lr: a.lr,
            seed: a.seed,
            init: a.init.clone(),
            print_every: a.print_every,
            out: a.out.clone(),
            max_loss_ratio: a.max_loss_ratio,
            checkpoint_every: a
                .checkpoint_every
                .unwrap_or(TrainConfig::default_checkpoint_every(a.steps)),
            backend: match a.device {
                DeviceArg::Gpu => "gpu-f32".into(),
                _ => "cpu-f64".into(),
            },
            optimizer: a.optimizer.clone(),
            momentum: a.momentum,
            schedule: a.schedule.clone(),
            data: a.data.clone(),
        },
    };
    let net = cfg.validate()?;
    // CPU-only solvers (lm, als) never try a GPU under --device auto
    let cpu_only = !crate::optim::GPU_OPTIMIZERS.contains(&cfg.optimizer.as_str());
    // with --resume the parameters come from the checkpoint; this is only the starting shape
    let p = match &resume {
        Some(ck) => ck.params.clone(),
        None => init_params(&net, &a.init, a.seed)?,
    };
    let device = match &resume {
        Some(_) if cfg.backend == "cpu-f64" => DeviceArg::Cpu,
        Some(_) => DeviceArg::Gpu,
        None if cpu_only => DeviceArg::Cpu,
        None => a.device,
    };
    let mut gpu_args = a.gpu.clone();
    if resume.is_some() {
        // a resumed run keeps the precision it started with
        gpu_args.precision = if cfg.backend == "gpu-f64" {
            PrecisionArg::F64
        } else {
            PrecisionArg::F32
        };
    }
    let mut backend: Box<dyn Backend> = match device {
        DeviceArg::Cpu => Box::new(CpuBackend::from_config(p, &cfg)?),
        DeviceArg::Gpu => {
            let m = open_model(&gpu_args, &p, true)?;
            train::gpu_backend(m, p, &cfg)?
        }
        DeviceArg::Auto => match open_model(&gpu_args, &p, false) {
            Ok(m) => train::gpu_backend(m, p, &cfg)?,
            Err(e) => {
                println!("[device] auto: no usable hardware GPU ({e}); using the CPU f64 path");
                Box::new(CpuBackend::from_config(p, &cfg)?)
            }
        },
    };
    cfg.backend = backend.kind();
    crate::interrupt::install();
    let mut out = std::io::stdout().lock();
    train::run(&cfg, backend.as_mut(), resume, &mut out)?;
    out.flush()?;
    Ok(())
}

fn precision(a: &GpuArgs) -> Precision {
    match a.precision {
        PrecisionArg::F32 => Precision::F32,
        PrecisionArg::F64 => Precision::F64,
    }
}

/// Open the GPU model: `allow_software` admits software adapters such as lavapipe.
pub(crate) fn open_model(a: &GpuArgs, p: &Params, allow_software: bool) -> Result<GpuModel> {
    let prec = precision(a);
    let adapter = context::pick(a.adapter.as_deref(), allow_software || a.adapter.is_some())?;
    let g = Gpu::open(&adapter, prec == Precision::F64)?;
    let opts = ModelOptions {
        prec,
        kernel: match a.kernel {
            KernelArg::Auto => None,
            KernelArg::Lane => Some(Kernel::Lane),
            KernelArg::Group => Some(Kernel::Group),
            KernelArg::Fused => Some(Kernel::Fused),
        },
        chunk: a.chunk,
        int64: true,
        fused_shape: None,
    };
    let m = GpuModel::with_options(g, p, opts)?;
    println!(
        "[device] gpu: {} | precision {} | {}",
        m.gpu().name(),
        prec.wgsl(),
        m.describe_shape()
    );
    if let Some(note) = m.note() {
        println!("[device] note: {note}");
    }
    Ok(m)
}

fn devices() -> Result<()> {
    let lines = context::report();
    if lines.is_empty() {
        println!("no GPU adapter on Vulkan/Metal/DX12 (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)");
    }
    let net = Network::seed();
    for (l, a) in lines.iter().zip(context::adapters()) {
        println!("{l}");
        for prec in [Precision::F32, Precision::F64] {
            println!(
                "    --kernel auto at N = {}: {}",
                net.n(),
                crate::gpu::model::auto_summary(&a, &net, prec)
            );
        }
    }
    Ok(())
}

fn gradcheck(a: GradcheckArgs) -> Result<()> {
    if a.batch == 0 {
        return Err(Error::input("--batch 0: the batch must be at least 1"));
    }
    let p = match &a.params {
        Some(path) => Params::load(path)?,
        None => init_params(&Network::new(a.n)?, &a.init, a.seed)?,
    };
    let m = open_model(&a.gpu, &p, true)?;
    let prec = m.precision();
    let (tol_loss, tol_grad) = match prec {
        Precision::F32 => (1e-5, 1e-4),
        Precision::F64 => (1e-12, 1e-12),
    };
    let r = gpu::gradcheck::run(&m, &p, a.batch, a.seed)?;
    println!(
        "gradcheck: N = {}, batch {}, precision {}, inputs and targets rounded to f32 on both paths",
        p.net.n(),
        a.batch,
        prec.wgsl()
    );
    println!(
        "loss: cpu {:.12e} gpu {:.12e} rel err {:.3e} scaled err {:.3e}",
        r.loss_cpu, r.loss_gpu, r.loss_rel, r.loss_scaled
    );
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "group", "|g| cpu", "max abs", "max rel", "mean rel", "norm rel", "scaled"
    );
    for g in &r.groups {
        println!(
            "{:<8} {:>12.4e} {:>12.3e} {:>12.3e} {:>12.3e} {:>12.3e} {:>12.3e}",
            g.name, g.norm, g.max_abs, g.max_rel, g.mean_rel, g.norm_rel, g.scaled
        );
    }
    println!("(scaled = error / max(|cpu value|, value with zero targets): the f32 scale; equals the relative error unless the residual is ~0, as at the exact FFT)");
    let ok = r.loss_scaled <= tol_loss && r.worst_scaled() <= tol_grad;
    println!(
        "{}: loss scaled err {:.3e} (tolerance {tol_loss:e}), worst group scaled norm err {:.3e} (tolerance {tol_grad:e}); plain relative: loss {:.3e}, worst group {:.3e}",
        if ok { "PASS" } else { "FAIL" },
        r.loss_scaled,
        r.worst_scaled(),
        r.loss_rel,
        r.worst_norm_rel()
    );
    if ok {
        Ok(())
    } else {
        Err(Error::runtime(
            "gradcheck failed: the GPU disagrees with the f64 CPU path beyond tolerance",
        ))
    }
}

fn bench_cmd(a: crate::cli::BenchArgs) -> Result<()> {
    use crate::bench::{self, BenchConfig, Row};
    use crate::cli::BenchDevice;
    if a.batches.is_empty() || a.batches.contains(&0) {
        return Err(Error::input(format!(
            "--batches {:?}: every batch must be at least 1",
            a.batches
        )));
    }
    if !(a.min_time >= 0.0 && a.min_time.is_finite()) {
        return Err(Error::input(format!(
            "--min-time {}: must be a finite number of seconds >= 0",
            a.min_time
        )));
    }
    let mut kernels = Vec::new();
    for k in &a.kernel {
        match k.as_str() {
            "all" => kernels.extend(Kernel::ALL.map(Some)),
            "auto" => kernels.push(None),
            other => kernels.push(Some(other.parse::<Kernel>()?)),
        }
    }
    let gpu = a.device != BenchDevice::Cpu;
    let cfg = BenchConfig {
        n: a.n,
        batches: a.batches.clone(),
        min_steps: a.min_steps,
        min_time: a.min_time,
        cpu: a.device != BenchDevice::Gpu,
        kernels: if gpu { kernels } else { Vec::new() },
        precisions: a
            .precision
            .iter()
            .map(|p| match p {
                PrecisionArg::F32 => Precision::F32,
                PrecisionArg::F64 => Precision::F64,
            })
            .collect(),
        adapter: a.adapter.clone(),
        chunk: a.chunk,
    };
    println!("bench: N = {}, machine: {}", a.n, bench::machine());
    println!(
        "{:<4} {:<6} {:<4} {:>9} {:>6} {:>12} {:>14}  adapter",
        "dev", "kernel", "prec", "batch", "steps", "median s", "samples/s"
    );
    let rows = bench::run(&cfg, |r| {
        println!(
            "{:<4} {:<6} {:<4} {:>9} {:>6} {:>12.4e} {:>14.1}  {}",
            r.device,
            r.kernel,
            r.precision,
            r.batch,
            r.steps,
            r.median_s,
            r.samples_per_s(),
            r.adapter
        );
    })?;
    if let Some(out) = &a.out {
        let mut text = String::from(Row::HEADER);
        text.push('\n');
        for r in &rows {
            text.push_str(&r.csv());
            text.push('\n');
        }
        crate::npyio::write_text(out, &text)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
