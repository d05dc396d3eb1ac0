//! The training loop: steps a backend, logs the seed's lines and metrics.csv, evaluates the
//! relative operator error, shows progress, and writes the final parameters.

use crate::checkpoint::{self, Checkpoint};
use crate::cpu;
use crate::data::Batch;
use crate::error::{Context, Error, Result};
use crate::gpu::{GpuBatch, GpuModel};
use crate::network::Network;
use crate::optim::{Adam, AdamState, OptState, Schedule, Update};
use crate::params::{exact_twiddles, Params, EXACT_M};
use crate::rng::Stream;
use crate::solvers::{self, Lm, Problem};
use num_complex::Complex64 as C64;
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
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: u32,
    /// Where it runs: `cpu-f64`, `gpu-f32` or `gpu-f64` (fixed by the first run of a resume chain).
    pub backend: String,
    /// The optimizer: adam, sgd, phase, phase-sgd, dgn, lm, als.
    pub optimizer: String,
    /// SGD momentum (sgd, phase-sgd).
    pub momentum: f64,
    /// Learning-rate schedule: constant, cosine, step:EVERY:GAMMA.
    pub schedule: String,
    /// Data per step: `minibatch` (B Gaussian samples) or `population` (the exact expected loss,
    /// from the N identity vectors).
    pub data: String,
}

/// The config keys, in the order written; every one must be present when read back.
const KEYS: [&str; 15] = [
    "n",
    "steps",
    "batch",
    "lr",
    "seed",
    "init",
    "print_every",
    "max_loss_ratio",
    "checkpoint_every",
    "backend",
    "optimizer",
    "out",
    "momentum",
    "schedule",
    "data",
];

