//! The GPU path: WGSL kernels (shaders/*.wgsl) in f32 (or f64 where the adapter has
//! SHADER_F64), driven through wgpu; same wiring, data generator and Adam as the CPU path.

pub mod context;
pub mod gradcheck;
pub mod model;

pub use context::{Gpu, Precision};
pub use model::{GpuBatch, GpuModel, Kernel, ModelOptions};
