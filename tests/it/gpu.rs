//! Link 3 of the chain of trust: the GPU kernels against the f64 CPU path. These tests run on
//! any adapter wgpu finds (lavapipe in CI). Without one they are skipped with a loud message,
//! unless FFTLEARN_REQUIRE_GPU=1 (as in CI), which makes a missing adapter a failure.

use fftlearn::backend::cpu;
use fftlearn::backend::gpu::{context, fused, gradcheck, Gpu, GpuBatch, GpuModel, Kernel, ModelOptions, Precision};
use fftlearn::model::data::Batch;
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::model::rng::Stream;
use fftlearn::optim::{Adam, AdamState};

pub fn gpu(f64: bool) -> Option<Gpu> {
    let require = std::env::var("FFTLEARN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let name = std::env::var("FFTLEARN_TEST_ADAPTER").ok();
    // under an emulated profile without f64 (FFTLEARN_ADAPTER_PROFILE), an f64 test has
    // nothing to run: a loud skip, even in CI
    if let Ok(Some(p)) = fftlearn::backend::gpu::profile::Profile::from_env() {
        if f64 && !p.f64 {
            eprintln!(
                "\n*** SKIPPED f64 GPU TEST: the emulated profile {} has no SHADER_F64 ***\n",
                p.name
            );
            return None;
        }
    }
    match context::pick(name.as_deref(), true).and_then(|a| Gpu::open(&a, f64)) {
        Ok(g) => {
            eprintln!("[gpu test] adapter: {}", g.name());
            Some(g)
        }
        Err(e) if require => panic!("FFTLEARN_REQUIRE_GPU=1 but no usable GPU adapter: {e}"),
        Err(e) => {
            eprintln!(
                "\n*** SKIPPED GPU TEST: {e}\n*** install Mesa lavapipe (apt-get install mesa-vulkan-drivers libvulkan1) to run it; \
                 FFTLEARN_REQUIRE_GPU=1 turns this skip into a failure ***\n"
            );
            None
        }
    }
}

pub fn model(g: Gpu, p: &Params, prec: Precision, kernel: Kernel) -> GpuModel {
    let opts = ModelOptions {
        prec,
        kernel: Some(kernel),
        chunk: None,
        int64: true,
        fused_shape: None,
        fused_hoist: None,
        fused_omit: Default::default(),
        dispatch_cap: None,
    };
    GpuModel::with_options(g, p, opts).unwrap_or_else(|e| panic!("{kernel:?} {prec:?} model: {e}"))
}

#[test]
fn f32_gradients_match_the_f64_path() {
    for kernel in Kernel::ALL {
        f32_gradients(kernel);
    }
}

fn f32_gradients(kernel: Kernel) {
    let Some(g) = gpu(false) else { return };
    let net = Network::new(64).unwrap();
    let p = Params::init(&net, &Scheme::Random, 1);
    let model = model(g, &p, Precision::F32, kernel);
    for scheme in [Scheme::Seed, Scheme::Random] {
        let p = Params::init(&net, &scheme, 2);
        let r = gradcheck::run(&model, &p, 100, 3).unwrap();
        // f32 rounding (2^-24 ~ 6e-8) grows with the depth log2 N and the sum length; 1e-5 and
        // 1e-4 leave a margin of ~10x over what lavapipe shows
        assert!(r.loss_rel <= 1e-5, "{kernel:?} {scheme}: loss rel {:e}", r.loss_rel);
        assert!(r.worst_norm_rel() <= 1e-4, "{kernel:?} {scheme}: {:#?}", r.groups);
    }
    // at the exact FFT the true gradient is ~0, so plain relative error is meaningless; the
    // scaled error (against the zero-target gradient) still has to sit at the f32 level
    let r = gradcheck::run(&model, &Params::init(&net, &Scheme::Exact, 0), 100, 3).unwrap();
    assert!(r.loss_scaled <= 1e-5 && r.worst_scaled() <= 1e-4, "exact: {r:#?}");
}

#[test]
fn f64_gradients_match_the_f64_path() {
    for kernel in Kernel::ALL {
        let Some(g) = gpu(true) else { return };
        let net = Network::new(64).unwrap();
        let p = Params::init(&net, &Scheme::Random, 1);
        let model = model(g, &p, Precision::F64, kernel);
        let r = gradcheck::run(&model, &p, 100, 3).unwrap();
        // same inputs, f64 on both sides: only summation order differs (~1e-16)
        assert!(r.loss_rel <= 1e-12, "{kernel:?}: loss rel {:e}", r.loss_rel);
        assert!(r.worst_norm_rel() <= 1e-12, "{kernel:?}: {:#?}", r.groups);
    }
}

#[test]
fn training_is_bit_identical_across_runs_and_resumes_exactly() {
    use fftlearn::train::{Backend, GpuBackend};
    for kernel in Kernel::ALL {
        let net = Network::new(64).unwrap();
        let p0 = Params::init(&net, &Scheme::Seed, 0);
        let run = |steps: std::ops::RangeInclusive<u32>, from: Option<(&Params, &fftlearn::optim::OptState)>| {
            let g = gpu(false)?;
            let mut b = GpuBackend::new(model(g, &p0, Precision::F32, kernel), 1e-2, 300, 42);
            if let Some((p, s)) = from {
                b.restore(p, s).unwrap();
            }
            let losses: Vec<u64> = steps.map(|t| b.step(t).unwrap().to_bits()).collect();
            Some((losses, b.params().unwrap(), b.state().unwrap()))
        };
        let Some((a, pa, sa)) = run(1..=30, None) else { return };
        let (b, pb, sb) = run(1..=30, None).unwrap();
        // two runs on the same adapter: the same bits (fixed-order reductions, no atomics)
        assert_eq!(a, b, "{kernel:?}: losses differ between runs");
        assert_eq!(pa, pb, "{kernel:?}: parameters differ between runs");
        assert_eq!(sa, sb, "{kernel:?}: Adam state differs between runs");
        // 15 steps, then a fresh device restored from that state for 15 more: the same bits
        let (h1, ph, sh) = run(1..=15, None).unwrap();
        let (h2, pr, sr) = run(16..=30, Some((&ph, &sh))).unwrap();
        assert_eq!([h1, h2].concat(), a, "{kernel:?}: resumed losses differ");
        assert_eq!((pr, sr), (pa, sa), "{kernel:?}: resumed state differs");
    }
}

#[test]
fn gpu_errors_name_the_adapter_and_the_limit() {
    let Some(g) = gpu(false) else { return };
    let name = g.name();
    // a chunk over the storage binding limit
    let net = Network::new(512).unwrap();
    let p = Params::init(&net, &Scheme::Seed, 0);
    let opts = ModelOptions {
        prec: Precision::F32,
        kernel: None,
        chunk: Some(1 << 24),
        int64: true,
        fused_shape: None,
        fused_hoist: None,
        fused_omit: Default::default(),
        dispatch_cap: None,
    };
    let e = GpuModel::with_options(g, &p, opts)
        .err()
        .expect("chunk 2^24 must be refused")
        .to_string();
    assert!(e.contains("--chunk 16777216") && e.contains(&name), "{e}");
    assert!(
        e.contains("max_storage_buffer_binding_size") && e.contains("bytes"),
        "{e}"
    );
    // a shader the device rejects: a validation error, reported with the adapter
    let g = gpu(false).unwrap();
    let e = g
        .compile("broken", "fn f( {")
        .expect_err("broken WGSL must fail")
        .to_string();
    assert!(
        e.contains("validation error") && e.contains(&name) && e.contains("broken"),
        "{e}"
    );
    // a lost device: every later call says so instead of hanging or returning garbage
    let g = gpu(false).unwrap();
    let m = GpuModel::new(g, &p, Precision::F32).unwrap();
    m.gpu().device.destroy();
    let e = m.params().expect_err("a destroyed device must fail").to_string();
    assert!(e.contains(&name), "{e}");
    assert!(
        e.contains("lost") || e.contains("validation") || e.contains("destroyed"),
        "{e}"
    );
}

#[test]
fn on_device_data_and_targets_match_the_cpu_generator() {
    for kernel in Kernel::ALL {
        let Some(g) = gpu(false) else { return };
        let net = Network::new(64).unwrap();
        let p = Params::init(&net, &Scheme::Random, 5);
        // several dispatches: lane/group by their chunk, fused by an explicit one
        let opts = ModelOptions {
            prec: Precision::F32,
            kernel: Some(kernel),
            chunk: (kernel == Kernel::Fused).then_some(1000),
            int64: true,
            fused_shape: None,
            fused_hoist: None,
            fused_omit: Default::default(),
            dispatch_cap: None,
        };
        let model = GpuModel::with_options(g, &p, opts).unwrap();
        let size = 3 * model.chunk() + 17;
        let gg = model
            .loss_grad(&GpuBatch::Gaussian {
                seed: 7,
                stream: Stream::Data,
                step: 4,
                size,
            })
            .unwrap();
        let gc = cpu::loss_grad(
            &p,
            &Batch::Gaussian {
                seed: 7,
                stream: Stream::Data,
                step: 4,
                size,
            },
        );
        let r = gradcheck::compare(&p, &gc, &gg, None);
        // the device's f32 Box-Muller and exact-FFT targets differ from the host's f64 ones by
        // f32 rounding only: same samples, so agreement at the f32 level
        assert!(r.loss_rel <= 1e-5, "{kernel:?}: loss {} vs {}", gg.loss, gc.loss);
        assert!(r.worst_norm_rel() <= 1e-4, "{kernel:?}: {:#?}", r.groups);
    }
}

/// A fused model with an explicit plan shape (bits per invocation, least workgroup size).
fn fused_model(g: Gpu, p: &Params, prec: Precision, shape: (u32, u32), int64: bool, chunk: Option<usize>) -> GpuModel {
    let opts = ModelOptions {
        prec,
        kernel: Some(Kernel::Fused),
        chunk,
        int64,
        fused_shape: Some(shape),
        fused_hoist: None,
        fused_omit: Default::default(),
        dispatch_cap: None,
    };
    GpuModel::with_options(g, p, opts).unwrap_or_else(|e| panic!("fused {shape:?} {prec:?}: {e}"))
}

#[test]
fn fused_matches_the_f64_path_at_every_size_and_both_plan_shapes() {
    // the register passes, their exchanges, the swizzle and the gather table all depend on N
    // and on the plan: radix 8 in teams of N/8 (hardware GPUs), radix 64 (CPU-type adapters),
    // and radix 16 (a last pass with fewer bits than the others at most N)
    for shape in [
        fftlearn::backend::gpu::fused::HARDWARE_SHAPE,
        fftlearn::backend::gpu::fused::CPU_SHAPE,
        (4, 32),
    ] {
        for log2 in 2..=12u32 {
            let Some(g) = gpu(false) else { return };
            let net = Network::new(1 << log2).unwrap();
            let p = Params::init(&net, &Scheme::Random, log2 as u64);
            let opts = ModelOptions {
                prec: Precision::F32,
                kernel: Some(Kernel::Fused),
                chunk: None,
                int64: true,
                fused_shape: Some(shape),
                fused_hoist: None,
                fused_omit: Default::default(),
                dispatch_cap: None,
            };
            let m = match GpuModel::with_options(g, &p, opts) {
                Ok(m) => m,
                // a plan over the adapter's workgroup limits is refused with the reason
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains("--kernel fused") && e.contains("use --kernel group"), "{e}");
                    eprintln!("[gpu test] fused {shape:?} N = {}: {e}", 1 << log2);
                    continue;
                }
            };
            let r = gradcheck::run(&m, &p, 37, 1).unwrap();
            assert!(
                r.loss_rel <= 1e-5,
                "{shape:?} N = {}: loss rel {:e}",
                1 << log2,
                r.loss_rel
            );
            assert!(
                r.worst_norm_rel() <= 1e-4,
                "{shape:?} N = {}: {:#?}",
                1 << log2,
                r.groups
            );
        }
    }
}