/// Keys added after format 1's first release: read with these defaults when absent.
const OPTIONAL: [(&str, &str); 3] = [("momentum", "0e0"), ("schedule", "constant"), ("data", "minibatch")];

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
        if self.checkpoint_every == 0 {
            return Err(Error::input("--checkpoint-every 0: must be at least 1"));
        }
        if !["cpu-f64", "gpu-f32", "gpu-f64"].contains(&self.backend.as_str()) {
            return Err(Error::input(format!(
                "backend '{}': expected cpu-f64, gpu-f32 or gpu-f64",
                self.backend
            )));
        }
        crate::optim::check_optimizer(&self.optimizer)?;
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(Error::input(format!("--momentum {}: must be in [0, 1)", self.momentum)));
        }
        if self.momentum != 0.0 && !["sgd", "phase-sgd"].contains(&self.optimizer.as_str()) {
            return Err(Error::input(format!(
                "--momentum {} applies to sgd and phase-sgd only, not to '{}'",
                self.momentum, self.optimizer
            )));
        }
        self.schedule.parse::<crate::optim::Schedule>()?;
        if !["minibatch", "population"].contains(&self.data.as_str()) {
            return Err(Error::input(format!(
                "--data '{}': expected minibatch or population",
                self.data
            )));
        }
        if self.backend != "cpu-f64" && !crate::optim::GPU_OPTIMIZERS.contains(&self.optimizer.as_str()) {
            return Err(Error::input(format!(
                "optimizer '{}' runs on the CPU f64 path only (use --device cpu); on the GPU: {}",
                self.optimizer,
                crate::optim::GPU_OPTIMIZERS.join(", ")
            )));
        }
        if self.optimizer == "als" && self.data == "population" && self.n > crate::solvers::ALS_POPULATION_MAX_N {
            return Err(Error::input(format!(
                "optimizer als with --data population at N = {}: offered up to N = {} (its buffers hold ~1.5 N^2 complex values); use --data minibatch",
                self.n,
                crate::solvers::ALS_POPULATION_MAX_N
            )));
        }
        if self.optimizer == "lm" {
            if self.data != "population" {
                return Err(Error::input(format!(
                    "optimizer lm fits the population loss: use --data population (got '{}')",
                    self.data
                )));
            }
            if self.n > crate::solvers::LM_MAX_N {
                return Err(Error::input(format!(
                    "optimizer lm at N = {}: the dense Gauss-Newton matrix is offered up to N = {}",
                    self.n,
                    crate::solvers::LM_MAX_N
                )));
            }
        }
        Ok(net)
    }

    /// The default checkpoint interval: every 10% of the run.
    pub fn default_checkpoint_every(steps: u32) -> u32 {
        (steps / 10).max(1)
    }

    /// `key = value` lines, one per field (the checkpoint's `config` array).
    pub fn to_text(&self) -> String {
        let vals = [
            self.n.to_string(),
            self.steps.to_string(),
            self.batch.to_string(),
            format!("{:e}", self.lr),
            self.seed.to_string(),
            self.init.clone(),
            self.print_every.to_string(),
            format!("{:e}", self.max_loss_ratio),
            self.checkpoint_every.to_string(),
            self.backend.clone(),
            self.optimizer.clone(),
            self.out.display().to_string(),
            format!("{:e}", self.momentum),
            self.schedule.clone(),
            self.data.clone(),
        ];
        let mut t = format!("format = {}\n", checkpoint::FORMAT);
        for (k, v) in KEYS.iter().zip(vals) {
            t.push_str(&format!("{k} = {v}\n"));
        }
        t
    }

    /// Parse [`TrainConfig::to_text`] output; unknown, repeated or missing keys are errors.
    pub fn from_text(text: &str) -> Result<Self> {
        let mut vals: Vec<Option<&str>> = vec![None; KEYS.len()];
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line
                .split_once(" = ")
                .ok_or_else(|| Error::input(format!("config line '{line}': expected 'key = value'")))?;
            if k == "format" {
                continue;
            }
            let i = KEYS
                .iter()
                .position(|&x| x == k)
                .ok_or_else(|| Error::input(format!("config key '{k}' is unknown (known: {})", KEYS.join(", "))))?;
            if vals[i].replace(v).is_some() {
                return Err(Error::input(format!("config key '{k}' appears twice")));
            }
        }
        let get = |i: usize| {
            vals[i]
                .or_else(|| OPTIONAL.iter().find(|(k, _)| *k == KEYS[i]).map(|(_, d)| *d))
                .ok_or_else(|| Error::input(format!("config key '{}' is missing", KEYS[i])))
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T> {
            v.parse()
                .map_err(|_| Error::input(format!("config {k} = '{v}' is not a valid number")))
        }
        let cfg = TrainConfig {
            n: num(KEYS[0], get(0)?)?,
            steps: num(KEYS[1], get(1)?)?,
            batch: num(KEYS[2], get(2)?)?,
            lr: num(KEYS[3], get(3)?)?,
            seed: num(KEYS[4], get(4)?)?,
            init: get(5)?.to_string(),
            print_every: num(KEYS[6], get(6)?)?,
            max_loss_ratio: num(KEYS[7], get(7)?)?,
            checkpoint_every: num(KEYS[8], get(8)?)?,
            backend: get(9)?.to_string(),
            optimizer: get(10)?.to_string(),
            out: PathBuf::from(get(11)?),
            momentum: num(KEYS[12], get(12)?)?,
            schedule: get(13)?.to_string(),
            data: get(14)?.to_string(),
        };
        cfg.validate().context("config")?;
        Ok(cfg)
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
    /// `cpu-f64`, `gpu-f32` or `gpu-f64`: what a resume must run on.
    fn kind(&self) -> String;
    /// One step at generator position `step`; returns the minibatch loss before the update.
    fn step(&mut self, step: u32) -> Result<f64>;
    /// Current parameters (read back to the host if needed).
    fn params(&mut self) -> Result<Params>;
    /// Whether the parameters are all finite, where that is cheap to know (else `true`: a
    /// non-finite parameter then shows as a non-finite loss at the next step).
    fn params_finite(&self) -> bool;
    /// The optimizer state, for a checkpoint.
    fn state(&mut self) -> Result<OptState>;
    /// Continue from a checkpoint's parameters and optimizer state.
    fn restore(&mut self, p: &Params, s: &OptState) -> Result<()>;
}

fn adam_state(s: &OptState, len: usize) -> Result<AdamState> {
    let get = |name: &str| {
        s.slot(name)
            .filter(|v| v.len() == len)
            .map(|v| v.to_vec())
            .ok_or_else(|| Error::input(format!("optimizer state has no Adam slot '{name}' of {len} values")))
    };
    Ok(AdamState {
        step: s.step,
        m: get("m")?,
        v: get("v")?,
    })
}

/// How a CPU step changes the parameters.
enum Method {
    /// A gradient update (adam, sgd, phase, phase-sgd, dgn).
    Grad(Update),
    /// One ALS sweep.
    Als {
        /// Sweeps taken.
        step: u64,
    },
    /// One Levenberg-Marquardt step.
    Lm(Lm, u64),
}

