//! GPU adapter discovery and device setup: which adapters exist, which one runs, the limits
//! raised to what it offers, and errors (validation, out-of-memory, device loss, timeouts)
//! turned into messages that name the adapter.

use super::target::{Precision, Target};
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a wait on the GPU may take before it is reported as wedged.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Backends fftlearn uses (no GL: it lacks f64 and would be a silent fallback).
pub fn backends() -> wgpu::Backends {
    wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends();
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds on the enabled backends.
pub fn adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(instance().enumerate_adapters(backends()))
}

/// Whether an adapter is hardware (not a software rasteriser such as lavapipe).
pub fn is_hardware(info: &wgpu::AdapterInfo) -> bool {
    matches!(
        info.device_type,
        wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu
    )
}

/// One line describing an adapter.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    )
}

/// The adapter's description, and its limits and features as the emulated profile
/// (`FFTLEARN_ADAPTER_PROFILE`, [`super::profile`]) offers them, if one is set.
pub fn caps(adapter: &wgpu::Adapter) -> Result<(wgpu::AdapterInfo, wgpu::Limits, wgpu::Features)> {
    let (info, limits, features) = (adapter.get_info(), adapter.limits(), adapter.features());
    Ok(match super::profile::Profile::from_env()? {
        Some(p) => {
            let (l, f, _) = p.apply(&limits, features);
            (info, l, f)
        }
        None => (info, limits, features),
    })
}

/// The adapter type that sets the default dispatch cap: the emulated profile's where it names
/// one, else the adapter's.
pub fn dispatch_type(info: &wgpu::AdapterInfo) -> Result<wgpu::DeviceType> {
    Ok(super::profile::Profile::from_env()?
        .and_then(|p| p.device_type)
        .unwrap_or(info.device_type))
}

/// One line per adapter: name, backend, type, the features fftlearn uses, and key limits (as
/// the emulated profile offers them, if one is set).
pub fn report() -> Result<Vec<String>> {
    adapters()
        .iter()
        .map(|a| {
            let (i, l, f) = caps(a)?;
            Ok(format!(
                "{} | backend {:?} | type {:?}{} | f64 {} | int64 {} | subgroups {} | timestamps {} | max storage binding {} MiB | max buffer {} MiB | max workgroups/dim {} | max invocations/workgroup {} | workgroup storage {} KiB",
                i.name,
                i.backend,
                i.device_type,
                if is_hardware(&i) { " (hardware)" } else { " (software)" },
                f.contains(wgpu::Features::SHADER_F64),
                f.contains(wgpu::Features::SHADER_INT64),
                f.contains(wgpu::Features::SUBGROUP),
                f.contains(wgpu::Features::TIMESTAMP_QUERY),
                l.max_storage_buffer_binding_size >> 20,
                l.max_buffer_size >> 20,
                l.max_compute_workgroups_per_dimension,
                l.max_compute_invocations_per_workgroup,
                l.max_compute_workgroup_storage_size >> 10,
            ))
        })
        .collect()
}

/// An open device.
pub struct Gpu {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's description.
    pub info: wgpu::AdapterInfo,
    /// Features enabled on the device.
    pub features: wgpu::Features,
    /// Limits in force.
    pub limits: wgpu::Limits,
    /// The adapter's type, or the emulated profile's where it names one: it sets the default
    /// dispatch cap ([`super::dispatch`]).
    pub dispatch_type: wgpu::DeviceType,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Option<String>>>,
    /// The buffer reads copy into, kept between reads (each step reads its loss: no new
    /// buffer per step), replaced by a larger one when a read needs it.
    staging: Mutex<Option<wgpu::Buffer>>,
}

/// Pick an adapter: one whose name contains `name` (case-insensitive) if given, else the
/// first hardware adapter, else (if `allow_software`) the first software one.
pub fn pick(name: Option<&str>, allow_software: bool) -> Result<wgpu::Adapter> {
    pick_for(name, allow_software, false)
}

/// The adapter [`pick_for`] takes among `(hardware, has SHADER_F64)` descriptions, in wgpu's
/// order: hardware before software (software only if `allow_software`); with `want_f64`, an
/// adapter with SHADER_F64 before one without, within each kind.
pub fn choose(adapters: &[(bool, bool)], allow_software: bool, want_f64: bool) -> Option<usize> {
    let rank = |&(hardware, f64): &(bool, bool)| (!hardware, want_f64 && !f64);
    adapters
        .iter()
        .enumerate()
        .filter(|(_, a)| a.0 || allow_software)
        .min_by_key(|(i, a)| (rank(a), *i))
        .map(|(i, _)| i)
}