#[test]
fn fused_twiddles_loaded_once_per_step_give_the_bits_of_loads_at_each_use() {
    // hardware GPUs load each twiddle at its use, CPU-type adapters once per step before the
    // sample loop: the same values in the same operations, so the same bits; this runs the
    // hardware GPUs' generated code here too (the f64 comparison above runs the default)
    for shape in [
        fftlearn::backend::gpu::fused::HARDWARE_SHAPE,
        fftlearn::backend::gpu::fused::CPU_SHAPE,
    ] {
        for n in [16usize, 512] {
            for prec in [Precision::F32, Precision::F64] {
                let Some(g) = gpu(prec == Precision::F64) else { return };
                let net = Network::new(n).unwrap();
                let p = Params::init(&net, &Scheme::Random, 5);
                let batch = GpuBatch::Gaussian {
                    seed: 11,
                    stream: Stream::Data,
                    step: 3,
                    size: 300,
                };
                let run = |g: Gpu, hoist: bool| {
                    let opts = ModelOptions {
                        kernel: Some(Kernel::Fused),
                        fused_shape: Some(shape),
                        fused_hoist: Some(hoist),
                        fused_omit: Default::default(),
                        ..ModelOptions::new(prec)
                    };
                    let m = GpuModel::with_options(g, &p, opts).unwrap();
                    assert!(
                        m.describe_shape()
                            .contains(if hoist { "once per step" } else { "at each use" }),
                        "{}",
                        m.describe_shape()
                    );
                    m.loss_grad(&batch).unwrap()
                };
                let a = run(g, true);
                let b = run(gpu(prec == Precision::F64).unwrap(), false);
                assert_eq!(a.loss.to_bits(), b.loss.to_bits(), "{shape:?} N = {n} {prec:?}");
                assert_eq!(a.flat(), b.flat(), "{shape:?} N = {n} {prec:?}");
            }
        }
    }
}

