//! Measurements of the loss landscape that return structs and print nothing: gradient
//! signal-to-noise per group ([`snr`], its fits and files in [`snr_report`]), the twiddle-modulus scan ([`rsweep`]) and the anatomy
//! of a point, stalls included ([`anatomy`]), and the dense curvature report ([`curvature`]).

pub mod anatomy;
pub mod curvature;
pub mod rsweep;
pub mod snr;
pub mod snr_report;
