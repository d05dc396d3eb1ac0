//! The steppers a run drives ([`Backend`]): [`HostBackend`] keeps f64 master parameters on
//! the host and takes the gradient from the CPU path or the GPU (every optimizer on the CPU;
//! the gradient optimizers on the GPU); [`GpuBackend`] is Adam on minibatches entirely on the
//! device. [`backend_for`] picks the one a config asks for.

use super::config::{BackendKind, DataMode, TrainConfig, UpdateSite};
use crate::backend::cpu::{self, Grad};
use crate::backend::gpu::multi::MultiGpu;
use crate::backend::gpu::{GpuBatch, GpuModel};
use crate::error::{Error, Result};
use crate::model::data::Batch;
use crate::model::network::Network;
use crate::model::params::Params;
use crate::model::rng::Stream;
use crate::objective::problem::{gn_diagonal, Problem};
use crate::optim::{als, Adam, AdamState, Method, OptState, Optimizer, Schedule};

/// A training backend: owns parameters and optimizer state, takes steps.
pub trait Backend {
    /// Description of where it runs (for the log).
    fn describe(&self) -> String;
    /// What a resume must run on.
    fn kind(&self) -> BackendKind;
    /// Where the update runs (a resume must keep it).
    fn update(&self) -> UpdateSite;
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

/// The backend a (validated) config asks for, starting at `p`: on the CPU path when `model`
/// is `None`; on the GPU, Adam on minibatches runs entirely on the device and every other
/// gradient optimizer (and population data) takes the gradient from the device and updates
/// f64 master parameters on the host.
pub fn backend_for(cfg: &TrainConfig, p: Params, model: Option<GpuModel>) -> Result<Box<dyn Backend>> {
    Ok(match model {
        None => Box::new(HostBackend::new(cfg, p, None)?),
        Some(m) if cfg.optimizer == Optimizer::Adam && cfg.data == DataMode::Minibatch => {
            let mut b = GpuBackend::new(m, cfg.lr, cfg.batch, cfg.seed);
            b.schedule = cfg.schedule;
            b.adam.beta2 = cfg.beta2;
            b.total = cfg.steps;
            Box::new(b)
        }
        Some(m) => Box::new(HostBackend::new(cfg, p, Some(m))?),
    })
}

/// The population problem, built on first use.
#[derive(Default)]
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
pub(crate) fn to_population(mut g: Grad, n: usize) -> Grad {
    let n = n as f64;
    g.loss *= n;
    for z in g.m.iter_mut().chain(g.tw.iter_mut()) {
        *z *= n;
    }
    g
}

/// Where a host stepper's gradient comes from.
enum Source {
    /// The exact f64 CPU path.
    Cpu,
    /// One GPU model.
    Gpu(Box<GpuModel>),
    /// Several adapters, a part of each batch each (`--adapters`).
    Multi(MultiGpu),
}

/// f64 master parameters on the host, the gradient from the CPU path, a GPU model or several.
pub struct HostBackend {
    p: Params,
    method: Method,
    source: Source,
    lr: f64,
    schedule: Schedule,
    total: u32,
    batch: usize,
    seed: u64,
    population_data: bool,
    /// The population problem (identity inputs, exact targets): population data, ALS on the
    /// population and dgn's curvature.
    pop: Population,
}

impl HostBackend {
    /// The backend for a (validated) config starting at `p`; `gpu` computes the gradient when
    /// given (gradient optimizers only).
    pub fn new(cfg: &TrainConfig, p: Params, gpu: Option<GpuModel>) -> Result<Self> {
        if gpu.is_some() && !cfg.optimizer.on_gpu() {
            return Err(Error::input(format!(
                "optimizer '{}' runs on the CPU f64 path only",
                cfg.optimizer
            )));
        }
        Ok(HostBackend {
            method: Method::new(cfg.optimizer, p.len(), cfg.momentum, cfg.beta2)?,
            p,
            source: gpu.map_or(Source::Cpu, |m| Source::Gpu(Box::new(m))),
            lr: cfg.lr,
            schedule: cfg.schedule,
            total: cfg.steps,
            batch: cfg.batch,
            seed: cfg.seed,
            population_data: cfg.data == DataMode::Population,
            pop: Population::default(),
        })
    }