#[test]
fn fused_timing_plans_leave_out_what_they_name_and_say_so() {
    // `bench --parts` times plans without the target's forward or the backward: they must
    // really leave those out (else the parts would read as zero), and name themselves
    let net = Network::new(64).unwrap();
    let p = Params::init(&net, &Scheme::Random, 3);
    let batch = GpuBatch::Gaussian {
        seed: 1,
        stream: Stream::Data,
        step: 1,
        size: 100,
    };
    let run = |omit: fused::Omit| {
        let g = gpu(false)?;
        let opts = ModelOptions {
            kernel: Some(Kernel::Fused),
            fused_omit: omit,
            ..ModelOptions::new(Precision::F32)
        };
        let m = GpuModel::with_options(g, &p, opts).unwrap();
        Some((m.describe_shape(), m.loss_grad(&batch).unwrap()))
    };
    let Some((line, whole)) = run(fused::Omit::default()) else {
        return;
    };
    assert!(!line.contains("TIMING"), "{line}");
    let (line, no_target) = run(fused::Omit {
        target: true,
        backward: false,
    })
    .unwrap();
    assert!(line.contains("FOR TIMING ONLY: without the target's forward"), "{line}");
    assert_ne!(no_target.loss.to_bits(), whole.loss.to_bits());
    let (line, no_backward) = run(fused::Omit {
        target: false,
        backward: true,
    })
    .unwrap();
    assert!(line.contains("FOR TIMING ONLY: without the backward"), "{line}");
    // the same forward and loss, other gradients
    assert_eq!(no_backward.loss.to_bits(), whole.loss.to_bits());
    assert_ne!(no_backward.flat(), whole.flat());
}

