//! Gradient-based updates on the host (f64): Adam, SGD with momentum, phase-only (Adam or
//! SGD on the twiddle angles), and the diagonal Gauss-Newton preconditioned gradient. ALS and
//! LM, which are not gradient steps, are [`super::als`] and [`super::lm`]; schedules are
//! [`super::schedule`].

use super::{Adam, AdamState, OptState, Optimizer};
use crate::backend::cpu::Grad;
use crate::error::{Error, Result};
use crate::model::params::Params;
use num_complex::Complex64 as C64;

/// A host-side gradient update with its state.
#[derive(Clone, Debug)]
pub enum Update {
    /// torch.optim.Adam with betas (0.9, beta2).
    Adam(AdamState, f64),
    /// torch.optim.SGD (dampening 0, no Nesterov): buf = mu buf + g (buf = g at the first
    /// step), p -= lr buf; plain p -= lr g when mu = 0.
    Sgd {
        /// Momentum mu.
        momentum: f64,
        /// Steps taken.
        step: u64,
        /// Momentum buffer.
        buf: Vec<C64>,
    },
    /// Phase-only: twiddles w = exp(i theta) (moduli are dropped at the first step), Adam on
    /// (M, theta); theta is re-read from the twiddles each step.
    PhaseAdam(AdamState, f64),
    /// Phase-only with SGD on (M, theta).
    PhaseSgd {
        /// Momentum.
        momentum: f64,
        /// Steps taken.
        step: u64,
        /// Momentum buffer.
        buf: Vec<C64>,
    },
    /// Diagonal Gauss-Newton: p_j -= lr g_j / (D_j + damping max D), D the exact GN diagonal.
    Dgn {
        /// Steps taken.
        step: u64,
    },
}

/// Relative damping of the diagonal Gauss-Newton step.
pub const DGN_DAMPING: f64 = 1e-8;

fn sgd(momentum: f64, step: u64, buf: &mut [C64], x: &mut [C64], g: &[C64], lr: f64) {
    if momentum == 0.0 {
        for (p, g) in x.iter_mut().zip(g) {
            *p -= lr * g;
        }
        return;
    }
    for ((p, b), g) in x.iter_mut().zip(buf.iter_mut()).zip(g) {
        *b = if step == 1 { *g } else { momentum * *b + g };
        *p -= lr * *b;
    }
}

/// (M, theta) packed as complex values (theta in the real part) and their gradient.
fn phase_pack(p: &Params, g: &Grad) -> (Vec<C64>, Vec<C64>) {
    let mut x: Vec<C64> = p.m.to_vec();
    let mut gx: Vec<C64> = g.m.to_vec();
    for (w, gw) in p.tw.iter().zip(&g.tw) {
        x.push(C64::new(w.im.atan2(w.re), 0.0));
        // dL/dtheta = dL/dRe * (-Im w) + dL/dIm * Re w for w = exp(i theta)
        gx.push(C64::new(-gw.re * w.im + gw.im * w.re, 0.0));
    }
    (x, gx)
}

fn phase_unpack(p: &mut Params, x: &[C64]) {
    p.m.copy_from_slice(&x[..4]);
    for (w, t) in p.tw.iter_mut().zip(&x[4..]) {
        *w = C64::new(t.re.cos(), t.re.sin());
    }
}

impl Update {
    /// A fresh update for `optimizer` (a gradient optimizer) over `len` complex parameters.
    pub fn new(optimizer: Optimizer, len: usize, momentum: f64, beta2: f64) -> Result<Self> {
        Ok(match optimizer {
            Optimizer::Adam => Update::Adam(AdamState::new(len), beta2),
            Optimizer::Sgd => Update::Sgd {
                momentum,
                step: 0,
                buf: vec![C64::default(); len],
            },
            Optimizer::Phase => Update::PhaseAdam(AdamState::new(len), beta2),
            Optimizer::PhaseSgd => Update::PhaseSgd {
                momentum,
                step: 0,
                buf: vec![C64::default(); len],
            },
            Optimizer::Dgn => Update::Dgn { step: 0 },
            other @ (Optimizer::Lm | Optimizer::Als) => {
                return Err(Error::input(format!(
                    "optimizer '{other}' is not a gradient optimizer (those are: {})",
                    Optimizer::names(Optimizer::ALL.into_iter().filter(|o| o.on_gpu()))
                )))
            }
        })
    }

