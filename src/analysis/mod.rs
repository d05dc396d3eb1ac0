//! Measurements of the loss landscape: gradient signal-to-noise per group ([`snr`], its fits
//! and files in [`snr_report`]), the twiddle-modulus scan ([`rsweep`]), the anatomy of a point,
//! stalls included ([`anatomy`], which returns structs; [`mod@inspect`], the `inspect` procedure
//! that reports it), and the dense curvature report ([`curvature`]).

pub mod anatomy;
pub mod curvature;
pub mod inspect;
pub mod rsweep;
pub mod snr;
pub mod snr_report;