/// [`pick`], preferring an adapter with SHADER_F64 when `want_f64` (`--precision f64`): a
/// hardware adapter with it, then any hardware one (whose open then names the missing feature),
/// then software adapters in the same order.
pub fn pick_for(name: Option<&str>, allow_software: bool, want_f64: bool) -> Result<wgpu::Adapter> {
    let all = adapters();
    let list = || {
        let v: Vec<String> = all.iter().map(|a| describe(&a.get_info())).collect();
        if v.is_empty() {
            "none found on Vulkan/Metal/DX12".to_string()
        } else {
            v.join("; ")
        }
    };
    if let Some(n) = name {
        let n_l = n.to_lowercase();
        return all
            .iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&n_l))
            .cloned()
            .ok_or_else(|| {
                Error::input(format!(
                    "adapter '{n}': no adapter's name contains it (case-insensitive); adapters: {}",
                    list()
                ))
            });
    }
    let kinds: Vec<(bool, bool)> = all
        .iter()
        .map(|a| {
            let (info, _, features) = caps(a)?;
            Ok((is_hardware(&info), features.contains(wgpu::Features::SHADER_F64)))
        })
        .collect::<Result<_>>()?;
    if let Some(i) = choose(&kinds, allow_software, want_f64) {
        return Ok(all[i].clone());
    }
    // what would help differs: a hardware GPU needs its vendor's Vulkan driver; any adapter at
    // all (for --device gpu) can be Mesa's software lavapipe
    let help = if allow_software {
        "install a Vulkan driver: the GPU vendor's, or Mesa's software lavapipe (on Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1)"
    } else if all.is_empty() {
        "a hardware GPU needs its vendor's Vulkan driver and the Vulkan loader (NVIDIA: the proprietary driver's Vulkan ICD; AMD/Intel: Mesa's radv/anv); --device gpu would also take a software adapter"
    } else {
        "a hardware GPU needs its vendor's Vulkan driver (NVIDIA: the proprietary driver's Vulkan ICD; AMD/Intel: Mesa's radv/anv); --device gpu runs on the software adapter listed"
    };
    Err(Error::runtime(format!(
        "no {}GPU adapter (adapters: {}); {help}",
        if allow_software { "" } else { "hardware " },
        list()
    )))
}

