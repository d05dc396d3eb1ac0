//! Whole experiments built from training runs and measurements: the learnability grid
//! ([`grid`] its config and cells, [`cell`] one cell's run and row, [`sweep`] running them in [`packs`], cut into cluster shards and merged by [`shard`], summarised over seeds by [`summary`]), the seed document's claims ([`claims`]) and step throughput ([`mod@bench`]).

pub mod bench;
pub mod cell;
pub mod claims;
pub mod grid;
pub mod packs;
pub mod shard;
pub mod summary;
pub mod sweep;
