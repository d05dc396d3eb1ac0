//! A sweep's grid: the TOML config (any valid TOML, read by `toml` + `serde`; errors name the
//! key and its line), its checks, and the cells it expands to, with the coordinates that name
//! them in CSV rows and file names. Running the cells is [`super::sweep`].

use crate::error::{Error, Result};
use crate::model::network::Network;
use crate::model::params::Init;
use crate::optim::{Optimizer, Schedule};
use crate::train::{BackendKind, DataMode, TrainConfig};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// The most cells one sweep runs (a grid is refused above it before anything is allocated).
pub const MAX_CELLS: usize = 100_000;

/// The keys a sweep config accepts, with what each takes.
pub const KEYS: [(&str, &str); 17] = [
    ("n", "array of powers of two, 4..=65536 (required)"),
    ("batch", "array of batch sizes >= 1 (default [16])"),
    ("lr", "array of learning rates > 0 (default [0.01])"),
    (
        "init",
        "array of init schemes: seed, exact, random, modulus:R (default [\"seed\"])",
    ),
    (
        "optimizer",
        "array of adam, sgd, phase, phase-sgd, dgn, lm, als (default [\"adam\"])",
    ),
    (
        "precision",
        "array of f64 (CPU path), f32 (GPU path) (default [\"f64\"])",
    ),
    (
        "schedule",
        "array of constant, cosine, step:EVERY:GAMMA (default [\"constant\"])",
    ),
    ("momentum", "array of SGD momenta in [0, 1) (default [0.0])"),
    (
        "beta2",
        "array of Adam beta2 values in [0, 1) for adam and phase (default [0.999])",
    ),
    (
        "data",
        "array of minibatch, population (default [\"minibatch\"]); lm always uses population",
    ),
    ("seeds", "array of data seeds, or a count k meaning 0..k (default 1)"),
    ("steps", "steps per cell (exclusive with budget)"),
    (
        "budget",
        "samples per cell: steps = budget / batch (exclusive with steps)",
    ),
    (
        "threshold",
        "success when the relative operator error <= this (default 1e-6)",
    ),
    ("eval_every", "steps between exact evaluations (default steps / 20)"),
    ("out", "output directory (default \"runs/sweep\")"),
    (
        "save_params",
        "\"none\", \"failed\" or \"all\": keep those cells' final parameters as OUT/params/CELL.npz (default \"none\")",
    ),
];

/// A parsed, checked sweep config.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepConfig {
    /// Sizes.
    pub n: Vec<usize>,
    /// Batch sizes.
    pub batch: Vec<usize>,
    /// Learning rates.
    pub lr: Vec<f64>,
    /// Init schemes.
    pub init: Vec<Init>,
    /// Optimizers.
    pub optimizer: Vec<Optimizer>,
    /// Precisions: f64 (the CPU path) or f32 (the GPU path).
    pub precision: Vec<BackendKind>,
    /// Schedules.
    pub schedule: Vec<Schedule>,
    /// Momenta.
    pub momentum: Vec<f64>,
    /// Adam's beta2 values.
    pub beta2: Vec<f64>,
    /// Data modes.
    pub data: Vec<DataMode>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Steps per cell (None: from the budget).
    pub steps: Option<u32>,
    /// Samples per cell (None: from steps).
    pub budget: Option<u64>,
    /// Success threshold on the relative operator error.
    pub threshold: f64,
    /// Steps between evaluations (0: steps / 20).
    pub eval_every: u32,
    /// Output directory.
    pub out: PathBuf,
    /// Which cells keep their final parameters (`OUT/params/CELL.npz`); no effect on results.
    pub save_params: SaveParams,
}

/// Which cells of a sweep keep their final parameters, to be reopened with `inspect`,
/// `hessian`, `snr` or `train --init FILE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SaveParams {
    /// None (the default).
    #[default]
    None,
    /// Cells that failed or diverged (diverged cells only when their parameters are finite).
    Failed,
    /// Every cell.
    All,
}

