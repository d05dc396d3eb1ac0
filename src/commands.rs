//! What each subcommand does: validate its inputs, run the library, write its outputs.

use crate::cli::{Cmd, DeviceArg, ForwardArgs, GradArgs, InitArgs, TrainArgs};
use crate::cpu;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::npyio::{self, Out};
use crate::params::{Params, Scheme};
use crate::train::{self, CpuBackend, TrainConfig};
use std::io::Write;
use std::path::Path;

/// Run one subcommand.
pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Init(a) => init(a),
        Cmd::Forward(a) => forward(a),
        Cmd::Grad(a) => grad(a),
        Cmd::Train(a) => train_cmd(a),
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
    let mut backend = match a.device {
        DeviceArg::Gpu => {
            return Err(Error::input(
                "--device gpu: the GPU path is not available in this build; use --device cpu or auto",
            ))
        }
        DeviceArg::Auto => {
            println!("[device] auto: no GPU path in this build; using the CPU f64 path");
            CpuBackend::new(p, cfg.lr, cfg.batch, cfg.seed)
        }
        DeviceArg::Cpu => CpuBackend::new(p, cfg.lr, cfg.batch, cfg.seed),
    };
    let mut out = std::io::stdout().lock();
    train::run(&cfg, &mut backend, &mut out)?;
    out.flush()?;
    Ok(())
}
