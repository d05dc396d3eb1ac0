//! The typed configuration of a training run ([`TrainConfig`], with the seed's settings as its
//! [`Default`]), its checks, and its text form (the `config` array of a checkpoint).

use crate::backend::gpu::{Kernel, Precision};
use crate::error::{Context, Error, Result};
use crate::model::network::Network;
use crate::model::params::Init;
use crate::optim::als::ALS_POPULATION_MAX_N;
use crate::optim::lm::LM_MAX_N;
use crate::optim::{Optimizer, Schedule};
use std::path::PathBuf;

/// The data a step consumes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DataMode {
    /// `batch` Gaussian samples per step (the seed's).
    #[default]
    Minibatch,
    /// The exact expected loss, from the N identity vectors.
    Population,
}

impl DataMode {
    /// Every data mode.
    pub const ALL: [DataMode; 2] = [DataMode::Minibatch, DataMode::Population];

    /// The name `--data` takes.
    pub fn name(self) -> &'static str {
        match self {
            DataMode::Minibatch => "minibatch",
            DataMode::Population => "population",
        }
    }
}

/// Where a run's steps run; fixed by the first run of a resume chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// The exact f64 CPU path.
    #[default]
    CpuF64,
    /// The GPU path in f32.
    GpuF32,
    /// The GPU path in f64.
    GpuF64,
}

impl BackendKind {
    /// Every backend kind.
    pub const ALL: [BackendKind; 3] = [BackendKind::CpuF64, BackendKind::GpuF32, BackendKind::GpuF64];

    /// Its name in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::CpuF64 => "cpu-f64",
            BackendKind::GpuF32 => "gpu-f32",
            BackendKind::GpuF64 => "gpu-f64",
        }
    }

    /// Whether it is the GPU path.
    pub fn is_gpu(self) -> bool {
        self != BackendKind::CpuF64
    }

    /// The GPU path at precision `p`.
    pub fn gpu(p: Precision) -> BackendKind {
        match p {
            Precision::F32 => BackendKind::GpuF32,
            Precision::F64 => BackendKind::GpuF64,
        }
    }

    /// The GPU precision a resume of this kind keeps (f32 unless it ran in f64).
    pub fn gpu_precision(self) -> Precision {
        match self {
            BackendKind::GpuF64 => Precision::F64,
            _ => Precision::F32,
        }
    }
}

/// Where a run's optimizer update runs, and the precision its state is kept in: recorded in
/// checkpoints, so a resume never switches it (the results of the two differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateSite {
    /// On the host in f64 (every optimizer on the CPU path; the GPU path's host updates,
    /// one adapter or several).
    HostF64,
    /// Adam on the device in f32.
    DeviceF32,
    /// Adam on the device in f64.
    DeviceF64,
}

impl UpdateSite {
    /// Every site.
    pub const ALL: [UpdateSite; 3] = [UpdateSite::HostF64, UpdateSite::DeviceF32, UpdateSite::DeviceF64];

    /// Its name in checkpoints and messages.
    pub fn name(self) -> &'static str {
        match self {
            UpdateSite::HostF64 => "host-f64",
            UpdateSite::DeviceF32 => "device-f32",
            UpdateSite::DeviceF64 => "device-f64",
        }
    }

    /// Adam on the device in precision `p`.
    pub fn device(p: Precision) -> UpdateSite {
        match p {
            Precision::F32 => UpdateSite::DeviceF32,
            Precision::F64 => UpdateSite::DeviceF64,
        }
    }
}

