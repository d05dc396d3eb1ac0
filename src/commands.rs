//! What each subcommand does: validate its inputs, run the library, write its outputs.

use crate::cli::{Cmd, DeviceArg, ForwardArgs, GpuArgs, GradArgs, GradcheckArgs, InitArgs, PrecisionArg, TrainArgs};
use crate::cpu;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::{self, context, Gpu, GpuModel, Precision};
use crate::network::Network;
use crate::npyio::{self, Out};
use crate::params::{Params, Scheme};
use crate::train::{self, Backend, CpuBackend, GpuBackend, TrainConfig};
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
    }
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

fn train_cmd(a: TrainArgs) -> Result<()> {
    let cfg = TrainConfig {
        n: a.n,
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        init: a.init.clone(),
        print_every: a.print_every,
        out: a.out.clone(),
        max_loss_ratio: a.max_loss_ratio,
    };
    let net = cfg.validate()?;
    let p = init_params(&net, &a.init, a.seed)?;
    let mut backend: Box<dyn Backend> = match a.device {
        DeviceArg::Cpu => Box::new(CpuBackend::new(p, cfg.lr, cfg.batch, cfg.seed)),
        DeviceArg::Gpu => {
            let m = open_model(&a.gpu, &p, true)?;
            Box::new(GpuBackend::new(m, cfg.lr, cfg.batch, cfg.seed))
        }
        DeviceArg::Auto => match open_model(&a.gpu, &p, false) {
            Ok(m) => Box::new(GpuBackend::new(m, cfg.lr, cfg.batch, cfg.seed)),
            Err(e) => {
                println!("[device] auto: no usable hardware GPU ({e}); using the CPU f64 path");
                Box::new(CpuBackend::new(p, cfg.lr, cfg.batch, cfg.seed))
            }
        },
    };
    let mut out = std::io::stdout().lock();
    train::run(&cfg, backend.as_mut(), &mut out)?;
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
fn open_model(a: &GpuArgs, p: &Params, allow_software: bool) -> Result<GpuModel> {
    let prec = precision(a);
    let adapter = context::pick(a.adapter.as_deref(), allow_software || a.adapter.is_some())?;
    let g = Gpu::open(&adapter, prec == Precision::F64)?;
    let m = GpuModel::new(g, p, prec)?;
    println!(
        "[device] gpu: {} | precision {} | kernel lane | chunk {} samples",
        m.gpu().name(),
        prec.wgsl(),
        m.chunk()
    );
    Ok(m)
}

fn devices() -> Result<()> {
    let lines = context::report();
    if lines.is_empty() {
        println!("no GPU adapter on Vulkan/Metal/DX12 (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)");
    }
    for l in lines {
        println!("{l}");
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
