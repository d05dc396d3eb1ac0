//! Whole experiments built from training runs and measurements: the learnability grid
//! ([`sweep`], cut into cluster shards and merged by [`shard`]), the seed document's claims ([`claims`]) and step throughput ([`mod@bench`]).

pub mod bench;
pub mod claims;
pub mod shard;
pub mod sweep;
