//! Emulated adapter profiles: `FFTLEARN_ADAPTER_PROFILE=NAME` opens every device with a real
//! platform's limits and shader features, so that plan choice, fallbacks, the f64 refusal,
//! `devices` and the error messages run as they would there, on whatever adapter is present
//! (Mesa lavapipe in CI). A profile can only lower what the adapter offers: a limit above the
//! adapter's stays at the adapter's (and `devices` says so). The adapter's type is emulated
//! only for the default dispatch cap.

use crate::error::{Error, Result};

/// One platform's limits and shader features, as wgpu reports them there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The name `FFTLEARN_ADAPTER_PROFILE` takes.
    pub name: &'static str,
    /// What it stands for, and where its figures come from.
    pub about: &'static str,
    /// max_compute_workgroup_storage_size (bytes).
    pub workgroup_storage: u32,
    /// max_compute_invocations_per_workgroup (and workgroup size x).
    pub invocations: u32,
    /// max_compute_workgroups_per_dimension.
    pub workgroups_per_dimension: u32,
    /// max_storage_buffer_binding_size (bytes).
    pub storage_binding: u64,
    /// max_buffer_size (bytes), where the platform sets one below its storage bindings' range.
    pub buffer: Option<u64>,
    /// Whether the platform offers SHADER_F64.
    pub f64: bool,
    /// Whether it offers SHADER_INT64.
    pub int64: bool,
    /// The adapter type the platform has, where it has one (an Apple GPU is integrated): it
    /// sets the default dispatch cap ([`super::dispatch`]); plan choice follows the adapter's
    /// own type.
    pub device_type: Option<wgpu::DeviceType>,
}

const MIB: u64 = 1 << 20;
/// The storage binding wgpu reports on Metal and DX12 (2^31 - 1 bytes).
const I32_BINDING: u64 = (1 << 31) - 1;
/// The storage binding of Vulkan drivers with a 32-bit range (2^32 - 1 bytes).
const U32_BINDING: u64 = (1 << 32) - 1;

/// Every profile.
pub const PROFILES: [Profile; 6] = [
    Profile {
        name: "webgpu",
        about: "the WebGPU specification's default limits (wgpu::Limits::default()): 16 KiB of workgroup storage, 256 invocations, 128 MiB storage bindings; no 64-bit types",
        workgroup_storage: 16_384,
        invocations: 256,
        workgroups_per_dimension: 65_535,
        storage_binding: 128 * MIB,
        buffer: Some(256 * MIB),
        f64: false,
        int64: false,
        device_type: None,
    },
    Profile {
        name: "apple-m",
        about: "Apple M-series GPUs under Metal (Apple7 family and later, MSL 2.3+): 32 KiB of threadgroup memory, 1,024 threads per threadgroup; wgpu offers 64-bit integers there but no f64",
        workgroup_storage: 32_768,
        invocations: 1024,
        workgroups_per_dimension: 65_535,
        storage_binding: I32_BINDING,
        buffer: None,
        f64: false,
        int64: true,
        device_type: Some(wgpu::DeviceType::IntegratedGpu),
    },
    Profile {
        name: "dx12-dxc",
        about: "DX12 with the DXC compiler (shader model 6.0+): 32 KiB of groupshared memory and 1,024 threads per group (the D3D12 limits), 65,535 groups per dimension; 64-bit integers, no f64 in wgpu 30",
        workgroup_storage: 32_768,
        invocations: 1024,
        workgroups_per_dimension: 65_535,
        storage_binding: I32_BINDING,
        buffer: None,
        f64: false,
        int64: true,
        device_type: None,
    },
    Profile {
        name: "dx12-fxc",
        about: "DX12 with the FXC compiler (shader model 5.1): the D3D12 limits as dx12-dxc, and no 64-bit types (the 16-bit-limb Philox runs)",
        workgroup_storage: 32_768,
        invocations: 1024,
        workgroups_per_dimension: 65_535,
        storage_binding: I32_BINDING,
        buffer: None,
        f64: false,
        int64: false,
        device_type: None,
    },
    Profile {
        name: "amd-rdna",
        about: "AMD RDNA GPUs under Vulkan (RADV and AMD's driver): 64 KiB of shared memory, 1,024 invocations; f64 and 64-bit integers",
        workgroup_storage: 65_536,
        invocations: 1024,
        workgroups_per_dimension: 65_535,
        storage_binding: U32_BINDING,
        buffer: None,
        f64: true,
        int64: true,
        device_type: Some(wgpu::DeviceType::DiscreteGpu),
    },
    Profile {
        name: "intel-arc",
        about: "Intel Arc (Alchemist) GPUs under Vulkan (ANV): 64 KiB of shared memory, 1,024 invocations; 64-bit integers, no f64 (no FP64 units)",
        workgroup_storage: 65_536,
        invocations: 1024,
        workgroups_per_dimension: 65_535,
        storage_binding: U32_BINDING,
        buffer: None,
        f64: false,
        int64: true,
        device_type: Some(wgpu::DeviceType::DiscreteGpu),
    },
];