/// The population problem and the identity batch, built on first use.
struct Population {
    problem: Option<Problem>,
}

impl Population {
    fn get(&mut self, net: &Network) -> &Problem {
        self.problem.get_or_insert_with(|| Problem::population(net))
    }
}

/// The identity batch's loss and gradient scaled to the population loss E_x (1/K) |(W - F) x|^2
/// (N times the identity batch's).
fn to_population(mut g: cpu::Grad, n: usize) -> cpu::Grad {
    let n = n as f64;
    g.loss *= n;
    for z in g.m.iter_mut().chain(g.tw.iter_mut()) {
        *z *= n;
    }
    g
}

/// Loss and gradient of the population loss on the CPU.
fn population_grad(p: &Params) -> cpu::Grad {
    to_population(cpu::loss_grad(p, &Batch::Identity), p.net.n())
}

/// The CPU f64 backend: every optimizer, minibatch or population data, any schedule.
pub struct CpuBackend {
    p: Params,
    method: Method,
    lr: f64,
    schedule: Schedule,
    total: u32,
    batch: usize,
    seed: u64,
    population_data: bool,
    pop: Population,
}

impl CpuBackend {
    /// Adam at a constant `lr` on Gaussian minibatches (the seed's setting), starting at `p`.
    pub fn new(p: Params, lr: f64, batch: usize, seed: u64) -> Self {
        let len = p.len();
        CpuBackend {
            p,
            method: Method::Grad(Update::Adam(AdamState::new(len))),
            lr,
            schedule: Schedule::Constant,
            total: 1,
            batch,
            seed,
            population_data: false,
            pop: Population { problem: None },
        }
    }