impl Gpu {
    /// Open a device on `adapter` with the adapter's own limits; `f64` asks for SHADER_F64.
    pub fn open(adapter: &wgpu::Adapter, f64: bool) -> Result<Gpu> {
        // the adapter's limits and features, or the emulated profile's
        let (info, offered_limits, offered) = caps(adapter)?;
        let mut features = wgpu::Features::empty();
        if f64 {
            if !offered.contains(wgpu::Features::SHADER_F64) {
                // outside Vulkan, say that no adapter of that backend has it
                let target = match info.backend {
                    wgpu::Backend::Metal => Some(Target::Metal),
                    wgpu::Backend::Dx12 => Some(Target::Dx12Dxc),
                    _ => None,
                };
                let why = target.and_then(|t| t.refuses(Precision::F64, false));
                return Err(Error::input(match why {
                    Some(why) => format!("adapter {}: {why}", describe(&info)),
                    None => format!(
                        "--precision f64: adapter {} has no SHADER_F64{}; use --precision f32",
                        describe(&info),
                        match super::profile::Profile::from_env()? {
                            Some(p) => format!(" under {}={}", super::profile::ENV, p.name),
                            None => String::new(),
                        }
                    ),
                }));
            }
            features |= wgpu::Features::SHADER_F64;
        }
        // native 64-bit integer products for Philox where offered (the fused kernel uses them)
        features |= offered & wgpu::Features::SHADER_INT64;
        // GPU timestamps for `bench` where offered
        features |= offered & wgpu::Features::TIMESTAMP_QUERY;
        let limits = offered_limits;
        let desc = wgpu::DeviceDescriptor {
            label: Some("fftlearn"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::runtime(format!("cannot open a device on adapter {}: {e}", describe(&info))))?;
        let lost = Arc::new(Mutex::new(None));
        let l2 = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *l2.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{reason:?}: {msg}"));
        });
        // an error outside every scope is recorded (wgpu's default handler would panic) and
        // reported by the next check
        let uncaptured = Arc::new(Mutex::new(None));
        let u2 = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = u2.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e.to_string().split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }));
        let dispatch_type = dispatch_type(&info)?;
        Ok(Gpu {
            device,
            queue,
            info,
            dispatch_type,
            features,
            limits,
            lost,
            uncaptured,
            staging: Mutex::new(None),
        })
    }

    /// The adapter's one-line description.
    pub fn name(&self) -> String {
        describe(&self.info)
    }

    /// Run `f` inside validation and out-of-memory error scopes; any error becomes one message
    /// naming the adapter and `what`.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(Error::runtime(format!(
                "GPU out of memory during {what} on adapter {} (max buffer size {} bytes, max storage binding {} bytes): {e}",
                self.name(),
                self.limits.max_buffer_size,
                self.limits.max_storage_buffer_binding_size
            )));
        }
        if let Some(e) = v {
            return Err(Error::runtime(format!(
                "GPU validation error during {what} on adapter {}: {e}",
                self.name()
            )));
        }
        self.check_lost()?;
        Ok(out)
    }

    /// Compile a WGSL module inside the error scopes: a shader the adapter rejects is one
    /// clear error naming the adapter.
    pub fn compile(&self, label: &str, wgsl: &str) -> Result<wgpu::ShaderModule> {
        self.scoped(&format!("compiling shader '{label}'"), || {
            self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            })
        })
    }

    /// An error if the device was lost.
    pub fn check_lost(&self) -> Result<()> {
        if let Some(m) = self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(Error::runtime(format!(
                "GPU device lost on adapter {}: {m}",
                self.name()
            )));
        }
        if let Some(m) = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(Error::runtime(format!("GPU error on adapter {}: {m}", self.name())));
        }
        Ok(())
    }

    /// Wait for all submitted work, at most [`WAIT_TIMEOUT`].
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(WAIT_TIMEOUT),
            })
            .map_err(|e| {
                Error::runtime(format!(
                    "GPU wait failed on adapter {} (timeout {} s): {e}",
                    self.name(),
                    WAIT_TIMEOUT.as_secs()
                ))
            })?;
        self.check_lost()
    }

    /// Copy `size` bytes of `src` back to the host.
    pub fn read(&self, src: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        let mut slot = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|b| b.size() < size) {
            // at least 4 KiB: a step's loss reads all fit one buffer
            *slot = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: size.max(4096).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let staging = slot.as_ref().expect("just made");
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, offset, staging, 0, size);
        self.queue.submit([enc.finish()]);
        self.check_lost()?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..size).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let mapped = self.wait().and_then(|()| match rx.recv_timeout(WAIT_TIMEOUT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::runtime(format!(
                "GPU buffer map failed on adapter {}: {e}",
                self.name()
            ))),
            Err(_) => Err(Error::runtime(format!(
                "GPU buffer map timed out on adapter {}",
                self.name()
            ))),
        });
        if let Err(e) = mapped {
            // a buffer left mapped or mid-map is not reused
            *slot = None;
            return Err(e);
        }
        let data = staging.get_mapped_range(..size).map(|v| v.to_vec());
        staging.unmap();
        data.map_err(|e| Error::runtime(format!("GPU buffer map failed on adapter {}: {e}", self.name())))
    }
}

/// Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set" on every start
/// where it is missing (a fresh machine, a container, a batch job). It is noise for a compute
/// program: point it at a private directory for this process. It sets an environment
/// variable, so call it before the process starts other threads (the binary's `main`, the
/// Python module's import).
pub fn quiet_vulkan_runtime_dir() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let ok = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
        if ok {
            return;
        }
        // one private directory per user (the owner of /proc/self is this process's user)
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return;
        };
        let d = std::env::temp_dir().join(format!("fftlearn-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&d);
        if std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir() && m.uid() == uid) {
            // single-threaded here: nothing else reads the environment yet
            std::env::set_var("XDG_RUNTIME_DIR", &d);
        }
    }
}

/// The binding limit every storage buffer must respect.
pub fn binding_limit(limits: &wgpu::Limits) -> u64 {
    limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_choice_prefers_hardware_then_f64_when_asked() {
        // (hardware, f64): software with f64, hardware without, hardware with
        let a = [(false, true), (true, false), (true, true)];
        assert_eq!(choose(&a, true, false), Some(1), "the first hardware adapter");
        assert_eq!(choose(&a, true, true), Some(2), "the hardware adapter with f64");
        assert_eq!(
            choose(&a[..2], true, true),
            Some(1),
            "hardware without f64 before software with it"
        );
        assert_eq!(choose(&a[..1], false, true), None, "no software unless allowed");
        assert_eq!(choose(&a[..1], true, true), Some(0));
        assert_eq!(
            choose(&[(false, false), (false, true)], true, true),
            Some(1),
            "software with f64 first"
        );
        assert_eq!(choose(&[], true, true), None);
    }
}
