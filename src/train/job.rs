//! One `train` run from a front end's request to its summary: [`Job::open`] takes a
//! [`Request`] (the settings the user gave, named through [`Given`]) and owns everything
//! between the arguments and the step loop: the defaults, the refusals that span several
//! settings, a resume's comparison with its checkpoint, the device choice and the backend.
//! [`Job::run`] then trains. The CLI and the Python module only translate their arguments
//! into a `Request` and print what the job writes to its log.

use super::checkpoint::{self, Checkpoint};
use super::config::{BackendKind, DataMode, TrainConfig};
use super::stepper::{backend_for, Backend, HostBackend};
use super::{open_run_dir, Start, Summary};
use crate::backend::gpu::Kernel;
use crate::backend::{self as be, Device, GpuChoice, Opened};
use crate::error::{Error, Result};
use crate::given::Given;
use crate::io::lock::DirLock;
use crate::model::params::Params;
use crate::optim::Optimizer;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A `train` request as a front end received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The run's settings: each one the user gave (see `given`), the default
    /// ([`TrainConfig::default`]) elsewhere. `backend`, `kernel` and `chunk` are ignored:
    /// they come from `device` and `gpu`; an ungiven `checkpoint_every` is derived from `steps`.
    pub config: TrainConfig,
    /// Which settings the user gave, and how the front end spells them.
    pub given: Given,
    /// Where to run (`auto`: a hardware GPU if there is one, else the CPU f64 path).
    pub device: Device,
    /// The GPU path's settings.
    pub gpu: GpuChoice,
    /// Adapters to spread each minibatch over (empty: one).
    pub adapters: Vec<String>,
    /// Continue the run in this directory from its checkpoint.
    pub resume: Option<PathBuf>,
    /// Replace a run `config.out` holds.
    pub overwrite: bool,
    /// Starting parameters given as values (in place of `config.init`; they fix N).
    pub params: Option<Params>,
}

impl Request {
    /// A request with every setting at its default, spelled in `given`'s style.
    pub fn new(given: Given) -> Self {
        Request {
            config: TrainConfig::default(),
            given,
            device: Device::Auto,
            gpu: GpuChoice::default(),
            adapters: Vec::new(),
            resume: None,
            overwrite: false,
            params: None,
        }
    }
}

/// A run ready to train: its directory locked, its config final, its backend open.
pub struct Job {
    cfg: TrainConfig,
    backend: Box<dyn Backend>,
    resume: Option<Checkpoint>,
    lock: DirLock,
}

