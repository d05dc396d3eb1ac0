//! Whole experiments built from training runs and measurements: the learnability grid
//! ([`sweep`]), the seed document's claims ([`claims`]) and step throughput ([`mod@bench`]).

pub mod bench;
pub mod claims;
pub mod sweep;
