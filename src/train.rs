//! The training loop: steps a backend, logs the seed's lines and metrics.csv, evaluates the
//! relative operator error, shows progress, and writes the final parameters.

use crate::cpu;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::{GpuBatch, GpuModel};
use crate::network::Network;
use crate::optim::{Adam, AdamState};
use crate::params::{exact_twiddles, Params, EXACT_M};
use crate::rng::Stream;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Everything that defines a training run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Transform size.
    pub n: usize,
    /// Steps.
    pub steps: u32,
    /// Samples per step.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Data seed (and the seed of random inits).
    pub seed: u64,
    /// Initial parameters: a scheme name or an .npz path.
    pub init: String,
    /// Print (and evaluate) every this many steps, and at step 1.
    pub print_every: u32,
    /// Output directory.
    pub out: PathBuf,
    /// Divergence: a loss above this multiple of the step-1 loss stops the run.
    pub max_loss_ratio: f64,
}

impl TrainConfig {
    /// Check every field, naming the bad value and what is accepted.
    pub fn validate(&self) -> Result<Network> {
        let net = Network::new(self.n)?;
        if self.batch == 0 {
            return Err(Error::input("--batch 0: the batch must be at least 1"));
        }
        if self.batch > 1 << 32 {
            return Err(Error::input(format!(
                "--batch {}: at most 2^32 samples per step",
                self.batch
            )));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::input(format!(
                "--lr {}: the learning rate must be finite and > 0",
                self.lr
            )));
        }
        if self.steps == 0 {
            return Err(Error::input("--steps 0: at least 1 step"));
        }
        if self.max_loss_ratio.is_nan() || self.max_loss_ratio <= 1.0 {
            return Err(Error::input(format!(
                "--max-loss-ratio {}: must be > 1 (inf disables it)",
                self.max_loss_ratio
            )));
        }
        if self.print_every == 0 {
            return Err(Error::input("--print-every 0: must be at least 1"));
        }
        Ok(net)
    }
}

/// One row of metrics.csv.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Step.
    pub step: u32,
    /// Training minibatch loss at this step (before the update).
    pub loss: f64,
    /// The seed's eval: mean per-example loss over fresh random examples.
    pub eval: f64,
    /// ||W-F||_F / ||F||_F after the update.
    pub rel_op_err: f64,
}

/// A training backend: owns parameters and optimizer state, takes steps.
pub trait Backend {
    /// Description of where it runs (for the log).
    fn describe(&self) -> String;
    /// One step at generator position `step`; returns the minibatch loss before the update.
    fn step(&mut self, step: u32) -> Result<f64>;
    /// Current parameters (read back to the host if needed).
    fn params(&mut self) -> Result<Params>;
}

/// The CPU f64 backend with Adam.
pub struct CpuBackend {
    p: Params,
    adam: Adam,
    state: AdamState,
    batch: usize,
    seed: u64,
}

impl CpuBackend {
    /// A backend starting at `p`.
    pub fn new(p: Params, lr: f64, batch: usize, seed: u64) -> Self {
        let len = p.len();
        CpuBackend {
            p,
            adam: Adam::new(lr),
            state: AdamState::new(len),
            batch,
            seed,
        }
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        format!("cpu f64 ({} threads)", rayon::current_num_threads())
    }
    fn step(&mut self, step: u32) -> Result<f64> {
        let batch = Batch::Gaussian {
            seed: self.seed,
            stream: Stream::Data,
            step,
            size: self.batch,
        };
        let g = cpu::loss_grad(&self.p, &batch);
        let mut flat = self.p.flat();
        self.adam.step(&mut self.state, &mut flat, &g.flat());
        self.p.set_flat(&flat);
        Ok(g.loss)
    }
    fn params(&mut self) -> Result<Params> {
        Ok(self.p.clone())
    }
}

/// The GPU backend with Adam: data, targets, forward, backward, reduction and the update all
/// stay on the device; only the loss comes back each step.
pub struct GpuBackend {
    model: GpuModel,
    adam: Adam,
    t: u64,
    batch: usize,
    seed: u64,
}

impl GpuBackend {
    /// A backend on an uploaded model.
    pub fn new(model: GpuModel, lr: f64, batch: usize, seed: u64) -> Self {
        GpuBackend {
            model,
            adam: Adam::new(lr),
            t: 0,
            batch,
            seed,
        }
    }
}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        format!("gpu {} {}", self.model.precision().wgsl(), self.model.gpu().name())
    }
    fn step(&mut self, step: u32) -> Result<f64> {
        self.t += 1;
        let b = GpuBatch::Gaussian {
            seed: self.seed,
            stream: Stream::Data,
            step,
            size: self.batch,
        };
        self.model.adam_step(&b, &self.adam, self.t)
    }
    fn params(&mut self) -> Result<Params> {
        self.model.params()
    }
}

/// The seed's "eval on random examples": mean per-example loss over `count` fresh Gaussian
/// examples from the eval stream at position `step`.
pub fn eval_random(p: &Params, seed: u64, step: u32, count: usize) -> f64 {
    cpu::loss(
        p,
        &Batch::Gaussian {
            seed,
            stream: Stream::Eval,
            step,
            size: count,
        },
    )
}