#[test]
fn fused_philox_with_u64_products_gives_the_same_bits_as_16_bit_limbs() {
    let Some(g) = gpu(false) else { return };
    if !g.features.contains(wgpu::Features::SHADER_INT64) {
        eprintln!("[gpu test] adapter has no SHADER_INT64: only the 16-bit-limb Philox runs here");
        return;
    }
    let net = Network::new(512).unwrap();
    let p = Params::init(&net, &Scheme::Random, 2);
    let batch = GpuBatch::Gaussian {
        seed: 0x1234_5678_9abc_def0,
        stream: Stream::Data,
        step: 77,
        size: 300,
    };
    let a = fused_model(
        g,
        &p,
        Precision::F32,
        fftlearn::backend::gpu::fused::HARDWARE_SHAPE,
        true,
        None,
    )
    .loss_grad(&batch)
    .unwrap();
    let b = fused_model(
        gpu(false).unwrap(),
        &p,
        Precision::F32,
        fftlearn::backend::gpu::fused::HARDWARE_SHAPE,
        false,
        None,
    )
    .loss_grad(&batch)
    .unwrap();
    // the same Philox words give the same samples, so every later operation is the same too
    assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    assert_eq!(a.flat(), b.flat());
}

#[test]
fn fused_split_into_dispatches_agrees_with_one_dispatch_and_repeats_bit_for_bit() {
    let Some(g) = gpu(false) else { return };
    let net = Network::new(128).unwrap();
    let p = Params::init(&net, &Scheme::Random, 3);
    let batch = GpuBatch::Gaussian {
        seed: 5,
        stream: Stream::Data,
        step: 2,
        size: 10_000,
    };
    let shape = fftlearn::backend::gpu::fused::HARDWARE_SHAPE;
    let whole = fused_model(g, &p, Precision::F32, shape, true, None);
    let a = whole.loss_grad(&batch).unwrap();
    let a2 = whole.loss_grad(&batch).unwrap();
    assert_eq!(a.flat(), a2.flat(), "the same step twice: the same bits");
    let split = fused_model(gpu(false).unwrap(), &p, Precision::F32, shape, true, Some(999));
    let b = split.loss_grad(&batch).unwrap();
    let r = gradcheck::compare(&p, &a, &b, None);
    // only the summation order differs: f32 rounding
    assert!(r.loss_rel <= 1e-6 && r.worst_norm_rel() <= 1e-5, "{r:#?}");
}

