//! fftlearn: learn the radix-2 real FFT from data by gradient methods, with an exact f64 CPU
//! path and a WGSL GPU path that share one wiring ([`model::network`]) and one data generator
//! ([`model::rng`]).
//!
//! The modules, from the bottom up (each imports only from those above it in this list):
//! - [`error`], [`given`], [`interrupt`], [`io`]: errors with exit codes, the settings a user
//!   gave as their front end names them, Ctrl-C/SIGTERM, npy/npz and plots;
//! - [`model`]: the network's wiring, parameters and init schemes, the counter-based
//!   generator and the data;
//! - [`backend`]: where the forward and backward passes run (the f64 CPU path, the GPU
//!   path) and the one `--device auto` choice;
//! - [`objective`]: the population problem, the exact Hessian and Gauss-Newton operators;
//! - [`optim`]: every optimizer (one enum), its update rule and state, the schedules;
//! - [`train`]: the typed run config, metrics, checkpoints, the steppers, the one step loop,
//!   and `train`'s procedure from a request to a summary ([`train::job`]);
//! - [`analysis`]: measurements that return structs (gradient SNR, the modulus scan);
//! - [`experiments`]: sweeps, the seed document's claims, throughput benchmarks.
//!
//! The command-line interface lives in the binary (`src/main.rs`, `src/cli/`), not here.

pub mod analysis;
pub mod backend;
pub mod error;
pub mod experiments;
pub mod given;
pub mod interrupt;
pub mod io;
pub mod model;
pub mod objective;
pub mod optim;
pub mod train;

pub use error::{Error, Result};
