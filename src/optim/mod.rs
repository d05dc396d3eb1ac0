//! Optimizers over the complex parameter vector (M then twiddles).

mod adam;

pub use adam::{Adam, AdamState};
