//! Whole experiments built from training runs and measurements: the learnability grid
//! ([`sweep`], its cells run in [`packs`], cut into cluster shards and merged by [`shard`], summarised over seeds by [`summary`]), the seed document's claims ([`claims`]) and step throughput ([`mod@bench`]).

pub mod bench;
pub mod claims;
pub mod packs;
pub mod shard;
pub mod summary;
pub mod sweep;
