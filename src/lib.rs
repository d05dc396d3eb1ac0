//! fftlearn: learn the radix-2 real FFT from data by gradient methods, with an exact f64 CPU
//! path and a WGSL GPU path that share one wiring ([`network`]) and one data generator ([`rng`]).

pub mod bench;
pub mod checkpoint;
pub mod claims;
pub mod cli;
pub mod commands;
pub mod cpu;
pub mod data;
pub mod error;
pub mod gpu;
pub mod hessian;
pub mod interrupt;
pub mod measure;
pub mod network;
pub mod npyio;
pub mod optim;
pub mod params;
pub mod plot;
pub mod rng;
pub mod rsweep;
pub mod snr;
pub mod solvers;
pub mod sweep;
pub mod tomlish;
pub mod train;

pub use error::{Error, Result};
