//! Files in and out: `.npy`/`.npz` read and written atomically ([`npy`]) and PNG charts and
//! heat maps ([`plot`]).

pub mod npy;
pub mod plot;
