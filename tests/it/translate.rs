//! The translation check: every WGSL module the GPU path can build (src/backend/gpu/modules.rs)
//! goes through naga (wgpu's shader translator) for each backend the project would run it
//! on: validated with that backend's capabilities, then written as SPIR-V (Vulkan; checked by
//! `spirv-val` where it is installed, required under FFTLEARN_REQUIRE_SPIRV_VAL=1), MSL 2.3
//! and 3.0 (Metal) and HLSL shader model 6.0 (DX12 with DXC) and 5.1 (DX12 with FXC). A
//! module the project would not run on a backend (f64 outside Vulkan, int64 under FXC) is
//! refused there with the project's own message instead. No GPU is needed.

use fftlearn::backend::gpu::fused::Fit;
use fftlearn::backend::gpu::modules::{self, Module};
use fftlearn::backend::gpu::Precision;
use fftlearn::backend::gpu::Target;
use naga::back::{hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use rayon::prelude::*;

/// Workgroup limits of the platforms the fused plans are made for (from the platforms'
/// published limits as wgpu reports them): the WebGPU default (16 KiB, 256 invocations), DX12
/// and Apple GPUs and lavapipe (32 KiB, 1024), NVIDIA under Vulkan (48 KiB, 1024), AMD RDNA and
/// Intel Arc under Vulkan (64 KiB, 1024).
const FITS: [Fit; 4] = [
    Fit {
        wg_storage: 16_384,
        invocations: 256,
    },
    Fit {
        wg_storage: 32_768,
        invocations: 1024,
    },
    Fit {
        wg_storage: 49_152,
        invocations: 1024,
    },
    Fit {
        wg_storage: 65_536,
        invocations: 1024,
    },
];

/// The capabilities a backend's device offers the shaders (as wgpu maps its features).
fn caps(t: Target) -> Capabilities {
    match t {
        Target::Vulkan => Capabilities::FLOAT64 | Capabilities::SHADER_INT64,
        Target::Metal | Target::Dx12Dxc => Capabilities::SHADER_INT64,
        Target::Dx12Fxc => Capabilities::empty(),
    }
}

/// Translate `m` for `t`: Ok(outputs written) or the error.
fn translate(m: &Module, t: Target, spirv_dir: &std::path::Path, k: usize) -> Result<usize, String> {
    let module = naga::front::wgsl::parse_str(&m.source).map_err(|e| e.emit_to_string(&m.source))?;
    let info = Validator::new(ValidationFlags::all(), caps(t))
        .validate(&module)
        .map_err(|e| format!("validation: {}", e.emit_to_string(&m.source)))?;
    match t {
        Target::Vulkan => {
            let words = spv::write_vec(&module, &info, &spv::Options::default(), None).map_err(|e| e.to_string())?;
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            std::fs::write(spirv_dir.join(format!("{k}.spv")), bytes).unwrap();
            Ok(1)
        }
        Target::Metal => {
            for version in [(2, 3), (3, 0)] {
                let opts = msl::Options {
                    lang_version: version,
                    ..Default::default()
                };
                msl::write_string(&module, &info, &opts, &msl::PipelineOptions::default())
                    .map_err(|e| format!("MSL {version:?}: {e}"))?;
            }
            Ok(2)
        }
        Target::Dx12Dxc | Target::Dx12Fxc => {
            let model = if t == Target::Dx12Dxc {
                hlsl::ShaderModel::V6_0
            } else {
                hlsl::ShaderModel::V5_1
            };
            let opts = hlsl::Options {
                shader_model: model,
                ..Default::default()
            };
            let mut out = String::new();
            hlsl::Writer::new(&mut out, &opts, &hlsl::PipelineOptions::default())
                .write(&module, &info, None)
                .map_err(|e| format!("HLSL {model:?}: {e}"))?;
            Ok(1)
        }
    }
}

/// (module, target, outputs written or the error, the project's refusal).
type Outcome = (usize, Target, Result<usize, String>, Option<String>);

#[test]
fn every_module_translates_for_every_backend_that_would_run_it() {
    let ns: Vec<usize> = (2..=16).map(|l| 1usize << l).collect();
    let all = modules::all(&ns, &FITS);
    let fused = all.iter().filter(|m| m.label.starts_with("fused")).count();
    // the fused kernel exists at every N from 4 up to what the largest limits hold
    for n in [4usize, 512, 4096] {
        assert!(
            all.iter().any(|m| m.label.starts_with(&format!("fused N={n} f32"))),
            "no fused module at N = {n}"
        );
    }
    let dir = std::env::temp_dir().join(format!("fftlearn-translate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jobs: Vec<(usize, Target)> = (0..all.len())
        .flat_map(|k| Target::ALL.into_iter().map(move |t| (k, t)))
        .collect();
    let results: Vec<Outcome> = jobs
        .into_par_iter()
        .map(|(k, t)| {
            let m = &all[k];
            match t.refuses(m.prec, m.int64) {
                Some(why) => (k, t, Ok(0), Some(why)),
                None => (k, t, translate(m, t, &dir, k), None),
            }
        })
        .collect();
    let mut failures = Vec::new();
    let mut per_target = std::collections::BTreeMap::new();
    for (k, t, r, refused) in &results {
        let e = per_target.entry(format!("{t:?}")).or_insert((0usize, 0usize, 0usize));
        match (r, refused) {
            (_, Some(why)) => {
                // the refusal names the setting and what to use
                let m = &all[*k];
                if m.prec == Precision::F64 {
                    assert!(why.contains("--precision f64") && why.contains("Vulkan only"), "{why}");
                } else {
                    assert!(why.contains("64-bit integers"), "{why}");
                }
                e.2 += 1;
            }
            (Ok(outputs), None) => {
                e.0 += 1;
                e.1 += outputs;
            }
            (Err(err), None) => failures.push(format!("{} for {t:?}: {err}", all[*k].label)),
        }
    }
    println!(
        "{} modules ({fused} fused) x {} backends: {per_target:?} (modules translated, outputs written, refused)",
        all.len(),
        Target::ALL.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // SPIR-V validated by the Khronos validator where it is installed
    let require = std::env::var("FFTLEARN_REQUIRE_SPIRV_VAL").is_ok_and(|v| v == "1");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), per_target["Vulkan"].0);
    match std::process::Command::new("spirv-val").arg("--version").output() {
        Ok(_) => {
            let bad: Vec<String> = files
                .par_iter()
                .filter_map(|f| {
                    let o = std::process::Command::new("spirv-val")
                        .args(["--target-env", "vulkan1.1"])
                        .arg(f)
                        .output()
                        .unwrap();
                    (!o.status.success()).then(|| {
                        let k: usize = f.file_stem().unwrap().to_string_lossy().parse().unwrap();
                        format!("{}: {}", all[k].label, String::from_utf8_lossy(&o.stderr))
                    })
                })
                .collect();
            assert!(bad.is_empty(), "spirv-val refused:\n{}", bad.join("\n"));
        }
        Err(_) if require => panic!("FFTLEARN_REQUIRE_SPIRV_VAL=1 but spirv-val is not installed"),
        Err(_) => eprintln!("*** SKIPPED spirv-val: not installed (Debian: apt-get install spirv-tools)"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