    /// The backend a (validated) config asks for, starting at `p`.
    pub fn from_config(p: Params, cfg: &TrainConfig) -> Result<Self> {
        let method = match cfg.optimizer.as_str() {
            "als" => Method::Als { step: 0 },
            "lm" => Method::Lm(Lm::new(), 0),
            o => Method::Grad(Update::new(o, p.len(), cfg.momentum)?),
        };
        let mut b = CpuBackend::new(p, cfg.lr, cfg.batch, cfg.seed);
        b.method = method;
        b.schedule = cfg.schedule.parse()?;
        b.total = cfg.steps;
        b.population_data = cfg.data == "population";
        Ok(b)
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        format!("cpu f64 ({} threads)", rayon::current_num_threads())
    }
    fn kind(&self) -> String {
        "cpu-f64".into()
    }
    fn step(&mut self, step: u32) -> Result<f64> {
        let batch = Batch::Gaussian {
            seed: self.seed,
            stream: Stream::Data,
            step,
            size: self.batch,
        };
        match &mut self.method {
            Method::Grad(upd) => {
                let g = if self.population_data {
                    population_grad(&self.p)
                } else {
                    cpu::loss_grad(&self.p, &batch)
                };
                let diag = upd
                    .needs_curvature()
                    .then(|| solvers::gn_diagonal(&self.p, self.pop.get(&self.p.net)));
                let lr = self.schedule.lr(self.lr, step, self.total);
                upd.apply(&mut self.p, &g, lr, diag.as_deref());
                Ok(g.loss)
            }
            Method::Als { step: t } => {
                *t += 1;
                if self.population_data {
                    let net = self.p.net.clone();
                    Ok(solvers::als_sweep(&mut self.p, self.pop.get(&net)))
                } else {
                    let prob = Problem::from_batch(&self.p.net, &batch);
                    Ok(solvers::als_sweep(&mut self.p, &prob))
                }
            }
            Method::Lm(lm, t) => {
                *t += 1;
                lm.step(&mut self.p)
            }
        }
    }
    fn params(&mut self) -> Result<Params> {
        Ok(self.p.clone())
    }
    fn params_finite(&self) -> bool {
        self.p.is_finite()
    }
    fn state(&mut self) -> Result<OptState> {
        Ok(match &self.method {
            Method::Grad(u) => u.state(),
            Method::Als { step } => OptState {
                step: *step,
                slots: Vec::new(),
            },
            Method::Lm(lm, step) => OptState {
                step: *step,
                slots: vec![("lambda".into(), vec![C64::new(lm.lambda, 0.0)])],
            },
        })
    }
    fn restore(&mut self, p: &Params, s: &OptState) -> Result<()> {
        match &mut self.method {
            Method::Grad(u) => u.restore(s)?,
            Method::Als { step } => *step = s.step,
            Method::Lm(lm, step) => {
                let l = s
                    .slot("lambda")
                    .and_then(|v| v.first())
                    .ok_or_else(|| Error::input("optimizer state has no slot 'lambda' (LM damping)"))?;
                lm.lambda = l.re;
                *step = s.step;
            }
        }
        self.p = p.clone();
        Ok(())
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
    schedule: Schedule,
    total: u32,
}

impl GpuBackend {
    /// A backend on an uploaded model (constant learning rate).
    pub fn new(model: GpuModel, lr: f64, batch: usize, seed: u64) -> Self {
        GpuBackend {
            model,
            adam: Adam::new(lr),
            t: 0,
            batch,
            seed,
            schedule: Schedule::Constant,
            total: 1,
        }
    }
}

/// The GPU backend a (validated) config asks for: Adam on minibatches runs entirely on the
/// device; every other GPU optimizer (and population data) takes the gradient from the device
/// and updates f64 master parameters on the host, uploading them after each step.
pub fn gpu_backend(model: GpuModel, p: Params, cfg: &TrainConfig) -> Result<Box<dyn Backend>> {
    let schedule: Schedule = cfg.schedule.parse()?;
    if cfg.optimizer == "adam" && cfg.data == "minibatch" {
        let mut b = GpuBackend::new(model, cfg.lr, cfg.batch, cfg.seed);
        b.schedule = schedule;
        b.total = cfg.steps;
        return Ok(Box::new(b));
    }
    Ok(Box::new(GpuHostBackend {
        model,
        upd: Update::new(&cfg.optimizer, p.len(), cfg.momentum)?,
        p,
        lr: cfg.lr,
        schedule,
        total: cfg.steps,
        batch: cfg.batch,
        seed: cfg.seed,
        population_data: cfg.data == "population",
        pop: Population { problem: None },
    }))
}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        format!("gpu {} {}", self.model.precision().wgsl(), self.model.gpu().name())
    }
    fn kind(&self) -> String {
        format!("gpu-{}", self.model.precision().wgsl())
    }
    fn step(&mut self, step: u32) -> Result<f64> {
        self.t += 1;
        let b = GpuBatch::Gaussian {
            seed: self.seed,
            stream: Stream::Data,
            step,
            size: self.batch,
        };
        let adam = Adam::new(self.schedule.lr(self.adam.lr, step, self.total));
        self.model.adam_step(&b, &adam, self.t)
    }
    fn params(&mut self) -> Result<Params> {
        self.model.params()
    }
    fn params_finite(&self) -> bool {
        true
    }
    fn state(&mut self) -> Result<OptState> {
        let (m, v) = self.model.moments()?;
        Ok(OptState::from(&AdamState { step: self.t, m, v }))
    }
    fn restore(&mut self, p: &Params, s: &OptState) -> Result<()> {
        let st = adam_state(s, p.len())?;
        self.model.set_params(p);
        self.model.set_moments(&st.m, &st.v);
        self.t = st.step;
        Ok(())
    }
}

/// Gradient on the GPU, update on the host (see [`gpu_backend`]).
pub struct GpuHostBackend {
    model: GpuModel,
    p: Params,
    upd: Update,
    lr: f64,
    schedule: Schedule,
    total: u32,
    batch: usize,
    seed: u64,
    population_data: bool,
    /// The population problem (identity inputs, exact targets): population data and dgn's curvature.
    pop: Population,
}