macro_rules! named {
    ($t:ty, $what:literal) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl std::str::FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                <$t>::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| {
                    let names: Vec<&str> = <$t>::ALL.iter().map(|x| x.name()).collect();
                    let (last, rest) = names.split_last().expect("a non-empty list");
                    Error::input(format!(
                        "{} '{s}' is unknown (accepted: {} or {last})",
                        $what,
                        rest.join(", ")
                    ))
                })
            }
        }
    };
}
named!(DataMode, "--data");
named!(BackendKind, "backend");
named!(UpdateSite, "update");

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Transform size.
    pub n: usize,
    /// Steps.
    pub steps: u32,
    /// Samples per step.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Data seed (and the seed of random inits).
    pub seed: u64,
    /// Initial parameters.
    pub init: Init,
    /// Print (and evaluate) every this many steps, at step 1 and at the last step (always
    /// logged: the summary reports it).
    pub print_every: u32,
    /// Output directory.
    pub out: PathBuf,
    /// Divergence: a loss above this multiple of the step-1 loss stops the run.
    pub max_loss_ratio: f64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: u32,
    /// Where it runs.
    pub backend: BackendKind,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// SGD momentum (sgd, phase-sgd).
    pub momentum: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Data per step.
    pub data: DataMode,
    /// Adam's beta2 (adam, phase): how long the second moments remember, about
    /// 1 / (1 - beta2) steps.
    pub beta2: f64,
    /// The GPU kernel shape asked for (None: `auto`, chosen per adapter). Kept by a resumed
    /// run, since the shape fixes the reduction order and so the bits.
    pub kernel: Option<Kernel>,
    /// Samples per GPU dispatch asked for (None: the shape's own). Kept by a resumed run for
    /// the same reason.
    pub chunk: Option<usize>,
}

impl Default for TrainConfig {
    /// The seed's run: N = 512, 3000 Adam steps at lr 1e-2 on batches of 16 from the all-ones
    /// init, printed every 10 steps.
    fn default() -> Self {
        TrainConfig {
            n: 512,
            steps: 3000,
            batch: 16,
            lr: 1e-2,
            seed: 42,
            init: Init::default(),
            print_every: 10,
            out: PathBuf::from("runs/train"),
            max_loss_ratio: 1e8,
            checkpoint_every: Self::default_checkpoint_every(3000),
            backend: BackendKind::CpuF64,
            optimizer: Optimizer::Adam,
            momentum: 0.0,
            schedule: Schedule::Constant,
            data: DataMode::Minibatch,
            beta2: crate::optim::BETA2,
            kernel: None,
            chunk: None,
        }
    }
}

/// The config keys, in the order written; every one must be present when read back.
const KEYS: [&str; 18] = [
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
    "beta2",
    "kernel",
    "chunk",
];