    /// The backend for a (validated) config whose minibatches are split over several adapters
    /// (`--adapters`): every gradient optimizer, updated on the host.
    pub fn multi(cfg: &TrainConfig, p: Params, mut multi: MultiGpu) -> Result<Self> {
        if cfg.data != DataMode::Minibatch {
            return Err(Error::input(
                "--adapters splits each step's minibatch over the adapters; with --data population use one adapter",
            ));
        }
        multi.set_params(&p);
        let mut b = HostBackend::new(cfg, p, None)?;
        if !cfg.optimizer.on_gpu() {
            return Err(Error::input(format!(
                "optimizer '{}' runs on the CPU f64 path only",
                cfg.optimizer
            )));
        }
        b.source = Source::Multi(multi);
        Ok(b)
    }

    /// The update of step `step` from its loss and gradient `g` (a gradient optimizer; a
    /// finite loss): what [`Backend::step`] does after taking the gradient. A GPU pack takes
    /// every cell's gradient in one step and updates each cell's host state with this.
    pub fn update(&mut self, step: u32, g: &Grad) -> Result<f64> {
        let Method::Grad(upd) = &mut self.method else {
            return Err(Error::runtime(format!(
                "optimizer '{}' takes no gradient step",
                self.method.optimizer()
            )));
        };
        let diag = upd
            .needs_curvature()
            .then(|| gn_diagonal(&self.p, self.pop.get(&self.p.net)));
        let lr = self.schedule.lr(self.lr, step, self.total);
        upd.apply(&mut self.p, g, lr, diag.as_deref());
        Ok(g.loss)
    }

    /// The parameters, without a copy.
    pub fn params_ref(&self) -> &Params {
        &self.p
    }

