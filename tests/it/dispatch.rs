//! The dispatch cap: a fused step cut into short dispatches (so that no display driver's
//! watchdog resets the GPU) gives the bytes of one dispatch of the whole grid, for one model
//! and for a pack, on Philox and host data; a 2^24-sample step is cut under the default cap of
//! the adapter type; the flag's refusals.

use crate::gpu::gpu;
use crate::util::{assert_error, bin, tmpdir};
use fftlearn::backend::gpu::{
    fused, AdamHyper, CellStep, DispatchCap, GpuBatch, GpuModel, Kernel, ModelOptions, Precision,
};
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::model::rng::Stream;

fn opts(cap: DispatchCap) -> ModelOptions {
    ModelOptions {
        kernel: Some(Kernel::Fused),
        fused_shape: Some(fused::CPU_SHAPE),
        fused_hoist: None,
        fused_omit: Default::default(),
        dispatch_cap: Some(cap),
        ..ModelOptions::new(Precision::F32)
    }
}

fn bits(p: &Params) -> Vec<u64> {
    p.flat().iter().flat_map(|z| [z.re.to_bits(), z.im.to_bits()]).collect()
}

const ADAM: AdamHyper = AdamHyper {
    lr: 1e-2,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
};

/// Parameters, moments and losses after three Adam steps of one model under `cap`, and how
/// many dispatches a step took.
fn one_model(p: &Params, cap: DispatchCap, batch: &dyn Fn(u32) -> GpuBatch<'static>) -> (Vec<u64>, Vec<u64>, usize) {
    let m = GpuModel::with_options(gpu(false).unwrap(), p, opts(cap)).unwrap();
    let mut losses = Vec::new();
    for t in 1..=3u32 {
        losses.push(m.adam_step(&batch(t), &ADAM, t as u64).unwrap().to_bits());
    }
    let (mo, v) = m.moments().unwrap();
    let mut state = bits(&m.params().unwrap());
    state.extend(mo.iter().chain(&v).flat_map(|z| [z.re.to_bits(), z.im.to_bits()]));
    let count = batch(1).len(p.net.n());
    (state, losses, m.dispatches(count, 1).len())
}

#[test]
fn a_step_cut_into_dispatches_gives_the_bytes_of_one_dispatch() {
    let Some(probe) = gpu(false) else { return };
    drop(probe);
    let net = Network::new(16).unwrap();
    let p = Params::init(&net, &Scheme::Random, 4);
    let philox = |t: u32| GpuBatch::Gaussian {
        seed: 99,
        stream: Stream::Data,
        step: t,
        size: 70_001,
    };
    let whole = one_model(&p, DispatchCap::Off, &philox);
    assert_eq!(whole.2, 1);
    // runs of workgroups (1,000 samples), and a single workgroup per dispatch
    for cap in [1000, 1] {
        let cut = one_model(&p, DispatchCap::Samples(cap), &philox);
        assert!(cut.2 > 1, "cap {cap}: {} dispatch(es)", cut.2);
        assert_eq!(cut.0, whole.0, "cap {cap}: parameters and moments");
        assert_eq!(cut.1, whole.1, "cap {cap}: losses");
    }
    // host data (uploaded in pieces of at most 65,536 samples, each cut under the cap)
    let n = 16usize;
    let x: &'static [f64] = Box::leak(
        (0..70_001 * n)
            .map(|i| ((i * 7919) % 1013) as f64 / 500.0 - 1.0)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let host = |_t: u32| GpuBatch::Host { x, target: None };
    let whole = one_model(&p, DispatchCap::Off, &host);
    let cut = one_model(&p, DispatchCap::Samples(3000), &host);
    assert!(cut.2 > 1);
    assert_eq!((cut.0, cut.1), (whole.0, whole.1), "host data");
}

