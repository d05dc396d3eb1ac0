//! The model itself, independent of where it runs: the seed's wiring ([`network`]), the
//! parameters with their init schemes and `.npz` form ([`params`]), the counter-based
//! generator ([`rng`]) and the data a step consumes ([`data`]).

pub mod data;
pub mod network;
pub mod params;
pub mod rng;