impl Backend for GpuHostBackend {
    fn describe(&self) -> String {
        format!(
            "gpu {} {} (gradient on the device, {} update on the host in f64)",
            self.model.precision().wgsl(),
            self.model.gpu().name(),
            match self.upd {
                Update::Adam(_) => "adam",
                Update::Sgd { .. } => "sgd",
                Update::PhaseAdam(_) => "phase",
                Update::PhaseSgd { .. } => "phase-sgd",
                Update::Dgn { .. } => "dgn",
            }
        )
    }
    fn kind(&self) -> String {
        format!("gpu-{}", self.model.precision().wgsl())
    }
    fn step(&mut self, step: u32) -> Result<f64> {
        let net = self.p.net.clone();
        let mut g = if self.population_data {
            let (x, t) = self.pop.get(&net).data();
            to_population(self.model.loss_grad(&GpuBatch::Host { x, target: Some(t) })?, net.n())
        } else {
            self.model.loss_grad(&GpuBatch::Gaussian {
                seed: self.seed,
                stream: Stream::Data,
                step,
                size: self.batch,
            })?
        };
        if !g.loss.is_finite() {
            g.loss = f64::NAN;
            return Ok(g.loss);
        }
        let diag = self
            .upd
            .needs_curvature()
            .then(|| solvers::gn_diagonal(&self.p, self.pop.get(&net)));
        let lr = self.schedule.lr(self.lr, step, self.total);
        self.upd.apply(&mut self.p, &g, lr, diag.as_deref());
        self.model.set_params(&self.p);
        Ok(g.loss)
    }
    fn params(&mut self) -> Result<Params> {
        Ok(self.p.clone())
    }
    fn params_finite(&self) -> bool {
        self.p.is_finite()
    }
    fn state(&mut self) -> Result<OptState> {
        Ok(self.upd.state())
    }
    fn restore(&mut self, p: &Params, s: &OptState) -> Result<()> {
        self.upd.restore(s)?;
        self.p = p.clone();
        self.model.set_params(p);
        Ok(())
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

/// Max |tw - exact| over the used twiddles and max `|M - [[1,1],[1,-1]]|` (no gauge fixing).
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

fn csv_of(metrics: &[Metric]) -> String {
    let mut csv = String::from("step,loss,eval_mse,rel_op_err\n");
    for m in metrics {
        csv.push_str(&format!("{},{:e},{:e},{:e}\n", m.step, m.loss, m.eval, m.rel_op_err));
    }
    csv
}

/// Read a metrics.csv written by [`run`], naming the file and line of anything malformed.
pub fn read_metrics(path: &std::path::Path) -> Result<Vec<Metric>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    if head != "step,loss,eval_mse,rel_op_err" {
        return Err(Error::input(format!(
            "{}: header '{head}' is not fftlearn's metrics.csv header 'step,loss,eval_mse,rel_op_err'",
            path.display()
        )));
    }
    lines
        .enumerate()
        .map(|(i, l)| {
            let bad = || {
                Error::input(format!(
                    "{} line {}: '{l}' is not 'step,loss,eval_mse,rel_op_err'",
                    path.display(),
                    i + 2
                ))
            };
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != 4 {
                return Err(bad());
            }
            Ok(Metric {
                step: f[0].parse().map_err(|_| bad())?,
                loss: f[1].parse().map_err(|_| bad())?,
                eval: f[2].parse().map_err(|_| bad())?,
                rel_op_err: f[3].parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// Where the run's last checkpoint stands, for error messages.
fn last_good(ck: Option<u32>, dir: &std::path::Path) -> String {
    match ck {
        Some(s) => format!(
            "last good checkpoint: {} at step {s} (continue with `fftlearn train --resume {}`)",
            checkpoint::path_in(dir).display(),
            dir.display()
        ),
        None => "no checkpoint was written before it".to_string(),
    }
}

/// Run training on `backend` from step 1, or from `resume` (whose state is loaded into
/// `backend` here), writing `out/metrics.csv`, `out/checkpoint.npz` every
/// `cfg.checkpoint_every` steps and at the end, and `out/params.npz`.
pub fn run(
    cfg: &TrainConfig,
    backend: &mut dyn Backend,
    resume: Option<Checkpoint>,
    log: &mut dyn Write,
) -> Result<Summary> {
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| Error::input(format!("cannot create output directory {}: {e}", cfg.out.display())))?;
    let (start, mut metrics, mut first_loss) = match resume {
        Some(ck) => {
            backend.restore(&ck.params, &ck.opt)?;
            (ck.step, ck.metrics, Some(ck.first_loss))
        }
        None => (0, Vec::new(), None),
    };
    let mut last_ck = (start > 0).then_some(start);
    writeln!(
        log,
        "[info] fftlearn train: N = {}, steps {}, batch {}, lr {:e}, seed {}, init {}, backend {}{}",
        cfg.n,
        cfg.steps,
        cfg.batch,
        cfg.lr,
        cfg.seed,
        cfg.init,
        backend.describe(),
        if start > 0 {
            format!(", resumed at step {start}")
        } else {
            String::new()
        }
    )?;
    let tty = std::io::stdout().is_terminal();
    let bar = if tty {
        let pb = indicatif::ProgressBar::new(cfg.steps as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps {per_sec} eta {eta} {msg}")
                .expect("valid template"),
        );
        pb.set_position(start as u64);
        Some(pb)
    } else {
        None
    };
    let ck_path = checkpoint::path_in(&cfg.out);
    let csv_path = cfg.out.join("metrics.csv");
    let t0 = Instant::now();
    for step in start + 1..=cfg.steps {
        let loss = backend.step(step)?;
        let first = *first_loss.get_or_insert(loss);
        let finite = backend.params_finite();
        if !loss.is_finite() || loss > cfg.max_loss_ratio * first || !finite {
            if let Some(pb) = &bar {
                pb.abandon();
            }
            crate::npyio::write_text(&csv_path, &csv_of(&metrics))?;
            let why = if !loss.is_finite() {
                format!("loss is {loss}")
            } else if !finite {
                "a parameter is not finite after the update".to_string()
            } else {
                format!(
                    "loss {loss:.3e} exceeds {:e} x the step-1 loss {first:.3e} (--max-loss-ratio)",
                    cfg.max_loss_ratio
                )
            };
            return Err(Error::diverged(format!(
                "training diverged at step {step}: {why} (lr {:e}); metrics up to step {} are in {}; {}",
                cfg.lr,
                metrics.last().map_or(0, |m: &Metric| m.step),
                csv_path.display(),
                last_good(last_ck, &cfg.out)
            )));
        }
        if step % cfg.print_every == 0 || step == 1 {
            let p = backend.params()?;
            let eval = eval_random(&p, cfg.seed, step, 3);
            let rel = cpu::rel_operator_error(&p);
            let line = format!(
                "step {step:5} | loss {loss:.6e}\n[eval] mean MSE over 3 random examples: {eval:.6e} | rel op err {rel:.4e}"
            );
            match &bar {
                Some(pb) => pb.println(line),
                None => writeln!(log, "{line}")?,
            }
            metrics.push(Metric {
                step,
                loss,
                eval,
                rel_op_err: rel,
            });
        }
        if let Some(pb) = &bar {
            pb.set_position(step as u64);
        }
        let stop = crate::interrupt::requested();
        if step % cfg.checkpoint_every == 0 || step == cfg.steps || stop {
            let ck = Checkpoint {
                config: cfg.clone(),
                step,
                params: backend.params()?,
                opt: backend.state()?,
                first_loss: first,
                metrics: metrics.clone(),
            };
            if !ck.params.is_finite() {
                return Err(Error::diverged(format!(
                    "training diverged at step {step}: a parameter is not finite; {}",
                    last_good(last_ck, &cfg.out)
                )));
            }
            crate::npyio::write_text(&csv_path, &csv_of(&metrics))?;
            ck.save(&ck_path)?;
            last_ck = Some(step);
        }
        if stop && step < cfg.steps {
            if let Some(pb) = &bar {
                pb.abandon();
            }
            return Err(Error::interrupted(format!(
                "interrupted at step {step} of {}: checkpoint written to {}; continue with `fftlearn train --resume {}`",
                cfg.steps,
                ck_path.display(),
                cfg.out.display()
            )));
        }
    }
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let seconds = t0.elapsed().as_secs_f64();
    let p = backend.params()?;
    let final_eval = eval_random(&p, cfg.seed, u32::MAX, 10);
    let rel = cpu::rel_operator_error(&p);
    p.save(&cfg.out.join("params.npz"))?;
    let (dt, dm) = distance_from_exact(&p);
    writeln!(log, "[eval] mean MSE over 10 random examples: {final_eval:.6e}")?;
    let done = cfg.steps - start;
    writeln!(
        log,
        "[summary] {done} steps x {} samples in {seconds:.2} s ({:.0} samples/s); final loss {:.6e}; relative operator error {rel:.6e}",
        cfg.batch,
        done as f64 * cfg.batch as f64 / seconds,
        metrics.last().map_or(f64::NAN, |m: &Metric| m.loss),
    )?;
    writeln!(
        log,
        "[summary] max |tw - exact| = {dt:.3e} (used twiddles), max |M - [[1,1],[1,-1]]| = {dm:.3e}"
    )?;
    writeln!(
        log,
        "[summary] wrote {}, {} and {}",
        csv_path.display(),
        ck_path.display(),
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