#[test]
fn adam_on_the_gpu_follows_the_cpu() {
    let Some(g) = gpu(true) else { return };
    let net = Network::new(64).unwrap();
    let p0 = Params::init(&net, &Scheme::Seed, 0);
    let model = GpuModel::new(g, &p0, Precision::F64).unwrap();
    let adam = Adam::new(1e-2);
    let (x, _) = gradcheck::inputs(64, 32, 9);
    let mut p = p0.clone();
    let mut st = AdamState::new(p.len());
    for t in 1..=20u64 {
        let lg = model
            .adam_step(&GpuBatch::Host { x: &x, target: None }, &adam.hyper(), t)
            .unwrap();
        let gc = cpu::loss_grad(&p, &Batch::Given { x: &x, target: None });
        assert!((lg - gc.loss).abs() <= 1e-9 * gc.loss, "step {t}: {lg} vs {}", gc.loss);
        let mut f = p.flat();
        adam.step(&mut st, &mut f, &gc.flat());
        p.set_flat(&f);
    }
    let pg = model.params().unwrap();
    let d = pg
        .flat()
        .iter()
        .zip(p.flat())
        .map(|(a, b)| (a - b).norm())
        .fold(0.0, f64::max);
    assert!(d < 1e-9, "params differ by {d:e}");
}

#[test]
fn gpu_training_converges_like_the_cpu() {
    use fftlearn::train::{Backend, GpuBackend, HostBackend};
    let Some(g) = gpu(false) else { return };
    let net = Network::new(64).unwrap();
    let p0 = Params::init(&net, &Scheme::Seed, 0);
    let mut gb = GpuBackend::new(GpuModel::new(g, &p0, Precision::F32).unwrap(), 1e-2, 16, 42);
    let mut cb = HostBackend::cpu_adam(p0, 1e-2, 16, 42);
    let mut first = Vec::new();
    for step in 1..=1500 {
        let (lg, lc) = (gb.step(step).unwrap(), cb.step(step).unwrap());
        if step <= 20 {
            first.push((lg, lc));
        }
    }
    // same data stream and the same Adam: the early trajectory agrees to f32 rounding
    for (s, (lg, lc)) in first.iter().enumerate() {
        assert!((lg - lc).abs() <= 1e-4 * lc, "step {}: gpu {lg} cpu {lc}", s + 1);
    }
    let e_gpu = cpu::rel_operator_error(&gb.params().unwrap());
    let e_cpu = cpu::rel_operator_error(&cb.params().unwrap());
    // the f32 floor for N = 64 is ~1e-7; 1e-5 is the bar for a learned FFT in f32
    assert!(e_gpu <= 1e-5, "gpu rel op err {e_gpu:e} (cpu {e_cpu:e})");
}

