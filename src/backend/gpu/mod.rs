//! The GPU path: WGSL kernels in f32 (or f64 where the adapter has SHADER_F64), driven
//! through wgpu; same wiring, data generator and Adam as the CPU path. `context` opens
//! devices, `abi` is the host/shader interface, `model` owns buffers and the step, `fused`
//! generates the on-chip kernel, `gradcheck` compares against the f64 CPU path, `multi` spreads a step over several adapters,
//! `pack` runs many cells in one step, `dispatch` caps one dispatch's work.

pub mod abi;
mod build;
pub mod context;
pub mod dispatch;
pub mod fused;
pub mod gradcheck;
pub mod model;
pub mod modules;
pub mod multi;
pub mod pack;
pub mod profile;

pub use context::{Gpu, Precision};
pub use dispatch::DispatchCap;
pub use model::{AdamHyper, GpuBatch, GpuModel, Kernel, ModelOptions};
pub use pack::{CellStep, PackNeeds};