    /// Adam at a constant `lr` on Gaussian minibatches (the seed's setting) on the CPU path.
    pub fn cpu_adam(p: Params, lr: f64, batch: usize, seed: u64) -> Self {
        let cfg = TrainConfig {
            n: p.net.n(),
            lr,
            batch,
            seed,
            ..TrainConfig::default()
        };
        HostBackend::new(&cfg, p, None).expect("adam is a host optimizer")
    }
}

/// The loss and gradient of one step's data: the CPU path or the GPU model, minibatch or
/// population.
fn gradient(source: &Source, p: &Params, pop: &mut Population, population: bool, batch: Batch) -> Result<Grad> {
    let n = p.net.n();
    let gpu = match source {
        Source::Multi(m) => {
            return match batch {
                Batch::Gaussian {
                    seed,
                    stream,
                    step,
                    size,
                } => m.loss_grad(seed, stream, step, size),
                _ => Err(Error::runtime("a multi-adapter step takes Gaussian data")),
            }
        }
        Source::Gpu(g) => Some(&**g),
        Source::Cpu => None,
    };
    Ok(match (gpu, population) {
        // a huge minibatch answers an interrupt mid-step: the step is abandoned before its
        // update, so the backend still holds the previous step's state
        (None, false) => cpu::loss_grad_until(p, &batch, &crate::interrupt::requested)
            .ok_or_else(|| Error::interrupted("interrupted within the step, before its update"))?,
        (None, true) => to_population(cpu::loss_grad(p, &Batch::Identity), n),
        (Some(m), false) => match batch {
            Batch::Gaussian {
                seed,
                stream,
                step,
                size,
            } => m.loss_grad(&GpuBatch::Gaussian {
                seed,
                stream,
                step,
                size,
            })?,
            _ => return Err(Error::runtime("a GPU minibatch step takes Gaussian data")),
        },
        (Some(m), true) => {
            let (x, t) = pop.get(&p.net).data();
            to_population(m.loss_grad(&GpuBatch::Host { x, target: Some(t) })?, n)
        }
    })
}

impl Backend for HostBackend {
    fn describe(&self) -> String {
        match &self.source {
            Source::Cpu => format!("cpu f64 ({} threads)", rayon::current_num_threads()),
            Source::Gpu(m) => format!(
                "gpu {} {} (gradient on the device, {} update on the host in f64)",
                m.precision().wgsl(),
                m.gpu().name(),
                self.method.optimizer()
            ),
            Source::Multi(m) => format!(
                "gpu {} on {} adapters [{}] (gradient parts on the devices, summed and {} update on the host in f64)",
                m.precision().wgsl(),
                m.len(),
                m.names().join("; "),
                self.method.optimizer()
            ),
        }
    }
    fn kind(&self) -> BackendKind {
        match &self.source {
            Source::Cpu => BackendKind::CpuF64,
            Source::Gpu(m) => BackendKind::gpu(m.precision()),
            Source::Multi(m) => BackendKind::gpu(m.precision()),
        }
    }
    fn update(&self) -> UpdateSite {
        UpdateSite::HostF64
    }
    fn step(&mut self, step: u32) -> Result<f64> {
        let batch = Batch::Gaussian {
            seed: self.seed,
            stream: Stream::Data,
            step,
            size: self.batch,
        };
        let loss = match &mut self.method {
            Method::Grad(_) => {
                let g = gradient(&self.source, &self.p, &mut self.pop, self.population_data, batch)?;
                if !g.loss.is_finite() {
                    return Ok(f64::NAN);
                }
                self.update(step, &g)?
            }
            Method::Als { step: t } => {
                *t += 1;
                if self.population_data {
                    let net = self.p.net.clone();
                    als::als_sweep(&mut self.p, self.pop.get(&net))
                } else {
                    let prob = Problem::from_batch(&self.p.net, &batch);
                    als::als_sweep(&mut self.p, &prob)
                }
            }
            Method::Lm(lm, t) => {
                *t += 1;
                lm.step(&mut self.p)?
            }
        };
        match &mut self.source {
            Source::Gpu(m) => m.set_params(&self.p),
            Source::Multi(m) => m.set_params(&self.p),
            Source::Cpu => {}
        }
        Ok(loss)
    }
    fn params(&mut self) -> Result<Params> {
        Ok(self.p.clone())
    }
    fn params_finite(&self) -> bool {
        self.p.is_finite()
    }
    fn state(&mut self) -> Result<OptState> {
        Ok(self.method.state())
    }
    fn restore(&mut self, p: &Params, s: &OptState) -> Result<()> {
        self.method.restore(s)?;
        self.p = p.clone();
        match &mut self.source {
            Source::Gpu(m) => m.set_params(p),
            Source::Multi(m) => m.set_params(p),
            Source::Cpu => {}
        }
        Ok(())
    }
}

pub(crate) fn adam_state(s: &OptState, len: usize) -> Result<AdamState> {
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

/// Adam on minibatches entirely on the GPU: data, targets, forward, backward, reduction and
/// the update all stay on the device; only the loss comes back each step.
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

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        self.model.describe()
    }
    fn kind(&self) -> BackendKind {
        BackendKind::gpu(self.model.precision())
    }
    fn update(&self) -> UpdateSite {
        UpdateSite::device(self.model.precision())
    }
    fn step(&mut self, step: u32) -> Result<f64> {
        self.t += 1;
        let b = GpuBatch::Gaussian {
            seed: self.seed,
            stream: Stream::Data,
            step,
            size: self.batch,
        };
        let adam = Adam::with_beta2(self.schedule.lr(self.adam.lr, step, self.total), self.adam.beta2);
        self.model.adam_step(&b, &adam.hyper(), self.t)
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