/// The environment variable that names a profile.
pub const ENV: &str = "FFTLEARN_ADAPTER_PROFILE";

impl Profile {
    /// The profile named `name`, or an error listing the names.
    pub fn named(name: &str) -> Result<Profile> {
        PROFILES.into_iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
            Error::input(format!(
                "{ENV}={name}: no such adapter profile (accepted: {})",
                names.join(", ")
            ))
        })
    }

    /// The profile the environment names, if any (unset or empty: none).
    pub fn from_env() -> Result<Option<Profile>> {
        match std::env::var(ENV) {
            Ok(v) if !v.trim().is_empty() => Profile::named(v.trim()).map(Some),
            _ => Ok(None),
        }
    }

    /// The adapter's limits and features as this platform would offer them: each limit the
    /// lower of the two, each 64-bit feature only where both have it. Also says which of the
    /// profile's limits the adapter could not reach.
    pub fn apply(
        &self,
        limits: &wgpu::Limits,
        features: wgpu::Features,
    ) -> (wgpu::Limits, wgpu::Features, Vec<String>) {
        let mut l = limits.clone();
        let mut capped = Vec::new();
        let mut lower = |field: &mut u32, want: u32, what: &str| {
            if want > *field {
                capped.push(format!("{what} {want} (the adapter's {})", *field));
            } else {
                *field = want;
            }
        };
        lower(
            &mut l.max_compute_workgroup_storage_size,
            self.workgroup_storage,
            "workgroup storage",
        );
        lower(
            &mut l.max_compute_invocations_per_workgroup,
            self.invocations,
            "invocations",
        );
        lower(
            &mut l.max_compute_workgroup_size_x,
            self.invocations,
            "workgroup size x",
        );
        lower(
            &mut l.max_compute_workgroups_per_dimension,
            self.workgroups_per_dimension,
            "workgroups per dimension",
        );
        if self.storage_binding > l.max_storage_buffer_binding_size {
            capped.push(format!(
                "storage binding {} MiB (the adapter's {} MiB)",
                self.storage_binding >> 20,
                l.max_storage_buffer_binding_size >> 20
            ));
        } else {
            l.max_storage_buffer_binding_size = self.storage_binding;
        }
        if let Some(b) = self.buffer {
            l.max_buffer_size = l.max_buffer_size.min(b);
        }
        let mut f = features;
        if !self.f64 {
            f.remove(wgpu::Features::SHADER_F64);
        }
        if !self.int64 {
            f.remove(wgpu::Features::SHADER_INT64);
        }
        (l, f, capped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_lower_limits_and_mask_features_but_never_raise_them() {
        let adapter = wgpu::Limits {
            max_compute_workgroup_storage_size: 32_768,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroup_size_x: 1024,
            ..Default::default()
        };
        let all = wgpu::Features::SHADER_F64 | wgpu::Features::SHADER_INT64;
        let (l, f, capped) = Profile::named("webgpu").unwrap().apply(&adapter, all);
        assert_eq!(l.max_compute_workgroup_storage_size, 16_384);
        assert_eq!(l.max_compute_invocations_per_workgroup, 256);
        assert!(f.is_empty() && capped.is_empty(), "{f:?} {capped:?}");
        let (l, f, capped) = Profile::named("amd-rdna").unwrap().apply(&adapter, all);
        assert_eq!(l.max_compute_workgroup_storage_size, 32_768, "not raised to 64 KiB");
        assert!(capped[0].contains("workgroup storage 65536"), "{capped:?}");
        assert_eq!(f, all);
        let (_, f, _) = Profile::named("dx12-fxc").unwrap().apply(&adapter, all);
        assert!(f.is_empty());
        let (_, f, _) = Profile::named("apple-m").unwrap().apply(&adapter, all);
        assert_eq!(f, wgpu::Features::SHADER_INT64);
        let e = Profile::named("nvidia").unwrap_err().to_string();
        assert!(e.contains("nvidia") && e.contains("webgpu, apple-m"), "{e}");
    }
}