impl std::str::FromStr for SaveParams {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(SaveParams::None),
            "failed" => Ok(SaveParams::Failed),
            "all" => Ok(SaveParams::All),
            _ => Err(Error::input(format!(
                "save_params '{s}' is not accepted (accepted: none, failed, all)"
            ))),
        }
    }
}

impl SaveParams {
    pub(crate) fn wants(self, status: &str) -> bool {
        match self {
            SaveParams::None => false,
            SaveParams::Failed => status != "success",
            SaveParams::All => true,
        }
    }
}

/// The document as serde reads it: every key spanned, so errors can name its line; unknown
/// keys refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    n: Option<Spanned<toml::Value>>,
    batch: Option<Spanned<toml::Value>>,
    lr: Option<Spanned<toml::Value>>,
    init: Option<Spanned<toml::Value>>,
    optimizer: Option<Spanned<toml::Value>>,
    precision: Option<Spanned<toml::Value>>,
    schedule: Option<Spanned<toml::Value>>,
    momentum: Option<Spanned<toml::Value>>,
    beta2: Option<Spanned<toml::Value>>,
    data: Option<Spanned<toml::Value>>,
    seeds: Option<Spanned<toml::Value>>,
    steps: Option<Spanned<toml::Value>>,
    budget: Option<Spanned<toml::Value>>,
    threshold: Option<Spanned<toml::Value>>,
    eval_every: Option<Spanned<toml::Value>>,
    out: Option<Spanned<toml::Value>>,
    save_params: Option<Spanned<toml::Value>>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// One key's value with where it stands, for messages.
struct Key<'a> {
    name: &'a str,
    value: &'a toml::Value,
    at: String,
}

impl Key<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::input(format!("sweep config {}: key '{}': {msg}", self.at, self.name))
    }

    /// Each element of a non-empty list (a scalar is a list of one) through `conv`.
    fn each<T>(&self, conv: impl Fn(&toml::Value) -> std::result::Result<T, String>) -> Result<Vec<T>> {
        let items: Vec<&toml::Value> = match self.value {
            toml::Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        if items.is_empty() {
            return Err(self.err("is an empty list; give at least one value"));
        }
        let v: Vec<T> = items
            .into_iter()
            .map(|x| conv(x).map_err(|e| self.err(e)))
            .collect::<Result<_>>()?;
        Ok(v)
    }

    /// [`Key::each`] for a grid axis: a value given twice would run its cells twice.
    fn axis<T: PartialEq + std::fmt::Display>(
        &self,
        conv: impl Fn(&toml::Value) -> std::result::Result<T, String>,
    ) -> Result<Vec<T>> {
        let v = self.each(conv)?;
        if let Some((j, i)) = crate::given::first_repeat(&v) {
            return Err(self.err(format!(
                "values {} and {} are the same, {} (each cell would run twice)",
                j + 1,
                i + 1,
                v[i]
            )));
        }
        Ok(v)
    }

    fn scalar(&self) -> Result<()> {
        match self.value {
            toml::Value::Array(_) => Err(self.err("takes one value, not an array")),
            _ => Ok(()),
        }
    }

    fn ints(&self, min: i64, max: i64) -> Result<Vec<i64>> {
        self.axis(|x| match x {
            toml::Value::Integer(i) if (min..=max).contains(i) => Ok(*i),
            toml::Value::Integer(i) => Err(format!("{i} is out of range ({min}..={max})")),
            o => Err(format!("expected integers, got a {}", o.type_str())),
        })
    }

    fn floats(&self) -> Result<Vec<f64>> {
        self.axis(|x| match x {
            toml::Value::Integer(i) => Ok(*i as f64),
            toml::Value::Float(f) => Ok(*f),
            o => Err(format!("expected numbers, got a {}", o.type_str())),
        })
    }

    /// Strings, each parsed into `T` (whose error names what is accepted).
    fn named<T: std::str::FromStr<Err = Error> + PartialEq + std::fmt::Display>(&self) -> Result<Vec<T>> {
        self.axis(|x| match x {
            toml::Value::String(s) => s.parse::<T>().map_err(|e| e.to_string()),
            o => Err(format!("expected \"strings\", got a {}", o.type_str())),
        })
    }
}

