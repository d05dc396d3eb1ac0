//! What a generated module is built for: its real type ([`Precision`]) and the backend
//! whose shader language it is translated into ([`Target`]). The bottom of the GPU path:
//! it imports nothing of it.

/// Float precision of the GPU kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 (every adapter).
    #[default]
    F32,
    /// f64 (adapters with SHADER_F64).
    F64,
}

impl Precision {
    /// Bytes per real.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
    /// The WGSL type.
    pub fn wgsl(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }
}

/// The backends wgpu drives, as far as the shaders are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Vulkan (SPIR-V).
    Vulkan,
    /// Metal (MSL).
    Metal,
    /// DX12 with DXC (HLSL shader model 6.0 and up).
    Dx12Dxc,
    /// DX12 with FXC (HLSL shader model 5.1: no 64-bit integers).
    Dx12Fxc,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [Target::Vulkan, Target::Metal, Target::Dx12Dxc, Target::Dx12Fxc];

    /// Why the project would not run a module of `prec` with `int64` on this target, if it
    /// would not: wgpu 30 offers SHADER_F64 on Vulkan only, and FXC compiles no 64-bit
    /// integer arithmetic (the 16-bit-limb Philox runs there instead).
    pub fn refuses(self, prec: Precision, int64: bool) -> Option<String> {
        if prec == Precision::F64 && self != Target::Vulkan {
            return Some(format!(
                "--precision f64 needs SHADER_F64, which wgpu offers on Vulkan only, not on {self:?}; use --precision f32"
            ));
        }
        if int64 && self == Target::Dx12Fxc {
            return Some("FXC (shader model 5.1) has no 64-bit integers: the 16-bit-limb Philox runs there".into());
        }
        None
    }
}