#[test]
fn a_pack_cut_by_rows_and_by_workgroups_gives_the_bytes_of_one_dispatch() {
    let Some(probe) = gpu(false) else { return };
    drop(probe);
    let net = Network::new(32).unwrap();
    let cells = 5usize;
    let batch = 3000usize;
    let ps: Vec<Params> = (0..cells)
        .map(|c| Params::init(&net, &Scheme::Random, 20 + c as u64))
        .collect();
    let run = |cap: DispatchCap| {
        let pack = GpuModel::pack(gpu(false).unwrap(), &ps, opts(cap), batch).unwrap();
        let rows: Vec<CellStep> = (0..cells)
            .rev()
            .map(|c| CellStep {
                slot: c,
                seed: 500 + c as u64,
                step: 1,
            })
            .collect();
        let mut losses = Vec::new();
        for t in 1..=2u32 {
            let rows: Vec<CellStep> = rows.iter().map(|r| CellStep { step: t, ..*r }).collect();
            let hy = vec![(ADAM, t as u64); cells];
            let b = GpuBatch::Gaussian {
                seed: 0,
                stream: Stream::Data,
                step: 0,
                size: batch,
            };
            losses.extend(pack.pack_adam_step(&b, &rows, &hy).unwrap().iter().map(|l| l.to_bits()));
        }
        let state: Vec<u64> = pack
            .params_of(&[0, 1, 2, 3, 4])
            .unwrap()
            .iter()
            .flat_map(bits)
            .collect();
        (state, losses, pack.dispatches(batch, cells).len())
    };
    let whole = run(DispatchCap::Off);
    assert_eq!(whole.2, 1);
    // two rows' worth of samples: the rows in slices of two; then runs of workgroups per row
    for cap in [2 * 3072, 500] {
        let cut = run(DispatchCap::Samples(cap));
        assert!(cut.2 > 2, "cap {cap}: {} dispatches", cut.2);
        assert_eq!((cut.0, cut.1), (whole.0.clone(), whole.1.clone()), "cap {cap}");
    }
}