/// Keys added after format 1's first release: read with these defaults when absent.
const OPTIONAL: [(&str, &str); 6] = [
    ("momentum", "0e0"),
    ("schedule", "constant"),
    ("data", "minibatch"),
    ("beta2", "9.99e-1"),
    ("kernel", "auto"),
    ("chunk", "default"),
];

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
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(Error::input(format!("--momentum {}: must be in [0, 1)", self.momentum)));
        }
        if self.momentum != 0.0 && !self.optimizer.takes_momentum() {
            return Err(Error::input(format!(
                "--momentum {} applies to {} only, not to '{}'",
                self.momentum,
                Optimizer::names(Optimizer::ALL.into_iter().filter(|o| o.takes_momentum())).replace(", ", " and "),
                self.optimizer
            )));
        }
        if !(self.beta2.is_finite() && (0.0..1.0).contains(&self.beta2)) {
            return Err(Error::input(format!("--beta2 {}: must be in [0, 1)", self.beta2)));
        }
        if self.backend == BackendKind::GpuF32 && self.beta2 as f32 >= 1.0 {
            return Err(Error::input(format!(
                "--beta2 {}: rounds to 1 in f32, the GPU path's precision (Adam would divide by zero); at most {} there, or use --device cpu",
                self.beta2,
                1.0 - f32::EPSILON / 2.0
            )));
        }
        if self.beta2 != crate::optim::BETA2 && !self.optimizer.takes_beta2() {
            return Err(Error::input(format!(
                "--beta2 {} applies to {} only, not to '{}'",
                self.beta2,
                Optimizer::names(Optimizer::ALL.into_iter().filter(|o| o.takes_beta2())).replace(", ", " and "),
                self.optimizer
            )));
        }
        if self.backend.is_gpu() && !self.optimizer.on_gpu() {
            return Err(Error::input(format!(
                "optimizer '{}' runs on the CPU f64 path only (use --device cpu); on the GPU: {}",
                self.optimizer,
                Optimizer::names(Optimizer::ALL.into_iter().filter(|o| o.on_gpu()))
            )));
        }
        if self.optimizer == Optimizer::Als && self.data == DataMode::Population && self.n > ALS_POPULATION_MAX_N {
            return Err(Error::input(format!(
                "optimizer als with --data population at N = {}: offered up to N = {ALS_POPULATION_MAX_N} (its buffers hold ~1.5 N^2 complex values); use --data minibatch",
                self.n,
            )));
        }
        if self.optimizer.population_only() {
            if self.data != DataMode::Population {
                return Err(Error::input(format!(
                    "optimizer {} fits the population loss: use --data population (got '{}')",
                    self.optimizer, self.data
                )));
            }
            if self.n > LM_MAX_N {
                return Err(Error::input(format!(
                    "optimizer lm at N = {}: the dense Gauss-Newton matrix is offered up to N = {LM_MAX_N}",
                    self.n,
                )));
            }
        }
        Ok(net)
    }

    /// The default checkpoint interval: every 10% of the run.
    pub fn default_checkpoint_every(steps: u32) -> u32 {
        (steps / 10).max(1)
    }

    /// `key = value` lines, one per field (the checkpoint's `config` array, after its
    /// `format = ` line).
    pub fn to_text(&self) -> String {
        let vals = [
            self.n.to_string(),
            self.steps.to_string(),
            self.batch.to_string(),
            format!("{:e}", self.lr),
            self.seed.to_string(),
            self.init.to_string(),
            self.print_every.to_string(),
            format!("{:e}", self.max_loss_ratio),
            self.checkpoint_every.to_string(),
            self.backend.to_string(),
            self.optimizer.to_string(),
            self.out.display().to_string(),
            format!("{:e}", self.momentum),
            self.schedule.to_string(),
            self.data.to_string(),
            format!("{:e}", self.beta2),
            self.kernel.map_or("auto", |k| k.name()).to_string(),
            self.chunk.map_or("default".to_string(), |c| c.to_string()),
        ];
        let mut t = String::new();
        for (k, v) in KEYS.iter().zip(vals) {
            t.push_str(&format!("{k} = {v}\n"));
        }
        t
    }

    /// Parse [`TrainConfig::to_text`] output (a `format` line is skipped: the checkpoint
    /// checks its version); unknown, repeated or missing keys are errors.
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
        fn named<T: std::str::FromStr<Err = Error>>(k: &str, v: &str) -> Result<T> {
            v.parse().map_err(|e: Error| e.context(format!("config {k}")))
        }
        let cfg = TrainConfig {
            n: num(KEYS[0], get(0)?)?,
            steps: num(KEYS[1], get(1)?)?,
            batch: num(KEYS[2], get(2)?)?,
            lr: num(KEYS[3], get(3)?)?,
            seed: num(KEYS[4], get(4)?)?,
            init: named(KEYS[5], get(5)?)?,
            print_every: num(KEYS[6], get(6)?)?,
            max_loss_ratio: num(KEYS[7], get(7)?)?,
            checkpoint_every: num(KEYS[8], get(8)?)?,
            backend: named(KEYS[9], get(9)?)?,
            optimizer: named(KEYS[10], get(10)?)?,
            out: PathBuf::from(get(11)?),
            momentum: num(KEYS[12], get(12)?)?,
            schedule: named(KEYS[13], get(13)?)?,
            data: named(KEYS[14], get(14)?)?,
            beta2: num(KEYS[15], get(15)?)?,
            kernel: match get(16)? {
                "auto" => None,
                k => Some(named(KEYS[16], k)?),
            },
            chunk: match get(17)? {
                "default" => None,
                c => Some(num(KEYS[17], c)?),
            },
        };
        cfg.validate().context("config")?;
        Ok(cfg)
    }
}