/// A TOML syntax or type error in a sweep config, at its line and key where it has them, an
/// unknown key named with the known ones.
fn syntax_error(e: &toml::de::Error, text: &str, what: &str) -> Error {
    let at = e
        .span()
        .map_or(String::new(), |s| format!(":{}", line_of(text, s.start)));
    // the key of the line the error stands on, where it is one of the config's
    let key = e
        .span()
        .and_then(|s| text.get(..s.start.min(text.len())))
        .and_then(|before| before.rsplit('\n').next())
        .and_then(|line| line.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| KEYS.iter().any(|(name, _)| name == k))
        .map_or(String::new(), |k| format!(" key '{k}':"));
    let msg = e.message().trim().to_string();
    // serde names an unknown key "field"; say it as the rest of fftlearn does
    let msg = match msg.strip_prefix("unknown field `").and_then(|m| m.split_once('`')) {
        Some((k, _)) => {
            let known: Vec<&str> = KEYS.iter().map(|k| k.0).collect();
            format!("unknown key '{k}' (known: {})", known.join(", "))
        }
        None => msg,
    };
    Error::input(format!("sweep config {what}{at}:{key} {msg}"))
}

impl SweepConfig {
    /// Parse and check a config's text (`what` names it in errors): every key's own check, in
    /// the file's order, in one place, so that a new key's validation sits beside the others;
    /// then the checks of the whole grid ([`SweepConfig::check_grid`]).
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let raw: Raw = toml::from_str(text).map_err(|e| syntax_error(&e, text, what))?;
        let mut c = SweepConfig {
            n: Vec::new(),
            batch: vec![16],
            lr: vec![1e-2],
            init: vec![Init::default()],
            optimizer: vec![Optimizer::Adam],
            precision: vec![BackendKind::CpuF64],
            schedule: vec![Schedule::Constant],
            momentum: vec![0.0],
            beta2: vec![crate::optim::BETA2],
            data: vec![DataMode::Minibatch],
            seeds: vec![0],
            steps: None,
            budget: None,
            threshold: 1e-6,
            eval_every: 0,
            out: PathBuf::from("runs/sweep"),
            save_params: SaveParams::None,
        };
        fn key<'a>(text: &str, what: &str, name: &'a str, v: &'a Option<Spanned<toml::Value>>) -> Option<Key<'a>> {
            v.as_ref().map(|v| Key {
                name,
                value: v.get_ref(),
                at: format!("{what}:{}", line_of(text, v.span().start)),
            })
        }
        let key = |name: &'static str, v| key(text, what, name, v);
        if let Some(k) = key("n", &raw.n) {
            c.n = k.ints(4, 65536)?.into_iter().map(|x| x as usize).collect();
            for &n in &c.n {
                Network::new(n).map_err(|e| k.err(e))?;
            }
        }
        if let Some(k) = key("batch", &raw.batch) {
            c.batch = k.ints(1, 1 << 32)?.into_iter().map(|x| x as usize).collect();
        }
        if let Some(k) = key("lr", &raw.lr) {
            c.lr = k.floats()?;
        }
        if let Some(k) = key("init", &raw.init) {
            c.init = k.named()?;
        }
        if let Some(k) = key("optimizer", &raw.optimizer) {
            c.optimizer = k.named()?;
        }
        if let Some(k) = key("precision", &raw.precision) {
            c.precision = k.axis(|x| match x.as_str() {
                Some("f64") => Ok(BackendKind::CpuF64),
                Some("f32") => Ok(BackendKind::GpuF32),
                _ => Err(format!("{x} (accepted: f64 = CPU path, f32 = GPU path)")),
            })?;
        }
        if let Some(k) = key("schedule", &raw.schedule) {
            c.schedule = k.named()?;
        }
        if let Some(k) = key("momentum", &raw.momentum) {
            c.momentum = k.floats()?.into_iter().map(|v| v + 0.0).collect();
        }
        if let Some(k) = key("beta2", &raw.beta2) {
            // -0 is 0 (one spelling in rows and file names)
            c.beta2 = k.floats()?.into_iter().map(|v| v + 0.0).collect();
        }
        if let Some(k) = key("data", &raw.data) {
            c.data = k.named()?;
        }
        if let Some(k) = key("seeds", &raw.seeds) {
            c.seeds = match k.value {
                toml::Value::Integer(count) if *count > MAX_CELLS as i64 => {
                    return Err(k.err(format!("count {count} is above the {MAX_CELLS} cells a sweep runs")))
                }
                toml::Value::Integer(count) if *count >= 1 => (0..*count as u64).collect(),
                toml::Value::Integer(count) => return Err(k.err(format!("count {count} must be >= 1"))),
                _ => k.ints(0, i64::MAX)?.into_iter().map(|x| x as u64).collect(),
            };
        }
        if let Some(k) = key("steps", &raw.steps) {
            k.scalar()?;
            c.steps = Some(k.ints(1, u32::MAX as i64)?[0] as u32);
        }
        if let Some(k) = key("budget", &raw.budget) {
            k.scalar()?;
            c.budget = Some(k.ints(1, i64::MAX)?[0] as u64);
        }
        if let Some(k) = key("threshold", &raw.threshold) {
            k.scalar()?;
            c.threshold = k.floats()?[0];
            if !(c.threshold > 0.0 && c.threshold < 1.0) {
                return Err(k.err(format!("{} must be in (0, 1)", c.threshold)));
            }
        }
        if let Some(k) = key("eval_every", &raw.eval_every) {
            k.scalar()?;
            c.eval_every = k.ints(1, u32::MAX as i64)?[0] as u32;
        }
        if let Some(k) = key("out", &raw.out) {
            k.scalar()?;
            c.out = PathBuf::from(
                k.each(|x| {
                    x.as_str()
                        .map(String::from)
                        .ok_or_else(|| format!("expected a \"string\", got a {}", x.type_str()))
                })?
                .remove(0),
            );
        }
        if let Some(k) = key("save_params", &raw.save_params) {
            k.scalar()?;
            c.save_params = k
                .each(|x| {
                    x.as_str()
                        .ok_or_else(|| format!("expected a \"string\", got a {}", x.type_str()))?
                        .parse::<SaveParams>()
                        .map_err(|e| e.to_string())
                })?
                .remove(0);
        }
        c.check_grid()?;
        Ok(c)
    }

    /// The checks of the whole grid: the required keys, steps against budget, the cell count,
    /// every cell's training config, and no two cells that train the same run.
    fn check_grid(&self) -> Result<()> {
        if self.n.is_empty() {
            return Err(Error::input("sweep config: key 'n' is required (an array of sizes)"));
        }
        match (self.steps, self.budget) {
            (None, None) => return Err(Error::input("sweep config: give 'steps' or 'budget'")),
            (Some(_), Some(_)) => {
                return Err(Error::input(
                    "sweep config: keys 'steps' and 'budget' exclude each other",
                ))
            }
            _ => {}
        }
        if let Some(b) = self.budget {
            // steps = budget / batch, never rounded up to one step or down to the step cap
            for &batch in &self.batch {
                let steps = b / batch as u64;
                if steps == 0 || steps > u32::MAX as u64 {
                    return Err(Error::input(format!(
                        "sweep config: key 'budget': {b} samples at batch {batch} is {steps} steps; a cell takes 1..={} steps (budget = batch x steps)",
                        u32::MAX
                    )));
                }
            }
        }
        let count = self.cell_count();
        if count > MAX_CELLS as u128 {
            return Err(Error::input(format!(
                "sweep config: {count} cells (the product of every list's length); a sweep runs at most {MAX_CELLS}: split the grid"
            )));
        }
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for (i, cell) in self.cells().iter().enumerate() {
            let tc = cell.train_config(self);
            tc.validate()
                .map_err(|e| Error::input(format!("sweep config: cell {i} ({}): {e}", cell.label())))?;
            // a list value without effect on a cell makes a second cell that trains the same run
            let (uses_lr, uses_batch) = (cell.optimizer.uses_lr(), cell.data == DataMode::Minibatch);
            let same = format!(
                "{} {:?} {:?} {} {} {} {:e} {:e} {} {} {}",
                cell.n,
                uses_batch.then_some(cell.batch),
                uses_lr.then_some((cell.lr, cell.schedule)),
                cell.init,
                cell.optimizer,
                precision_name(cell.precision),
                cell.momentum,
                cell.beta2,
                cell.data,
                cell.seed,
                cell.steps
            );
            if let Some(j) = seen.insert(same, i) {
                let why = if !uses_lr {
                    format!("lr and schedule have no effect on {}", cell.optimizer)
                } else {
                    format!("batch has no effect on {} data", cell.data)
                };
                return Err(Error::input(format!(
                    "sweep config: cells {j} and {i} train the same run ({why}): {}; give that key one value for these cells (a separate config)",
                    cell.label()
                )));
            }
        }
        Ok(())
    }

    /// How many cells the grid has (the product of the lists' lengths).
    pub fn cell_count(&self) -> u128 {
        self.axis_lengths().iter().map(|&l| l as u128).product()
    }

    /// The length of every list, in grid order (n outermost, seed innermost).
    fn axis_lengths(&self) -> [usize; 11] {
        [
            self.n.len(),
            self.batch.len(),
            self.lr.len(),
            self.init.len(),
            self.optimizer.len(),
            self.precision.len(),
            self.schedule.len(),
            self.momentum.len(),
            self.beta2.len(),
            self.data.len(),
            self.seeds.len(),
        ]
    }

    /// The first key whose value differs from `other`'s (`out` and `save_params` aside), if any.
    pub fn first_difference(&self, other: &SweepConfig) -> Option<&'static str> {
        let f = |a: bool, k: &'static str| (!a).then_some(k);
        f(self.n == other.n, "n")
            .or(f(self.batch == other.batch, "batch"))
            .or(f(self.lr == other.lr, "lr"))
            .or(f(self.init == other.init, "init"))
            .or(f(self.optimizer == other.optimizer, "optimizer"))
            .or(f(self.precision == other.precision, "precision"))
            .or(f(self.schedule == other.schedule, "schedule"))
            .or(f(self.momentum == other.momentum, "momentum"))
            .or(f(self.beta2 == other.beta2, "beta2"))
            .or(f(self.data == other.data, "data"))
            .or(f(self.seeds == other.seeds, "seeds"))
            .or(f(self.steps == other.steps, "steps"))
            .or(f(self.budget == other.budget, "budget"))
            .or(f(self.threshold == other.threshold, "threshold"))
            .or(f(self.eval_every == other.eval_every, "eval_every"))
    }

    /// Every cell, in the order they run (n outermost, then batch, lr, init, optimizer,
    /// precision, schedule, momentum, beta2, data, seed innermost).
    pub fn cells(&self) -> Vec<Cell> {
        let lens = self.axis_lengths();
        let total: usize = lens.iter().product();
        let mut out = Vec::with_capacity(total);
        for k in 0..total {
            // the index in each list, the last list varying fastest
            let mut at = [0usize; 11];
            let mut rest = k;
            for (a, &l) in at.iter_mut().zip(&lens).rev() {
                *a = rest % l;
                rest /= l;
            }
            let [n, b, lr, init, opt, prec, sch, mom, beta2, data, seed] = at;
            let (optimizer, batch) = (self.optimizer[opt], self.batch[b]);
            out.push(Cell {
                n: self.n[n],
                batch,
                lr: self.lr[lr],
                init: self.init[init].clone(),
                optimizer,
                precision: self.precision[prec],
                schedule: self.schedule[sch],
                momentum: self.momentum[mom],
                beta2: self.beta2[beta2],
                data: if optimizer.population_only() {
                    DataMode::Population
                } else {
                    self.data[data]
                },
                seed: self.seeds[seed],
                steps: self
                    .steps
                    .unwrap_or_else(|| (self.budget.unwrap_or(1) / batch as u64).clamp(1, u32::MAX as u64) as u32),
            });
        }
        out
    }
}