/// Max |tw - exact| over the used twiddles and max |M - [[1,1],[1,-1]]| (no gauge fixing).
pub fn distance_from_exact(p: &Params) -> (f64, f64) {
    let ex = exact_twiddles(&p.net);
    let used = p.net.unused_twiddle();
    let dt = p.tw[..used]
        .iter()
        .zip(&ex[..used])
        .map(|(a, b)| (a - b).norm())
        .fold(0.0, f64::max);
    let dm =
        p.m.iter()
            .zip(&EXACT_M)
            .map(|(a, b)| (a - b).norm())
            .fold(0.0, f64::max);
    (dt, dm)
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The metric rows.
    pub metrics: Vec<Metric>,
    /// Final parameters.
    pub params: Params,
    /// Final relative operator error.
    pub rel_op_err: f64,
    /// Final 10-example eval.
    pub final_eval: f64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Run training on `backend` and write `out/metrics.csv` and `out/params.npz`.
pub fn run(cfg: &TrainConfig, backend: &mut dyn Backend, log: &mut dyn Write) -> Result<Summary> {
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| Error::input(format!("cannot create output directory {}: {e}", cfg.out.display())))?;
    writeln!(
        log,
        "[info] fftlearn train: N = {}, steps {}, batch {}, lr {:e}, seed {}, init {}, backend {}",
        cfg.n,
        cfg.steps,
        cfg.batch,
        cfg.lr,
        cfg.seed,
        cfg.init,
        backend.describe()
    )?;
    let tty = std::io::stdout().is_terminal();
    let bar = if tty {
        let pb = indicatif::ProgressBar::new(cfg.steps as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps {per_sec} eta {eta} {msg}")
                .expect("valid template"),
        );
        Some(pb)
    } else {
        None
    };
    let t0 = Instant::now();
    let mut metrics = Vec::new();
    let mut first_loss: Option<f64> = None;
    let mut csv = String::from("step,loss,eval_mse,rel_op_err\n");
    for step in 1..=cfg.steps {
        let loss = backend.step(step)?;
        let first = *first_loss.get_or_insert(loss);
        if !loss.is_finite() || loss > cfg.max_loss_ratio * first {
            if let Some(pb) = &bar {
                pb.abandon();
            }
            crate::npyio::write_atomic(&cfg.out.join("metrics.csv"), |f| f.write_all(csv.as_bytes()))?;
            let why = if loss.is_finite() {
                format!(
                    "loss {loss:.3e} exceeds {:e} x the step-1 loss {first:.3e} (--max-loss-ratio)",
                    cfg.max_loss_ratio
                )
            } else {
                format!("loss is {loss}")
            };
            return Err(Error::diverged(format!(
                "training diverged at step {step}: {why} (lr {:e}); metrics up to the last logged step are in {}",
                cfg.lr,
                cfg.out.join("metrics.csv").display()
            )));
        }
        if step % cfg.print_every == 0 || step == 1 {
            let p = backend.params()?;
            let eval = eval_random(&p, cfg.seed, step, 3);
            let rel = cpu::rel_operator_error(&p);
            let m = Metric {
                step,
                loss,
                eval,
                rel_op_err: rel,
            };
            let line = format!(
                "step {step:5} | loss {loss:.6e}\n[eval] mean MSE over 3 random examples: {eval:.6e} | rel op err {rel:.4e}"
            );
            match &bar {
                Some(pb) => pb.println(line),
                None => writeln!(log, "{line}")?,
            }
            csv.push_str(&format!("{},{:e},{:e},{:e}\n", m.step, m.loss, m.eval, m.rel_op_err));
            metrics.push(m);
        }
        if let Some(pb) = &bar {
            pb.set_position(step as u64);
        }
    }
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let seconds = t0.elapsed().as_secs_f64();
    let p = backend.params()?;
    let final_eval = eval_random(&p, cfg.seed, u32::MAX, 10);
    let rel = cpu::rel_operator_error(&p);
    crate::npyio::write_atomic(&cfg.out.join("metrics.csv"), |f| f.write_all(csv.as_bytes()))?;
    p.save(&cfg.out.join("params.npz"))?;
    let (dt, dm) = distance_from_exact(&p);
    writeln!(log, "[eval] mean MSE over 10 random examples: {final_eval:.6e}")?;
    writeln!(
        log,
        "[summary] {} steps x {} samples in {seconds:.2} s ({:.0} samples/s); final loss {:.6e}; relative operator error {rel:.6e}",
        cfg.steps,
        cfg.batch,
        cfg.steps as f64 * cfg.batch as f64 / seconds,
        metrics.last().map_or(f64::NAN, |m: &Metric| m.loss),
    )?;
    writeln!(
        log,
        "[summary] max |tw - exact| = {dt:.3e} (used twiddles), max |M - [[1,1],[1,-1]]| = {dm:.3e}"
    )?;
    writeln!(
        log,
        "[summary] wrote {} and {}",
        cfg.out.join("metrics.csv").display(),
        cfg.out.join("params.npz").display()
    )?;
    Ok(Summary {
        metrics,
        params: p,
        rel_op_err: rel,
        final_eval,
        seconds,
    })
}