#[test]
fn snr_statistics_from_the_gpu_match_the_cpu_on_the_same_minibatches() {
    // `fftlearn snr` on the GPU reads back only each minibatch's reduced gradient; the same
    // (seed, Measure stream, step) minibatches on both paths must give the same statistics
    if gpu(false).is_none() {
        return;
    }
    let net = Network::new(32).unwrap();
    let p = Params::init(&net, &Scheme::Random, 4);
    let (_, pop) = fftlearn::objective::hessian::population_grad(&p);
    for kernel in Kernel::ALL {
        let Some(g) = gpu(false) else { return };
        let m = model(g, &p, Precision::F32, kernel);
        let (b, k) = (256usize, 12u32);
        let cpu_g: Vec<Vec<f64>> = (0..k)
            .map(|s| fftlearn::analysis::snr::cpu_minibatch(&p, 9, s, b))
            .collect();
        let gpu_g: Vec<Vec<f64>> = (0..k)
            .map(|s| {
                let batch = GpuBatch::Gaussian {
                    seed: 9,
                    stream: Stream::Measure,
                    step: s,
                    size: b,
                };
                fftlearn::analysis::snr::reals(&m.loss_grad(&batch).unwrap().flat())
            })
            .collect();
        let rc = fftlearn::analysis::snr::rows(&net, b, &cpu_g, &pop, None);
        let rg = fftlearn::analysis::snr::rows(&net, b, &gpu_g, &pop, None);
        for (c, g) in rc.iter().zip(&rg) {
            // f32 gradients agree to ~1e-6 relative (see f32_gradients...); the std is a difference
            // of such numbers, the SNR a ratio: 1e-3 relative is a wide margin
            for (what, x, y) in [
                ("std", c.std, g.std),
                ("snr", c.snr_median, g.snr_median),
                ("mean|g|", c.mean_abs_g, g.mean_abs_g),
            ] {
                assert!(
                    (x - y).abs() <= 1e-3 * x.abs(),
                    "{kernel:?} {} {what}: cpu {x} gpu {y}",
                    c.group
                );
            }
        }
    }
}

