//! Files in and out: `.npy`/`.npz` read and written atomically ([`npy`]), output directories
//! held exclusively ([`lock`]), allocations checked against memory
//! ([`memory`]), and PNG charts and heat maps ([`plot`]).

pub mod lock;
pub mod memory;
pub mod npy;
pub mod plot;