/// One run of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// N.
    pub n: usize,
    /// Batch.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Init scheme.
    pub init: Init,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// The CPU f64 path or the GPU f32 path.
    pub precision: BackendKind,
    /// Schedule.
    pub schedule: Schedule,
    /// Momentum.
    pub momentum: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Data mode.
    pub data: DataMode,
    /// Seed.
    pub seed: u64,
    /// Steps.
    pub steps: u32,
}

/// The sweep name of a backend: f64 (the CPU path) or f32 (the GPU path).
pub(crate) fn precision_name(b: BackendKind) -> &'static str {
    match b {
        BackendKind::CpuF64 => "f64",
        BackendKind::GpuF32 => "f32",
        BackendKind::GpuF64 => "gpu-f64",
    }
}

impl Cell {
    pub(crate) fn label(&self) -> String {
        format!(
            "n = {}, batch = {}, lr = {:e}, init = {}, optimizer = {}, precision = {}, schedule = {}, momentum = {}, beta2 = {}, data = {}, seed = {}",
            self.n,
            self.batch,
            self.lr,
            self.init,
            self.optimizer,
            precision_name(self.precision),
            self.schedule,
            self.momentum,
            self.beta2,
            self.data,
            self.seed
        )
    }

    pub(crate) fn train_config(&self, c: &SweepConfig) -> TrainConfig {
        TrainConfig {
            n: self.n,
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            seed: self.seed,
            init: self.init.clone(),
            print_every: self.steps,
            out: c.out.clone(),
            checkpoint_every: self.steps,
            backend: self.precision,
            optimizer: self.optimizer,
            momentum: self.momentum,
            beta2: self.beta2,
            schedule: self.schedule,
            data: self.data,
            ..TrainConfig::default()
        }
    }

