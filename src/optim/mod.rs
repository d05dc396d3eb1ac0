//! Every optimizer, as one enum ([`Optimizer`]) with its capabilities, and the state machine
//! that steps the parameters on the host ([`Method`]): gradient updates ([`update`]: adam,
//! sgd, phase, phase-sgd, dgn, with torch's [`adam`]), exact block least squares ([`als`]) and
//! Levenberg-Marquardt ([`lm`]); learning-rate schedules ([`schedule`]); the checkpointable
//! state ([`OptState`]).
//!
//! Adding an optimizer: an arm in [`Optimizer`] (with its name and capabilities) and its
//! module; the compiler then lists every `match` that must learn it ([`Method`], and
//! [`update::Update`] for a gradient optimizer).

pub mod adam;
pub mod als;
pub mod lm;
pub mod schedule;
pub mod update;

pub use adam::{Adam, AdamState, BETA2};
pub use lm::Lm;
pub use schedule::Schedule;
pub use update::{Update, DGN_DAMPING};

use crate::error::{Error, Result};
use num_complex::Complex64 as C64;

/// An optimizer `train --optimizer` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Optimizer {
    /// torch.optim.Adam (the seed's).
    Adam,
    /// torch.optim.SGD, optionally with momentum.
    Sgd,
    /// Adam on (M, twiddle angles): twiddles kept on the unit circle.
    Phase,
    /// SGD on (M, twiddle angles).
    PhaseSgd,
    /// The gradient preconditioned by the exact Gauss-Newton diagonal.
    Dgn,
    /// Levenberg-Marquardt on the population loss (CPU).
    Lm,
    /// Exact per-stage least squares (CPU).
    Als,
}

impl Optimizer {
    /// Every optimizer, in the order help and errors list them.
    pub const ALL: [Optimizer; 7] = [
        Optimizer::Adam,
        Optimizer::Sgd,
        Optimizer::Phase,
        Optimizer::PhaseSgd,
        Optimizer::Dgn,
        Optimizer::Lm,
        Optimizer::Als,
    ];

    /// The name `--optimizer` takes (and checkpoints and sweep CSVs record).
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Adam => "adam",
            Optimizer::Sgd => "sgd",
            Optimizer::Phase => "phase",
            Optimizer::PhaseSgd => "phase-sgd",
            Optimizer::Dgn => "dgn",
            Optimizer::Lm => "lm",
            Optimizer::Als => "als",
        }
    }

    /// Names joined by ", ".
    pub fn names(it: impl IntoIterator<Item = Optimizer>) -> String {
        it.into_iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
    }

    /// Whether it is a gradient step (and so also runs with the gradient on the GPU).
    pub fn on_gpu(self) -> bool {
        match self {
            Optimizer::Adam | Optimizer::Sgd | Optimizer::Phase | Optimizer::PhaseSgd | Optimizer::Dgn => true,
            Optimizer::Lm | Optimizer::Als => false,
        }
    }

    /// Whether `--momentum` means something to it.
    pub fn takes_momentum(self) -> bool {
        matches!(self, Optimizer::Sgd | Optimizer::PhaseSgd)
    }

    /// Whether `--beta2` means something to it: the Adam-based updates (adam, phase).
    pub fn takes_beta2(self) -> bool {
        matches!(self, Optimizer::Adam | Optimizer::Phase)
    }

    /// Whether `--lr` (and a schedule) means something to it: ALS and LM take exact steps.
    pub fn uses_lr(self) -> bool {
        self.on_gpu()
    }

    /// Whether it fits the population loss only (then the data mode is always population).
    pub fn population_only(self) -> bool {
        matches!(self, Optimizer::Lm)
    }

    /// The checkpoint slots its state needs.
    pub fn slots(self, momentum: f64) -> &'static [&'static str] {
        match self {
            Optimizer::Adam | Optimizer::Phase => &["m", "v"],
            Optimizer::Sgd | Optimizer::PhaseSgd if momentum != 0.0 => &["buf"],
            Optimizer::Lm => &["lambda"],
            _ => &[],
        }
    }
}

impl std::fmt::Display for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Optimizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Optimizer::ALL.into_iter().find(|o| o.name() == s).ok_or_else(|| {
            Error::input(format!(
                "optimizer '{s}' is unknown (accepted: {})",
                Optimizer::names(Optimizer::ALL)
            ))
        })
    }
}

/// An optimizer's state in a backend-neutral form, for checkpoints: the step count and named
/// per-parameter slots (for Adam: `m` and `v`, re/im per complex parameter).
#[derive(Clone, Debug, PartialEq)]
pub struct OptState {
    /// Steps taken.
    pub step: u64,
    /// Named slots, each one value per complex parameter.
    pub slots: Vec<(String, Vec<C64>)>,
}

impl OptState {
    /// The slot called `name`.
    pub fn slot(&self, name: &str) -> Option<&[C64]> {
        self.slots.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

impl From<&AdamState> for OptState {
    fn from(s: &AdamState) -> Self {
        OptState {
            step: s.step,
            slots: vec![("m".into(), s.m.clone()), ("v".into(), s.v.clone())],
        }
    }
}

/// How a host step changes the parameters, with its state.
#[derive(Clone, Debug)]
pub enum Method {
    /// A gradient update (adam, sgd, phase, phase-sgd, dgn).
    Grad(Update),
    /// One ALS sweep per step.
    Als {
        /// Sweeps taken.
        step: u64,
    },
    /// One Levenberg-Marquardt step per step.
    Lm(Lm, u64),
}

impl Method {
    /// A fresh method for `optimizer` over `len` complex parameters.
    pub fn new(optimizer: Optimizer, len: usize, momentum: f64, beta2: f64) -> Result<Self> {
        Ok(match optimizer {
            Optimizer::Als => Method::Als { step: 0 },
            Optimizer::Lm => Method::Lm(Lm::new(), 0),
            o @ (Optimizer::Adam | Optimizer::Sgd | Optimizer::Phase | Optimizer::PhaseSgd | Optimizer::Dgn) => {
                Method::Grad(Update::new(o, len, momentum, beta2)?)
            }
        })
    }

    /// Which optimizer this is.
    pub fn optimizer(&self) -> Optimizer {
        match self {
            Method::Grad(u) => u.optimizer(),
            Method::Als { .. } => Optimizer::Als,
            Method::Lm(..) => Optimizer::Lm,
        }
    }

    /// The state for a checkpoint.
    pub fn state(&self) -> OptState {
        match self {
            Method::Grad(u) => u.state(),
            Method::Als { step } => OptState {
                step: *step,
                slots: Vec::new(),
            },
            Method::Lm(lm, step) => OptState {
                step: *step,
                slots: vec![("lambda".into(), vec![C64::new(lm.lambda, 0.0)])],
            },
        }
    }

    /// Continue from a checkpoint's state.
    pub fn restore(&mut self, s: &OptState) -> Result<()> {
        match self {
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
        Ok(())
    }
}