    /// Whether the update needs the Gauss-Newton diagonal.
    pub fn needs_curvature(&self) -> bool {
        matches!(self, Update::Dgn { .. })
    }

    /// Apply one update with learning rate `lr`; `diag` is the GN diagonal (reals) for `dgn`.
    pub fn apply(&mut self, p: &mut Params, g: &Grad, lr: f64, diag: Option<&[f64]>) {
        match self {
            Update::Adam(s, beta2) => {
                let mut x = p.flat();
                Adam::with_beta2(lr, *beta2).step(s, &mut x, &g.flat());
                p.set_flat(&x);
            }
            Update::Sgd { momentum, step, buf } => {
                *step += 1;
                let mut x = p.flat();
                sgd(*momentum, *step, buf, &mut x, &g.flat(), lr);
                p.set_flat(&x);
            }
            Update::PhaseAdam(s, beta2) => {
                let (mut x, gx) = phase_pack(p, g);
                Adam::with_beta2(lr, *beta2).step(s, &mut x, &gx);
                phase_unpack(p, &x);
            }
            Update::PhaseSgd { momentum, step, buf } => {
                *step += 1;
                let (mut x, gx) = phase_pack(p, g);
                sgd(*momentum, *step, buf, &mut x, &gx, lr);
                phase_unpack(p, &x);
            }
            Update::Dgn { step } => {
                *step += 1;
                let d = diag.expect("dgn is given the GN diagonal");
                let floor = DGN_DAMPING * d.iter().copied().fold(0.0, f64::max);
                let mut x = p.flat();
                for (c, (z, gz)) in x.iter_mut().zip(g.flat()).enumerate() {
                    let (dr, di) = (d[2 * c] + floor, d[2 * c + 1] + floor);
                    if dr > 0.0 {
                        z.re -= lr * gz.re / dr;
                    }
                    if di > 0.0 {
                        z.im -= lr * gz.im / di;
                    }
                }
                p.set_flat(&x);
            }
        }
    }

    /// The state for a checkpoint.
    pub fn state(&self) -> OptState {
        match self {
            Update::Adam(s, _) | Update::PhaseAdam(s, _) => OptState::from(s),
            Update::Sgd { step, buf, momentum } | Update::PhaseSgd { step, buf, momentum } => OptState {
                step: *step,
                slots: if *momentum != 0.0 {
                    vec![("buf".into(), buf.clone())]
                } else {
                    Vec::new()
                },
            },
            Update::Dgn { step } => OptState {
                step: *step,
                slots: Vec::new(),
            },
        }
    }

    /// Which optimizer this is.
    pub fn optimizer(&self) -> Optimizer {
        match self {
            Update::Adam(..) => Optimizer::Adam,
            Update::Sgd { .. } => Optimizer::Sgd,
            Update::PhaseAdam(..) => Optimizer::Phase,
            Update::PhaseSgd { .. } => Optimizer::PhaseSgd,
            Update::Dgn { .. } => Optimizer::Dgn,
        }
    }

    /// Continue from a checkpoint's state (the slots named by [`Optimizer::slots`]).
    pub fn restore(&mut self, s: &OptState) -> Result<()> {
        let get = |name: &str, len: usize| {
            s.slot(name)
                .filter(|v| v.len() == len)
                .map(|v| v.to_vec())
                .ok_or_else(|| Error::input(format!("optimizer state has no slot '{name}' of {len} values")))
        };
        match self {
            Update::Adam(a, _) | Update::PhaseAdam(a, _) => {
                let len = a.m.len();
                *a = AdamState {
                    step: s.step,
                    m: get("m", len)?,
                    v: get("v", len)?,
                };
            }
            Update::Sgd { step, buf, momentum } | Update::PhaseSgd { step, buf, momentum } => {
                *step = s.step;
                if *momentum != 0.0 {
                    *buf = get("buf", buf.len())?;
                }
            }
            Update::Dgn { step } => *step = s.step,
        }
        Ok(())
    }
}
