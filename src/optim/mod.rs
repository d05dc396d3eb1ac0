//! Optimizers over the complex parameter vector (M then twiddles), and their checkpointable state.

mod adam;
mod update;

pub use adam::{Adam, AdamState};
pub use update::{check_optimizer, required_slots, Schedule, Update, DGN_DAMPING, GPU_OPTIMIZERS, OPTIMIZERS};

use num_complex::Complex64 as C64;

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
