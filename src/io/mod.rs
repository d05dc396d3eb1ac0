//! Files in and out: `.npy`/`.npz` read and written atomically ([`npy`]), output directories
//! held exclusively ([`lock`]), allocations checked against memory
//! ([`memory`]), PNG charts and heat maps ([`plot`]), and reports as tables of named columns
//! ([`table`]).

pub mod lock;
pub mod memory;
pub mod npy;
pub mod plot;
pub mod table;