    /// The cell's coordinates as its CSV and file names write them: n, batch, lr, init,
    /// optimizer, precision, schedule, momentum, beta2, data, seed.
    fn coords(&self) -> [String; 11] {
        [
            self.n.to_string(),
            self.batch.to_string(),
            format!("{:e}", self.lr),
            self.init.to_string(),
            self.optimizer.to_string(),
            precision_name(self.precision).to_string(),
            self.schedule.to_string(),
            format!("{:e}", self.momentum),
            format!("{:e}", self.beta2),
            self.data.to_string(),
            self.seed.to_string(),
        ]
    }

    /// The file name (without `.npz`) of this cell's saved parameters: its coordinates, with
    /// anything but letters, digits, '.', '-' and '_' written as '_'.
    pub fn file_stem(&self) -> String {
        let [n, b, lr, init, opt, prec, sched, m, b2, data, seed] = self.coords();
        format!("n{n}_b{b}_lr{lr}_{init}_{opt}_{prec}_{sched}_m{m}_beta2-{b2}_{data}_s{seed}")
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                    ch
                } else {
                    '_'
                }
            })
            .collect()
    }

    pub(crate) fn key(&self) -> String {
        format!("{},{}", self.coords().join(","), self.steps)
    }

    /// The coordinates the cells of a seed group share: every one but the seed.
    pub(crate) fn shared_coords(&self) -> Vec<String> {
        let mut c = self.coords().to_vec();
        c.pop();
        c
    }

    /// What identifies the cell's group of seeds (its coordinates but the seed, and steps).
    pub(crate) fn group_key(&self) -> String {
        format!("{},{}", self.shared_coords().join(","), self.steps)
    }
}