impl Job {
    /// Check `req`, lock the run directory, and open the backend (its `[device]` lines and
    /// notes go to `log`).
    pub fn open(req: Request, log: &mut dyn Write) -> Result<Job> {
        let g = &req.given;
        let (dir, start) = match (&req.resume, req.overwrite) {
            (Some(_), true) => {
                return Err(Error::input(format!(
                    "{} and {} exclude each other: a resume continues the run it names",
                    g.name("resume"),
                    g.name("overwrite")
                )))
            }
            (Some(d), false) => (d.clone(), Start::Resume),
            (None, true) => (req.config.out.clone(), Start::Overwrite),
            (None, false) => (req.config.out.clone(), Start::Fresh),
        };
        if dir.as_os_str().is_empty() {
            return Err(Error::input(format!(
                "{}: an empty path (name the run directory)",
                g.with(if req.resume.is_some() { "resume" } else { "out" }, "")
            )));
        }
        if req.resume.is_some() && g.has("out") && !same_path(&req.config.out, &dir) {
            return Err(Error::input(format!(
                "{} conflicts with {}: a resumed run writes into its own directory",
                g.with("out", req.config.out.display()),
                g.with("resume", dir.display())
            )));
        }
        if req.resume.is_some() && req.params.is_some() {
            return Err(Error::input(format!(
                "{} given as parameters conflicts with {}: a resumed run continues from its checkpoint",
                g.name("init"),
                g.with("resume", dir.display())
            )));
        }
        // a new run is checked whole (settings, starting parameters) before its directory is
        // touched: a refused run, or one replacing another, leaves the directory as it was
        let fresh = match start {
            Start::Resume => None,
            _ => {
                let cfg = fresh_config(&req)?;
                let net = cfg.validate()?;
                refuse_unused(&req, &cfg)?;
                let p = match &req.params {
                    Some(p) => p.clone(),
                    None => cfg.init.params(&net, cfg.seed)?,
                };
                Some((cfg, p))
            }
        };
        let lock = open_run_dir(&dir, start)?;
        let (mut cfg, resume, p) = match fresh {
            Some((cfg, p)) => (cfg, None, p),
            None => {
                let ck = Checkpoint::load(&checkpoint::path_in(&dir))?;
                let cfg = resume_config(&req, &dir, &ck)?;
                cfg.validate()?;
                refuse_unused(&req, &cfg)?;
                let p = ck.params.clone();
                (cfg, Some(ck), p)
            }
        };
        if cfg.optimizer == Optimizer::Als && cfg.data == DataMode::Minibatch {
            writeln!(
                log,
                "[note] als on minibatches solves each step's {} samples exactly, an underdetermined fit for batch < N that need not approach the FFT (from the seed's init at N = 512 it stalls near relative operator error 0.8); {} solves the expected loss and recovers the FFT",
                cfg.batch,
                g.with("data", "population")
            )?;
        }
        let device = match &resume {
            Some(_) if cfg.backend.is_gpu() => Device::Gpu,
            Some(_) => Device::Cpu,
            // CPU-only solvers (lm, als) never try a GPU under auto
            None if !cfg.optimizer.on_gpu() => Device::Cpu,
            None => req.device,
        };
        let mut gpu = req.gpu.clone();
        // the kernel shape and chunking the run started with (they fix the reduction order)
        gpu.kernel = cfg.kernel;
        gpu.chunk = cfg.chunk;
        if resume.is_some() {
            // a resumed run keeps the precision it started with
            gpu.precision = cfg.backend.gpu_precision();
        }
        let backend: Box<dyn Backend> = match be::open_for(device, &gpu, &req.adapters, &p, g, false, log)? {
            Opened::Multi(multi) => {
                writeln!(log, "[device] each step: {}", multi.assignment(cfg.batch))?;
                Box::new(HostBackend::multi(&cfg, p, multi)?)
            }
            Opened::Gpu(m) => {
                // the shape that runs, not `auto`: a resume on another adapter keeps it (or
                // says why not)
                cfg.kernel = Some(m.kernel());
                backend_for(&cfg, p, Some(*m))?
            }
            Opened::Cpu => backend_for(&cfg, p, None)?,
        };
        cfg.backend = backend.kind();
        if start == Start::Overwrite {
            super::clear_run(&lock)?;
        }
        Ok(Job {
            cfg,
            backend,
            resume,
            lock,
        })
    }

    /// Where the run steps, in words.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Train to the end (or to divergence or an interrupt), writing the run's files and its
    /// log lines to `log`.
    pub fn run(mut self, log: &mut dyn Write) -> Result<Summary> {
        super::run(&self.cfg, self.backend.as_mut(), self.resume.take(), &self.lock, log)
    }
}

