//! The GPU path: WGSL kernels in f32 (or f64 where the adapter has SHADER_F64), driven
//! through wgpu; same wiring, data generator and Adam as the CPU path. `target` names what a
//! module is built for (precision, backend), `context` opens devices, `profile` emulates
//! platforms' limits, `abi` is the host/shader interface (the shared sources and sizes),
//! `choice` picks the kernel shape and plan, `build` builds the shapes, `model` owns buffers
//! and the step, `fused` plans the on-chip kernel and `fused_wgsl` writes it, `dispatch` caps
//! one dispatch's work, `timing` reads a step's GPU timestamps, `pack` runs many cells in one
//! step, `multi` spreads a step over several adapters, `gradcheck` compares against the f64
//! CPU path, `modules` lists every module the path can build. Each imports only those before
//! it in this list.

pub mod abi;
mod build;
pub mod choice;
pub mod context;
pub mod dispatch;
pub mod fused;
pub mod gradcheck;
pub mod model;
pub mod modules;
pub mod multi;
pub mod pack;
pub mod profile;
pub mod target;
pub mod timing;

pub use abi::CellStep;
pub use context::Gpu;
pub use dispatch::DispatchCap;
pub use model::{AdamHyper, GpuBatch, GpuModel, Kernel, ModelOptions};
pub use pack::PackNeeds;
pub use target::{Precision, Target};