#[test]
fn a_2_24_sample_step_on_a_slow_adapter_profile_is_cut_under_its_cap_with_the_same_bytes() {
    let Some(g) = gpu(false) else { return };
    // the default cap of an integrated GPU (the apple-m profile) and of a CPU-type adapter
    // (lavapipe, and profiles that name no type): 2^20 samples at N = 8
    let net = Network::new(8).unwrap();
    let p = Params::init(&net, &Scheme::Seed, 0);
    let m = GpuModel::with_options(
        g,
        &p,
        ModelOptions {
            kernel: Some(Kernel::Fused),
            ..ModelOptions::new(Precision::F32)
        },
    )
    .unwrap();
    if m.gpu().dispatch_type == wgpu::DeviceType::Cpu {
        assert_eq!(m.dispatch_cap(), DispatchCap::Samples(1 << 20));
        let slices = m.dispatches(1 << 24, 1);
        assert!(slices.len() >= 16, "{} dispatches", slices.len());
    }
    let d = tmpdir("profile");
    let train = |out: &str, extra: &[&str]| {
        let o = bin()
            .env("FFTLEARN_ADAPTER_PROFILE", "apple-m")
            .args([
                "train", "--device", "gpu", "--kernel", "fused", "--n", "8", "--batch", "16777216",
            ])
            .args(["--steps", "2", "--out"])
            .arg(d.join(out))
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let cut = train("cut", &[]);
    assert!(
        cut.contains("dispatch cap 1048576 samples (IntegratedGpu adapter)"),
        "{cut}"
    );
    let whole = train("whole", &["--dispatch-cap", "off"]);
    assert!(whole.contains("dispatch cap off"), "{whole}");
    for f in ["metrics.csv", "params.npz"] {
        assert_eq!(
            std::fs::read(d.join("cut").join(f)).unwrap(),
            std::fs::read(d.join("whole").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn the_dispatch_cap_flag_refuses_what_is_not_a_count() {
    for bad in ["0", "-5", "1.5", "lots"] {
        let o = bin()
            .args(["train", "--steps", "1", &format!("--dispatch-cap={bad}")])
            .output()
            .unwrap();
        assert_error(&o, 2, &["--dispatch-cap", &format!("'{bad}'"), "or off"]);
    }
}

#[test]
fn a_resumed_gpu_run_keeps_its_kernel_shape_and_chunk() {
    let Some(probe) = gpu(false) else { return };
    drop(probe);
    let d = tmpdir("resume-kernel");
    let train = |out: &str, steps: &str, extra: &[&str]| {
        bin()
            .args([
                "train", "--device", "gpu", "--n", "64", "--batch", "1000", "--steps", steps, "--out",
            ])
            .arg(d.join(out))
            .args(extra)
            .output()
            .unwrap()
    };
    // group, which auto would not pick here, with a chunk of its own: 2 steps, resumed to 4
    let shape = ["--kernel", "group", "--chunk", "300"];
    assert!(train("leg", "2", &shape).status.success());
    let r = bin()
        .args(["train", "--resume"])
        .arg(d.join("leg"))
        .args(["--steps", "4"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.contains("kernel group | chunk 300 samples"), "{out}");
    assert!(train("whole", "4", &shape).status.success());
    for f in ["metrics.csv", "params.npz"] {
        assert_eq!(
            std::fs::read(d.join("leg").join(f)).unwrap(),
            std::fs::read(d.join("whole").join(f)).unwrap(),
            "{f}"
        );
    }
    // a run on `auto` records the shape auto took (here fused), not `auto`
    assert!(train("auto", "2", &[]).status.success());
    let o = bin()
        .args(["train", "--resume"])
        .arg(d.join("auto"))
        .args(["--steps", "3", "--kernel", "group"])
        .output()
        .unwrap();
    assert_error(&o, 2, &["--kernel group", "kernel = fused"]);
    // another shape or chunk is refused by name; the dispatch cap may change (same bytes)
    for (flag, val, stored) in [("--kernel", "fused", "kernel = group"), ("--chunk", "7", "chunk = 300")] {
        let o = bin()
            .args(["train", "--resume"])
            .arg(d.join("leg"))
            .args(["--steps", "6", flag, val])
            .output()
            .unwrap();
        assert_error(&o, 2, &[flag, stored]);
    }
}

#[test]
fn the_dispatch_cap_is_refused_where_the_cpu_path_runs() {
    let d = tmpdir("cpu");
    for args in [
        vec![
            "train",
            "--device",
            "cpu",
            "--steps",
            "1",
            "--dispatch-cap",
            "5",
            "--out",
        ],
        vec![
            "snr",
            "--device",
            "cpu",
            "--n",
            "8",
            "--batches",
            "2",
            "--k",
            "2",
            "--dispatch-cap",
            "5",
            "--out",
        ],
    ] {
        let o = bin().args(&args).arg(d.join(args[0])).output().unwrap();
        assert_error(&o, 2, &["--dispatch-cap", "CPU f64 path"]);
    }
    let o = bin()
        .args([
            "bench",
            "--device",
            "cpu",
            "--n",
            "8",
            "--batches",
            "4",
            "--dispatch-cap",
            "5",
        ])
        .output()
        .unwrap();
    assert_error(&o, 2, &["--dispatch-cap", "CPU f64 path"]);
    // --device auto on a machine without a hardware GPU (CI's) takes the CPU path: the same
    if fftlearn::backend::gpu::context::pick(None, false).is_err() {
        for args in [
            vec![
                "train",
                "--steps",
                "1",
                "--kernel",
                "fused",
                "--dispatch-cap",
                "5",
                "--out",
            ],
            vec!["snr", "--n", "8", "--batches", "2", "--k", "2", "--chunk", "3", "--out"],
        ] {
            let o = bin()
                .args(&args)
                .arg(d.join(format!("auto-{}", args[0])))
                .output()
                .unwrap();
            assert_error(&o, 2, &["the GPU path", "--device auto took the CPU f64 path"]);
        }
    }
}
