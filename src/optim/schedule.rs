//! Learning-rate schedules over a run of a fixed number of steps.

use crate::error::{Error, Result};

/// A learning-rate schedule over a run of `total` steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// lr at every step (the seed's).
    Constant,
    /// lr * (1 + cos(pi (t - 1) / total)) / 2.
    Cosine,
    /// lr * gamma^floor((t - 1) / every).
    Step {
        /// Steps between decays.
        every: u32,
        /// Factor per decay.
        gamma: f64,
    },
}

impl std::str::FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::input(format!(
                "schedule '{s}' is not accepted (accepted: constant, cosine, step:EVERY:GAMMA with EVERY >= 1 and 0 < GAMMA <= 1)"
            ))
        };
        match s {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine),
            _ => {
                let rest = s.strip_prefix("step:").ok_or_else(bad)?;
                let (e, g) = rest.split_once(':').ok_or_else(bad)?;
                let every: u32 = e.parse().map_err(|_| bad())?;
                let gamma: f64 = g.parse().map_err(|_| bad())?;
                if every == 0 || !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(bad());
                }
                Ok(Schedule::Step { every, gamma })
            }
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Cosine => write!(f, "cosine"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
        }
    }
}

impl Schedule {
    /// Whether the learning rate at a step depends on the run's total steps (cosine): such a
    /// run cannot be extended on resume without changing the rates of steps already taken.
    pub fn uses_horizon(&self) -> bool {
        match self {
            Schedule::Cosine => true,
            Schedule::Constant | Schedule::Step { .. } => false,
        }
    }

    /// The learning rate at step `t` (from 1) of `total`.
    pub fn lr(&self, base: f64, t: u32, total: u32) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let x = (t.saturating_sub(1)) as f64 / total.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())
            }
            Schedule::Step { every, gamma } => base * gamma.powi(((t.saturating_sub(1)) / every) as i32),
        }
    }
}
