//! The command-line interface (binary only): the clap flags ([`args`]), what each subcommand
//! does (validate its inputs, run the library, write its outputs, print its report; here and
//! in [`measure`]).

pub mod args;
pub mod device;
pub mod measure;
pub mod out;
pub mod request;

use device::{open_adapters, open_model};
use out::say;

use crate::cli::args::{Cmd, ForwardArgs, GradArgs, GradcheckArgs, InitArgs, PlotArgs, TrainArgs};
use fftlearn::backend::cpu;
use fftlearn::backend::gpu::{self, context, Precision};
use fftlearn::backend::Device;
use fftlearn::error::{Error, Result};
use fftlearn::io::npy::{self, Out};
use fftlearn::model::data::Batch;
use fftlearn::model::network::Network;
use fftlearn::model::params::Params;
use fftlearn::train;
use std::path::Path;

fn path_of(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref().map_or(String::new(), |p| p.display().to_string())
}

/// Run one subcommand.
pub fn run(cmd: Cmd) -> Result<()> {
    // a misspelt FFTLEARN_ADAPTER_PROFILE is an error whichever path runs
    gpu::profile::Profile::from_env()?;
    match cmd {
        Cmd::Init(a) => init(a),
        Cmd::Forward(a) => forward(a),
        Cmd::Grad(a) => grad(a),
        Cmd::Train(a) => train_cmd(a),
        Cmd::Devices => devices(),
        Cmd::Gradcheck(a) => gradcheck(a),
        Cmd::Plot(a) => plot_runs(a),
        Cmd::Hessian(a) => crate::cli::measure::hessian_cmd(a),
        Cmd::Rsweep(a) => crate::cli::measure::rsweep_cmd(a),
        Cmd::Snr(a) => crate::cli::measure::snr_cmd(a),
        Cmd::Sweep(a) => sweep_cmd(a),
        Cmd::Bench(a) => fftlearn::experiments::bench::measure(&a.request(), &mut out::Stdout).map(drop),
        Cmd::Inspect(a) => {
            // the first Ctrl-C stops it between its sections and escape steps
            fftlearn::interrupt::install();
            fftlearn::analysis::inspect::run(&a.request()?, &mut out::Stdout)
        }
        Cmd::Claims(a) => {
            fftlearn::experiments::claims::run(&a.out, (!a.no_readme).then_some(a.readme.as_path()), &mut out::Stdout)
        }
    }
}

fn sweep_cmd(a: args::SweepArgs) -> Result<()> {
    use fftlearn::experiments::{shard, sweep};
    if let Some(args::SweepAction::Merge { out, partial }) = &a.action {
        return shard::merge(out, *partial, &mut out::Stdout);
    }
    let config = a
        .config
        .as_deref()
        .ok_or_else(|| Error::input("sweep: give --config GRID.toml (or `fftlearn sweep merge OUT`)"))?;
    let ov = sweep::Overrides {
        out: a.out.clone(),
        save_params: a.save_params,
        pack: a.pack,
    };
    fftlearn::interrupt::install();
    // an explicit --shard wins over the scheduler's environment, which is then not read
    let chosen = match a.shard {
        Some(s) => match a.shards {
            Some(n) if n != s.count => {
                return Err(Error::input(format!(
                    "--shards {n} disagrees with --shard {s} (a count of {}); give one of them",
                    s.count
                )))
            }
            _ => Some((s, "--shard".to_string())),
        },
        None => shard::from_env(&|k| std::env::var(k).ok(), a.shards)?,
    };
    match chosen {
        Some((s, source)) => {
            say!("[sweep] shard {s} (from {source})");
            shard::run(config, &ov, s, &mut out::Stdout)
        }
        None if a.shards.is_some() => Err(Error::input(
            "--shards without a shard index: give --shard I/N, or run as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)",
        )),
        None => sweep::run(config, &ov, &mut out::Stdout),
    }
}

fn plot_runs(a: PlotArgs) -> Result<()> {
    use fftlearn::io::plot::{charts, Chart, Series};
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
    say!("wrote {}", a.out.display());
    Ok(())
}

fn init(a: InitArgs) -> Result<()> {
    let net = Network::new(a.n)?;
    let scheme = &a.scheme;
    let p = Params::init(&net, scheme, a.seed);
    p.save(&a.out)?;
    say!(
        "wrote {} (N = {}, scheme {scheme}, {} complex parameters)",
        a.out.display(),
        net.n(),
        p.len()
    );
    Ok(())
}