/// Whether two paths name the same place (the same file where both exist).
fn same_path(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// A new run's config: the request's settings, with N taken from starting parameters given as
/// values, and where it runs from `device` and `gpu`.
fn fresh_config(req: &Request) -> Result<TrainConfig> {
    let g = &req.given;
    let mut cfg = req.config.clone();
    if let Some(p) = &req.params {
        if g.has("n") && cfg.n != p.net.n() {
            return Err(Error::input(format!(
                "{} does not match init's parameters of N = {}: drop {}, or pass parameters of N = {}",
                g.with("n", cfg.n),
                p.net.n(),
                g.name("n"),
                cfg.n
            )));
        }
        cfg.n = p.net.n();
    }
    if !g.has("checkpoint_every") {
        cfg.checkpoint_every = TrainConfig::default_checkpoint_every(cfg.steps);
    }
    cfg.backend = match req.device {
        Device::Gpu => BackendKind::GpuF32,
        _ => BackendKind::CpuF64,
    };
    cfg.kernel = req.gpu.kernel;
    cfg.chunk = req.gpu.chunk;
    Ok(cfg)
}

/// With a resume: the checkpoint's config, with the allowed overrides applied and any
/// conflicting setting the user gave reported by name. Long on purpose: a table with one row
/// per kept setting (id, differs, given, stored), then the settings that may change.
fn resume_config(req: &Request, dir: &Path, ck: &Checkpoint) -> Result<TrainConfig> {
    let (a, g) = (&req.config, &req.given);
    let mut cfg = ck.config.clone();
    let gpu_kind = BackendKind::gpu(req.gpu.precision);
    // (setting id, differs from the checkpoint, the setting's value, the checkpoint's value)
    let name_of = |k: Option<Kernel>| k.map_or("auto", |k| k.name()).to_string();
    let chunk_of = |c: Option<usize>| c.map_or("default".to_string(), |c| c.to_string());
    let prec_of = |b: BackendKind| b.gpu_precision().wgsl();
    let checks: [(&str, bool, String, String); 14] = [
        (
            "optimizer",
            a.optimizer != cfg.optimizer,
            a.optimizer.to_string(),
            cfg.optimizer.to_string(),
        ),
        (
            "momentum",
            a.momentum != cfg.momentum,
            format!("{:e}", a.momentum),
            format!("{:e}", cfg.momentum),
        ),
        (
            "beta2",
            a.beta2 != cfg.beta2,
            format!("{:e}", a.beta2),
            format!("{:e}", cfg.beta2),
        ),
        (
            "schedule",
            a.schedule != cfg.schedule,
            a.schedule.to_string(),
            cfg.schedule.to_string(),
        ),
        ("data", a.data != cfg.data, a.data.to_string(), cfg.data.to_string()),
        ("n", a.n != cfg.n, a.n.to_string(), cfg.n.to_string()),
        (
            "batch",
            a.batch != cfg.batch,
            a.batch.to_string(),
            cfg.batch.to_string(),
        ),
        ("lr", a.lr != cfg.lr, format!("{:e}", a.lr), format!("{:e}", cfg.lr)),
        ("seed", a.seed != cfg.seed, a.seed.to_string(), cfg.seed.to_string()),
        ("init", a.init != cfg.init, a.init.to_string(), cfg.init.to_string()),
        (
            "print_every",
            a.print_every != cfg.print_every,
            a.print_every.to_string(),
            cfg.print_every.to_string(),
        ),
        (
            "precision",
            cfg.backend.is_gpu() && gpu_kind != cfg.backend,
            prec_of(gpu_kind).to_string(),
            prec_of(cfg.backend).to_string(),
        ),
        // `auto` (no kernel named) takes the shape the run recorded; on a CPU run these
        // settings are refused as unused instead
        (
            "kernel",
            cfg.backend.is_gpu() && req.gpu.kernel.is_some() && req.gpu.kernel != cfg.kernel,
            name_of(req.gpu.kernel),
            name_of(cfg.kernel),
        ),
        (
            "chunk",
            cfg.backend.is_gpu() && req.gpu.chunk != cfg.chunk,
            chunk_of(req.gpu.chunk),
            chunk_of(cfg.chunk),
        ),
    ];
    // (Python's train has no dispatch_cap or adapters)
    let may_change = match g.style() {
        crate::given::Style::Cli => format!(
            "{}, {}, {}, {}, {}, and {} where the update stays where it ran",
            g.name("steps"),
            g.name("checkpoint_every"),
            g.name("max_loss_ratio"),
            g.name("adapter"),
            g.name("dispatch_cap"),
            g.name("adapters")
        ),
        crate::given::Style::Python => "steps, checkpoint_every, max_loss_ratio, adapter".to_string(),
    };
    for (id, conflict, given, stored) in checks {
        if g.has(id) && conflict {
            return Err(Error::input(format!(
                "{} conflicts with the checkpoint's {id} = {stored} ({}); a resumed run keeps its config (may change: {may_change})",
                g.with(id, given),
                checkpoint::path_in(dir).display(),
            )));
        }
    }
    if g.has("device") {
        let want = match req.device {
            Device::Cpu => Some("cpu"),
            Device::Gpu => Some("gpu"),
            Device::Auto => None,
        };
        if let Some(w) = want.filter(|w| !cfg.backend.name().starts_with(w)) {
            return Err(Error::input(format!(
                "{} conflicts with the checkpoint's backend = {} ({}); a run resumes on the backend it started on",
                g.with("device", w),
                cfg.backend,
                checkpoint::path_in(dir).display()
            )));
        }
    }
    cfg.out = dir.to_path_buf();
    if g.has("steps") {
        if cfg.schedule.uses_horizon() && a.steps != ck.config.steps {
            return Err(Error::input(format!(
                "{}: the checkpoint's schedule {} is defined over its {} steps, and a resumed run keeps that horizon (resume without {}; for a longer run start a new one, e.g. with {})",
                g.with("steps", a.steps),
                cfg.schedule,
                ck.config.steps,
                g.name("steps"),
                g.with("init", checkpoint::path_in(dir).display())
            )));
        }
        cfg.steps = a.steps;
    }
    if g.has("checkpoint_every") {
        cfg.checkpoint_every = a.checkpoint_every;
    }
    if g.has("max_loss_ratio") {
        cfg.max_loss_ratio = a.max_loss_ratio;
    }
    // a last step whose evaluation an interrupt cut short: resuming completes its row and
    // writes the run's final files
    let pending = ck
        .metrics
        .last()
        .is_some_and(|m| m.step == ck.step && m.rel_op_err.is_nan());
    if cfg.steps <= ck.step && !(pending && ck.step == cfg.steps) {
        return Err(Error::input(format!(
            "{}: the checkpoint in {} is already at step {}; {}",
            if g.has("steps") {
                g.with("steps", cfg.steps)
            } else {
                format!("the run's {} steps are done", cfg.steps)
            },
            dir.display(),
            ck.step,
            if pending {
                format!(
                    "its last row is pending: resume with {} (or more) to complete it",
                    g.with("steps", ck.step)
                )
            } else {
                format!("pass {} above {} to continue", g.name("steps"), ck.step)
            }
        )));
    }
    Ok(cfg)
}

/// A setting that would change nothing in this run is refused, naming it (a silently
/// ignored setting is a wrong belief about what ran).
fn refuse_unused(req: &Request, cfg: &TrainConfig) -> Result<()> {
    let g = &req.given;
    let resumed = req.resume.is_some();
    if !cfg.optimizer.on_gpu() {
        g.refuse_gpu_settings(
            &format!(
                "this run is on the CPU f64 path (optimizer {} runs on the CPU only)",
                cfg.optimizer
            ),
            false,
        )?;
    } else if resumed && !cfg.backend.is_gpu() {
        g.refuse_gpu_settings("the run resumes on the CPU f64 path it started on", false)?;
    } else if req.device == Device::Cpu {
        g.refuse_gpu_settings(
            &format!("this run is on the CPU f64 path ({})", g.with("device", "cpu")),
            true,
        )?;
    }
    let lr_settings = g.names(&["lr", "schedule"]);
    if !cfg.optimizer.uses_lr() && !lr_settings.is_empty() && !resumed {
        return Err(Error::input(format!(
            "{} has no effect on optimizer {}: it takes exact steps, without a learning rate",
            lr_settings.join(", "),
            cfg.optimizer
        )));
    }
    if cfg.data == DataMode::Population && g.has("batch") && !resumed {
        return Err(Error::input(format!(
            "{} has no effect with {}: each step uses the N = {} identity vectors (the exact expected loss)",
            g.with("batch", cfg.batch),
            g.with("data", "population"),
            cfg.n
        )));
    }
    Ok(())
}
