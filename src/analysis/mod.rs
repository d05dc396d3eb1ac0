//! Measurements of the loss landscape that return structs and print nothing: gradient
//! signal-to-noise per group ([`snr`]) and the twiddle-modulus scan ([`rsweep`]).

pub mod rsweep;
pub mod snr;