#[test]
fn a_step_over_several_adapters_gives_one_adapters_bits_on_every_kernel() {
    use fftlearn::backend::gpu::multi::{parts, MultiGpu};
    use fftlearn::train::{Backend, BackendKind, HostBackend, TrainConfig};
    // the parts cover the batch in order, whatever its size
    for b in [1usize, 7, 8, 20, 1000] {
        let p = parts(b);
        assert_eq!(p[0].0, 0);
        assert_eq!(p.iter().map(|x| x.1).sum::<usize>(), b);
        assert!(p.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
    }
    let net = Network::new(64).unwrap();
    let p0 = Params::init(&net, &Scheme::Random, 3);
    let cfg = TrainConfig {
        n: 64,
        steps: 6,
        batch: 37,
        backend: BackendKind::GpuF32,
        ..TrainConfig::default()
    };
    for kernel in Kernel::ALL {
        let mut finals = Vec::new();
        for count in [1usize, 2, 3] {
            let mut models = Vec::new();
            for _ in 0..count {
                let Some(g) = gpu(false) else { return };
                models.push(model(g, &p0, Precision::F32, kernel));
            }
            let multi = MultiGpu::new(models).unwrap();
            if count == 2 {
                // the summed parts are the batch's gradient (the chain of trust: against f64)
                let g = multi.loss_grad(cfg.seed, Stream::Data, 1, cfg.batch).unwrap();
                let c = cpu::loss_grad(
                    &p0,
                    &Batch::Gaussian {
                        seed: cfg.seed,
                        stream: Stream::Data,
                        step: 1,
                        size: cfg.batch,
                    },
                );
                assert!(
                    (g.loss - c.loss).abs() <= 1e-5 * c.loss,
                    "{kernel:?}: {} vs {}",
                    g.loss,
                    c.loss
                );
                let scale = c.flat().iter().map(|z| z.norm()).fold(0.0, f64::max);
                let err = g
                    .flat()
                    .iter()
                    .zip(c.flat())
                    .map(|(a, b)| (a - b).norm())
                    .fold(0.0, f64::max);
                assert!(err <= 1e-4 * scale, "{kernel:?}: gradient error {err:e} of {scale:e}");
            }
            let mut b = HostBackend::multi(&cfg, p0.clone(), multi).unwrap();
            for s in 1..=cfg.steps {
                b.step(s).unwrap();
            }
            finals.push(b.params().unwrap());
        }
        assert_eq!(finals[0], finals[1], "{kernel:?}: 1 vs 2 adapters");
        assert_eq!(finals[0], finals[2], "{kernel:?}: 1 vs 3 adapters");
    }
}

#[test]
fn train_adapters_prints_the_assignment_and_matches_one_adapter() {
    let Some(g) = gpu(false) else { return };
    // the adapter these tests run on, by a name fragment `--adapters` matches
    let name = g.name().split_whitespace().next().unwrap().to_string();
    let d = crate::util::tmpdir("adapters");
    let run = |list: &str, out: &str| {
        crate::util::bin()
            .args([
                "train",
                "--device",
                "gpu",
                "--n",
                "32",
                "--steps",
                "12",
                "--batch",
                "11",
                "--adapters",
                list,
                "--out",
            ])
            .arg(d.join(out))
            .output()
            .unwrap()
    };
    let one = run(&name, "one");
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let two = run(&format!("{name},{name}"), "two");
    assert!(two.status.success(), "{}", String::from_utf8_lossy(&two.stderr));
    let out = String::from_utf8_lossy(&two.stdout);
    assert!(
        out.contains("[device] adapter 1:") && out.contains("part 1 (samples 1..2) -> adapter 1"),
        "{out}"
    );
    for f in ["metrics.csv", "params.npz"] {
        assert_eq!(
            std::fs::read(d.join("one").join(f)).unwrap(),
            std::fs::read(d.join("two").join(f)).unwrap(),
            "{f}"
        );
    }
    // gradcheck and snr over the same adapters: the same figures as one adapter
    let gc = |list: &str| {
        let o = crate::util::bin()
            .args(["gradcheck", "--n", "32", "--batch", "50", "--adapters", list])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        out.lines()
            .filter(|l| !l.starts_with("[device]"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (g1, g2) = (gc(&name), gc(&format!("{name},{name}")));
    assert!(g1.contains("PASS"), "{g1}");
    assert_eq!(g1, g2);
    for (list, out) in [(name.clone(), "snr1"), (format!("{name},{name}"), "snr2")] {
        let o = crate::util::bin()
            .args([
                "snr",
                "--n",
                "16",
                "--batches",
                "8,20",
                "--k",
                "4",
                "--device",
                "gpu",
                "--adapters",
                &list,
                "--out",
            ])
            .arg(d.join(out))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        std::fs::read(d.join("snr1/snr.csv")).unwrap(),
        std::fs::read(d.join("snr2/snr.csv")).unwrap()
    );
}

#[test]
fn gpu_timestamps_time_a_fused_step_inside_its_wall_time_and_change_no_bits() {
    let Some(g) = gpu(false) else { return };
    if !g.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        eprintln!("[gpu test] adapter has no TIMESTAMP_QUERY: nothing to time");
        return;
    }
    let net = Network::new(64).unwrap();
    let p = Params::init(&net, &Scheme::Random, 8);
    let batch = GpuBatch::Gaussian {
        seed: 3,
        stream: Stream::Data,
        step: 1,
        size: 20_000,
    };
    let adam = Adam::new(1e-2);
    let mut timed = model(g, &p, Precision::F32, Kernel::Fused);
    assert!(timed.enable_timing());
    let start = std::time::Instant::now();
    let loss = timed.adam_step(&batch, &adam.hyper(), 1).unwrap();
    let wall = start.elapsed().as_secs_f64();
    let t = timed.last_step_timing().unwrap().expect("a timed step");
    assert!(t.train > 0.0 && t.combine > 0.0 && t.adam > 0.0, "{t:?}");
    // the passes run in order in one queue, and all of it inside the host's wait
    assert!(t.span >= 0.999 * (t.train + t.combine + t.adam), "{t:?}");
    assert!(t.span <= 1.1 * wall + 1e-3, "{t:?} against {wall} s of wall time");
    // timing changes no bits: an untimed model takes the same step
    let plain = model(gpu(false).unwrap(), &p, Precision::F32, Kernel::Fused);
    assert_eq!(
        plain.adam_step(&batch, &adam.hyper(), 1).unwrap().to_bits(),
        loss.to_bits()
    );
    assert_eq!(plain.params().unwrap(), timed.params().unwrap());
    // a step without an update: its Adam pair is an empty pass, not the last step's
    timed.loss_grad(&batch).unwrap();
    let t2 = timed.last_step_timing().unwrap().expect("a timed step");
    assert!(t2.train > 0.0 && t2.adam < t.train, "{t2:?}");
}
