//! The learnability map: a grid of training runs from a TOML config, each cell recording
//! success against a threshold on the relative operator error, steps to success, wall time and
//! final error; resumable cell by cell; CSV and heat-map PNGs.

use crate::commands::init_params;
use crate::cpu;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::npyio;
use crate::plot::{heatmaps, Heat};
use crate::tomlish::{self, Value};
use crate::train::{Backend, CpuBackend, TrainConfig};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The keys a sweep config accepts, with what each takes.
pub const KEYS: [(&str, &str); 15] = [
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
    pub init: Vec<String>,
    /// Optimizers.
    pub optimizer: Vec<String>,
    /// Precisions.
    pub precision: Vec<String>,
    /// Schedules.
    pub schedule: Vec<String>,
    /// Momenta.
    pub momentum: Vec<f64>,
    /// Data modes.
    pub data: Vec<String>,
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
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// Each element of a non-empty list (a scalar is a list of one) through `conv`, which names
/// the element's expected type on failure.
fn each<T>(key: &str, v: &Value, conv: impl Fn(&Value) -> std::result::Result<T, String>) -> Result<Vec<T>> {
    let items = list(v);
    if items.is_empty() {
        return Err(Error::input(format!(
            "sweep config: key '{key}' is an empty list; give at least one value"
        )));
    }
    items
        .iter()
        .map(|x| conv(x).map_err(|e| Error::input(format!("sweep config: key '{key}': {e}"))))
        .collect()
}

fn ints(key: &str, v: &Value, min: i64, max: i64) -> Result<Vec<i64>> {
    each(key, v, |x| match x {
        Value::Int(i) if (min..=max).contains(i) => Ok(*i),
        Value::Int(i) => Err(format!("{i} is out of range ({min}..={max})")),
        o => Err(format!("expected integers, got a {}", o.kind())),
    })
}

fn floats(key: &str, v: &Value) -> Result<Vec<f64>> {
    each(key, v, |x| match x {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        o => Err(format!("expected numbers, got a {}", o.kind())),
    })
}

fn strings(key: &str, v: &Value) -> Result<Vec<String>> {
    each(key, v, |x| match x {
        Value::Str(s) => Ok(s.clone()),
        o => Err(format!("expected \"strings\", got a {}", o.kind())),
    })
}

impl SweepConfig {
    /// Parse and check a config's text (`what` names it in errors).
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let kv = tomlish::parse(text, what)?;
        let mut c = SweepConfig {
            n: Vec::new(),
            batch: vec![16],
            lr: vec![1e-2],
            init: vec!["seed".into()],
            optimizer: vec!["adam".into()],
            precision: vec!["f64".into()],
            schedule: vec!["constant".into()],
            momentum: vec![0.0],
            data: vec!["minibatch".into()],
            seeds: vec![0],
            steps: None,
            budget: None,
            threshold: 1e-6,
            eval_every: 0,
            out: PathBuf::from("runs/sweep"),
        };
        let scalar = |key: &str, v: &Value| -> Result<()> {
            if matches!(v, Value::Array(_)) {
                Err(Error::input(format!(
                    "sweep config: key '{key}' takes one value, not an array"
                )))
            } else {
                Ok(())
            }
        };
        for (k, v) in &kv {
            match k.as_str() {
                "n" => {
                    c.n = ints(k, v, 4, 65536)?.into_iter().map(|x| x as usize).collect();
                    for &n in &c.n {
                        Network::new(n).map_err(|e| Error::input(format!("sweep config: key 'n': {e}")))?;
                    }
                }
                "batch" => c.batch = ints(k, v, 1, 1 << 32)?.into_iter().map(|x| x as usize).collect(),
                "lr" => c.lr = floats(k, v)?,
                "init" => c.init = strings(k, v)?,
                "optimizer" => c.optimizer = strings(k, v)?,
                "precision" => c.precision = strings(k, v)?,
                "schedule" => c.schedule = strings(k, v)?,
                "momentum" => c.momentum = floats(k, v)?,
                "data" => c.data = strings(k, v)?,
                "seeds" => {
                    c.seeds = match v {
                        Value::Int(count) if *count >= 1 => (0..*count as u64).collect(),
                        Value::Int(count) => {
                            return Err(Error::input(format!(
                                "sweep config: key 'seeds': count {count} must be >= 1"
                            )))
                        }
                        _ => ints(k, v, 0, i64::MAX)?.into_iter().map(|x| x as u64).collect(),
                    }
                }
                "steps" => {
                    scalar(k, v)?;
                    c.steps = Some(ints(k, v, 1, u32::MAX as i64)?[0] as u32);
                }
                "budget" => {
                    scalar(k, v)?;
                    c.budget = Some(ints(k, v, 1, i64::MAX)?[0] as u64);
                }
                "threshold" => {
                    scalar(k, v)?;
                    c.threshold = floats(k, v)?[0];
                    if !(c.threshold > 0.0 && c.threshold < 1.0) {
                        return Err(Error::input(format!(
                            "sweep config: key 'threshold': {} must be in (0, 1)",
                            c.threshold
                        )));
                    }
                }
                "eval_every" => {
                    scalar(k, v)?;
                    c.eval_every = ints(k, v, 1, u32::MAX as i64)?[0] as u32;
                }
                "out" => {
                    scalar(k, v)?;
                    c.out = PathBuf::from(strings(k, v)?.remove(0));
                }
                other => {
                    let known: Vec<&str> = KEYS.iter().map(|k| k.0).collect();
                    return Err(Error::input(format!(
                        "sweep config: unknown key '{other}' (known: {})",
                        known.join(", ")
                    )));
                }
            }
        }
        if c.n.is_empty() {
            return Err(Error::input("sweep config: key 'n' is required (an array of sizes)"));
        }
        match (c.steps, c.budget) {
            (None, None) => return Err(Error::input("sweep config: give 'steps' or 'budget'")),
            (Some(_), Some(_)) => {
                return Err(Error::input(
                    "sweep config: keys 'steps' and 'budget' exclude each other",
                ))
            }
            _ => {}
        }
        for p in &c.precision {
            if p != "f64" && p != "f32" {
                return Err(Error::input(format!(
                    "sweep config: key 'precision': '{p}' (accepted: f64 = CPU path, f32 = GPU path)"
                )));
            }
        }
        for (i, cell) in c.cells().iter().enumerate() {
            let tc = cell.train_config(&c);
            tc.validate()
                .map_err(|e| Error::input(format!("sweep config: cell {i} ({}): {e}", cell.label())))?;
            if !cell.init.ends_with(".npz") {
                cell.init
                    .parse::<crate::params::Scheme>()
                    .map_err(|e| Error::input(format!("sweep config: key 'init': {e}")))?;
            }
        }
        Ok(c)
    }

    /// Every cell, in the order they run (n outermost, seed innermost).
    pub fn cells(&self) -> Vec<Cell> {
        let mut out = Vec::new();
        for &n in &self.n {
            for &batch in &self.batch {
                for &lr in &self.lr {
                    for init in &self.init {
                        for opt in &self.optimizer {
                            for prec in &self.precision {
                                for sch in &self.schedule {
                                    for &mom in &self.momentum {
                                        for data in &self.data {
                                            for &seed in &self.seeds {
                                                let data = if opt == "lm" { "population" } else { data.as_str() };
                                                out.push(Cell {
                                                    n,
                                                    batch,
                                                    lr,
                                                    init: init.clone(),
                                                    optimizer: opt.clone(),
                                                    precision: prec.clone(),
                                                    schedule: sch.clone(),
                                                    momentum: mom,
                                                    data: data.to_string(),
                                                    seed,
                                                    steps: self.steps.unwrap_or_else(|| {
                                                        (self.budget.unwrap_or(1) / batch as u64)
                                                            .clamp(1, u32::MAX as u64)
                                                            as u32
                                                    }),
                                                });
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
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
    pub init: String,
    /// Optimizer.
    pub optimizer: String,
    /// f64 (CPU) or f32 (GPU).
    pub precision: String,
    /// Schedule.
    pub schedule: String,
    /// Momentum.
    pub momentum: f64,
    /// Data mode.
    pub data: String,
    /// Seed.
    pub seed: u64,
    /// Steps.
    pub steps: u32,
}

impl Cell {
    fn label(&self) -> String {
        format!(
            "n = {}, batch = {}, lr = {:e}, init = {}, optimizer = {}, precision = {}, schedule = {}, momentum = {}, data = {}, seed = {}",
            self.n,
            self.batch,
            self.lr,
            self.init,
            self.optimizer,
            self.precision,
            self.schedule,
            self.momentum,
            self.data,
            self.seed
        )
    }

    fn train_config(&self, c: &SweepConfig) -> TrainConfig {
        TrainConfig {
            n: self.n,
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            seed: self.seed,
            init: self.init.clone(),
            print_every: self.steps,
            out: c.out.clone(),
            max_loss_ratio: 1e8,
            checkpoint_every: self.steps,
            backend: if self.precision == "f32" { "gpu-f32" } else { "cpu-f64" }.into(),
            optimizer: self.optimizer.clone(),
            momentum: self.momentum,
            schedule: self.schedule.clone(),
            data: self.data.clone(),
        }
    }

    fn key(&self) -> String {
        format!(
            "{},{},{:e},{},{},{},{},{:e},{},{},{}",
            self.n,
            self.batch,
            self.lr,
            self.init,
            self.optimizer,
            self.precision,
            self.schedule,
            self.momentum,
            self.data,
            self.seed,
            self.steps
        )
    }
}

/// The CSV header.
pub const HEADER: &str = "n,batch,lr,init,optimizer,precision,schedule,momentum,data,seed,steps,status,steps_to_success,samples_to_success,final_rel_err,final_loss,backend,wall_s";

/// What one cell gave.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// success, fail or diverged.
    pub status: &'static str,
    /// First evaluated step at or below the threshold.
    pub steps_to_success: Option<u32>,
    /// The relative operator error at the end (or at success).
    pub final_rel_err: f64,
    /// The last step's loss.
    pub final_loss: f64,
    /// Where it ran (backend and adapter).
    pub backend: String,
    /// Seconds.
    pub wall_s: f64,
}

/// Samples one step of `cell` consumes (N for population data).
fn samples_per_step(cell: &Cell) -> u64 {
    if cell.data == "population" {
        cell.n as u64
    } else {
        cell.batch as u64
    }
}

fn run_cell(cell: &Cell, c: &SweepConfig, gpu: &mut Option<crate::gpu::Gpu>) -> Result<Outcome> {
    let tc = cell.train_config(c);
    let net = tc.validate()?;
    let p = init_params(&net, &cell.init, cell.seed)?;
    let mut backend: Box<dyn Backend> = if cell.precision == "f32" {
        let g = match gpu.take() {
            Some(g) => g,
            None => {
                let a = crate::gpu::context::pick(None, true)?;
                crate::gpu::Gpu::open(&a, false)?
            }
        };
        let m = crate::gpu::GpuModel::new(g, &p, crate::gpu::Precision::F32)?;
        crate::train::gpu_backend(m, p, &tc)?
    } else {
        Box::new(CpuBackend::from_config(p, &tc)?)
    };
    let every = if c.eval_every > 0 {
        c.eval_every
    } else {
        (cell.steps / 20).max(1)
    };
    let t0 = Instant::now();
    let ran = backend.describe().replace(',', ";");
    let mut loss = f64::NAN;
    let mut rel = f64::NAN;
    let mut first = None;
    for s in 1..=cell.steps {
        loss = backend.step(s)?;
        let f0 = *first.get_or_insert(loss);
        if !loss.is_finite() || loss > 1e8 * f0 || !backend.params_finite() {
            return Ok(Outcome {
                status: "diverged",
                steps_to_success: None,
                final_rel_err: f64::NAN,
                final_loss: loss,
                backend: ran.clone(),
                wall_s: t0.elapsed().as_secs_f64(),
            });
        }
        if crate::interrupt::requested() {
            return Err(Error::interrupted("interrupted"));
        }
        if s % every == 0 || s == cell.steps {
            rel = cpu::rel_operator_error(&backend.params()?);
            if rel <= c.threshold {
                return Ok(Outcome {
                    status: "success",
                    steps_to_success: Some(s),
                    final_rel_err: rel,
                    final_loss: loss,
                    backend: ran.clone(),
                    wall_s: t0.elapsed().as_secs_f64(),
                });
            }
        }
    }
    Ok(Outcome {
        status: "fail",
        steps_to_success: None,
        final_rel_err: rel,
        final_loss: loss,
        backend: ran,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

fn row(cell: &Cell, o: &Outcome) -> String {
    format!(
        "{},{},{},{},{:e},{:e},{},{:.3}",
        cell.key(),
        o.status,
        o.steps_to_success.map_or(String::new(), |s| s.to_string()),
        o.steps_to_success
            .map_or(String::new(), |s| (s as u64 * samples_per_step(cell)).to_string()),
        o.final_rel_err,
        o.final_loss,
        o.backend,
        o.wall_s
    )
}

/// Run (or resume) the sweep of the config file at `path`, writing `OUT/sweep.csv`, the
/// config copy `OUT/sweep.toml`, and the heat maps. Prints one line per cell.
pub fn run(path: &Path, out_override: Option<&Path>) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::input(format!("cannot read sweep config {}: {e}", path.display())))?;
    let mut c = SweepConfig::parse(&text, &path.display().to_string())?;
    if let Some(o) = out_override {
        c.out = o.to_path_buf();
    }
    std::fs::create_dir_all(&c.out)
        .map_err(|e| Error::input(format!("cannot create output directory {}: {e}", c.out.display())))?;
    let cells = c.cells();
    let copy = c.out.join("sweep.toml");
    let csv_path = c.out.join("sweep.csv");
    let mut rows: Vec<String> = Vec::new();
    if csv_path.exists() {
        let old = std::fs::read_to_string(&copy).unwrap_or_default();
        let same = SweepConfig::parse(&old, &copy.display().to_string())
            .map(|mut o| {
                o.out = c.out.clone();
                o == c
            })
            .unwrap_or(false);
        if !same {
            return Err(Error::input(format!(
                "{} holds a sweep of another config ({}); use another --out or remove it",
                c.out.display(),
                copy.display()
            )));
        }
        let existing = std::fs::read_to_string(&csv_path)
            .map_err(|e| Error::input(format!("cannot read {}: {e}", csv_path.display())))?;
        let mut lines = existing.lines();
        if lines.next() != Some(HEADER) {
            return Err(Error::input(format!(
                "{}: not a sweep CSV (header differs)",
                csv_path.display()
            )));
        }
        for (i, l) in lines.enumerate() {
            let want = cells.get(i).map(|c| c.key());
            if want.as_deref().is_none_or(|k| !l.starts_with(&format!("{k},"))) {
                return Err(Error::input(format!(
                    "{} line {}: does not match cell {i} of the config; use another --out",
                    csv_path.display(),
                    i + 2
                )));
            }
            rows.push(l.to_string());
        }
        println!("[sweep] resuming: {} of {} cells done", rows.len(), cells.len());
    } else {
        npyio::write_text(&copy, &text)?;
    }
    crate::interrupt::install();
    let mut gpu = None;
    for (i, cell) in cells.iter().enumerate().skip(rows.len()) {
        let o = match run_cell(cell, &c, &mut gpu) {
            Ok(o) => o,
            Err(e) if e.kind() == crate::error::Kind::Interrupted => {
                return Err(Error::interrupted(format!(
                    "sweep interrupted in cell {i} of {}: {} cells are in {}; rerun the same command to resume",
                    cells.len(),
                    rows.len(),
                    csv_path.display()
                )))
            }
            Err(e) => return Err(e.context(format!("sweep cell {i} ({})", cell.label()))),
        };
        println!(
            "[sweep] cell {}/{}: N = {}, batch {}, {} {}, init {}, seed {}: {}{} (rel err {:.2e}, {:.2} s)",
            i + 1,
            cells.len(),
            cell.n,
            cell.batch,
            cell.optimizer,
            cell.precision,
            cell.init,
            cell.seed,
            o.status,
            o.steps_to_success.map_or(String::new(), |s| format!(" at step {s}")),
            o.final_rel_err,
            o.wall_s
        );
        rows.push(row(cell, &o));
        let mut csv = String::from(HEADER);
        csv.push('\n');
        for r in &rows {
            csv.push_str(r);
            csv.push('\n');
        }
        npyio::write_text(&csv_path, &csv)?;
    }
    maps(&c, &cells, &rows)?;
    println!(
        "[sweep] {} cells; wrote {}, {} and {}",
        cells.len(),
        csv_path.display(),
        c.out.join("success_rate.png").display(),
        c.out.join("median_steps.png").display()
    );
    Ok(())
}

/// Heat maps over N x batch, one panel per optimizer: success rate and median steps to success.
fn maps(c: &SweepConfig, cells: &[Cell], rows: &[String]) -> Result<()> {
    let mut rate = Vec::new();
    let mut med = Vec::new();
    for opt in &c.optimizer {
        let mut rv = vec![vec![None; c.batch.len()]; c.n.len()];
        let mut mv = vec![vec![None; c.batch.len()]; c.n.len()];
        for (ni, &n) in c.n.iter().enumerate() {
            for (bi, &b) in c.batch.iter().enumerate() {
                let mine: Vec<&String> = cells
                    .iter()
                    .zip(rows)
                    .filter(|(cell, _)| cell.n == n && cell.batch == b && &cell.optimizer == opt)
                    .map(|(_, r)| r)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let field = |r: &str, i: usize| r.split(',').nth(i).unwrap_or("").to_string();
                let ok: Vec<f64> = mine
                    .iter()
                    .filter(|r| field(r, 11) == "success")
                    .filter_map(|r| field(r, 12).parse().ok())
                    .collect();
                rv[ni][bi] = Some(ok.len() as f64 / mine.len() as f64);
                mv[ni][bi] = Some(if ok.is_empty() {
                    f64::NAN
                } else {
                    crate::snr::median(ok)
                });
            }
        }
        let steps_hi = mv
            .iter()
            .flatten()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max);
        let base = |title: String, values, lo, hi, log, reverse| Heat {
            title,
            x_label: "batch".into(),
            y_label: "N".into(),
            cols: c.batch.iter().map(|b| b.to_string()).collect(),
            rows: c.n.iter().map(|n| n.to_string()).collect(),
            values,
            lo,
            hi,
            log,
            reverse,
        };
        rate.push(base(format!("{opt}: success rate"), rv, 0.0, 1.0, false, false));
        med.push(base(
            format!("{opt}: median steps to success"),
            mv,
            1.0,
            steps_hi.max(2.0),
            true,
            true,
        ));
    }
    let h = (90 + 50 * c.n.len() as u32).max(320);
    let w = (120 + 90 * c.batch.len() as u32).max(360);
    heatmaps(&c.out.join("success_rate.png"), &rate, w, h)?;
    heatmaps(&c.out.join("median_steps.png"), &med, w, h)
}