fn load_inputs(p: &Params, path: &Path) -> Result<Vec<f64>> {
    let (shape, x) = npy::read_npy_f64(path, &[None, Some(p.net.n())]).map_err(|e| {
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
    let y = cpu::forward_finite(&p, &x)
        .map_err(|e| Error::runtime(format!("{e} (parameters {}); nothing written", a.params.display())))?;
    npy::write_npy(&a.out, Out::C128(&[b, p.net.bins()], &y))?;
    say!("wrote {} ({b} x {} complex128)", a.out.display(), p.net.bins());
    Ok(())
}

fn grad(a: GradArgs) -> Result<()> {
    let p = Params::load(&a.params)?;
    let x = load_inputs(&p, &a.input)?;
    let b = x.len() / p.net.n();
    let target = match &a.target {
        Some(t) => {
            let (_, t) = npy::read_npy_c128(t, &[Some(b), Some(p.net.bins())]).map_err(|e| {
                e.context(format!(
                    "--target (expected complex128 of shape ({b}, {}))",
                    p.net.bins()
                ))
            })?;
            if !t.iter().all(|z| z.is_finite()) {
                return Err(Error::input(format!(
                    "--target {}: contains NaN or infinity",
                    path_of(&a.target)
                )));
            }
            Some(t)
        }
        None => None,
    };
    let g = cpu::loss_grad_finite(
        &p,
        &Batch::Given {
            x: &x,
            target: target.as_deref(),
        },
    )
    .map_err(|e| Error::runtime(format!("{e}; nothing written")))?;
    npy::write_npz(
        &a.out,
        &[
            ("loss", Out::Scalar(g.loss)),
            ("M", Out::C128(&[2, 2], &g.m)),
            ("twiddles", Out::C128(&[g.tw.len()], &g.tw)),
        ],
    )?;
    say!("wrote {} (loss {:.6e}, batch {b})", a.out.display(), g.loss);
    Ok(())
}

/// `fftlearn train`: the library's job ([`train::Job`]) for these flags.
fn train_cmd(a: TrainArgs) -> Result<()> {
    let job = train::Job::open(a.request(), &mut out::Stdout)?;
    fftlearn::interrupt::install();
    job.run(&mut out::Stdout)?;
    Ok(())
}

fn devices() -> Result<()> {
    let lines = context::report()?;
    if let Some(p) = gpu::profile::Profile::from_env()? {
        say!("[profile] {}={}: {}", gpu::profile::ENV, p.name, p.about);
        for a in context::adapters() {
            let (_, _, capped) = p.apply(&a.limits(), a.features());
            if !capped.is_empty() {
                say!(
                    "[profile] {}: above this adapter, left at the adapter's: {}",
                    a.get_info().name,
                    capped.join("; ")
                );
            }
        }
    }
    if lines.is_empty() {
        say!("no GPU adapter on Vulkan/Metal/DX12: install a Vulkan driver (the GPU vendor's, or Mesa's software lavapipe: on Debian/Ubuntu apt-get install mesa-vulkan-drivers libvulkan1)");
    }
    let net = Network::seed();
    for (l, a) in lines.iter().zip(context::adapters()) {
        say!("{l}");
        for prec in [Precision::F32, Precision::F64] {
            say!(
                "    --kernel auto at N = {}: {}",
                net.n(),
                fftlearn::backend::gpu::model::auto_summary(&a, &net, prec)?
            );
        }
    }
    Ok(())
}

fn gradcheck(a: GradcheckArgs) -> Result<()> {
    gpu::gradcheck::check_batch(a.batch)?;
    let p = crate::cli::request::point_of(a.params.as_deref(), a.n, &a.init, a.seed)?.params()?;
    let (prec, r) = if a.gpu.adapters.is_empty() {
        let m = open_model(&a.gpu, &p, true)?;
        (m.precision(), gpu::gradcheck::run(&m, &p, a.batch, a.seed)?)
    } else {
        let m = open_adapters(&a.gpu, &a.gpu.choice(), Device::Gpu, &p)?;
        say!("[device] {}", m.assignment(a.batch));
        let r = gpu::gradcheck::run_with(&|x, t| m.loss_grad_host(x, t), &p, a.batch, a.seed)?;
        (m.precision(), r)
    };
    let (tol_loss, tol_grad) = gpu::gradcheck::tolerances(prec);
    say!(
        "gradcheck: N = {}, batch {}, precision {}, inputs and targets rounded to f32 on both paths",
        p.net.n(),
        a.batch,
        prec.wgsl()
    );
    say!(
        "loss: cpu {:.12e} gpu {:.12e} rel err {:.3e} scaled err {:.3e}",
        r.loss_cpu,
        r.loss_gpu,
        r.loss_rel,
        r.loss_scaled
    );
    for l in r.table().console() {
        say!("{l}");
    }
    say!("(scaled = error / max(|cpu value|, value with zero targets): the f32 scale; equals the relative error unless the residual is ~0, as at the exact FFT)");
    let ok = r.passed(prec);
    say!(
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
