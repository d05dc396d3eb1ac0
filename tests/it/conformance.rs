//! Conformance loops: every optimizer in `Optimizer::ALL` and every kernel shape in
//! `Kernel::ALL` held to the same checks, so a new arm of either enum is tested the day it
//! is added (the `settings` match below does not compile until the new optimizer is given
//! its learning rates).

use crate::gpu::{gpu, model};
use fftlearn::backend::cpu;
use fftlearn::backend::gpu::{Kernel, Precision};
use fftlearn::model::data::Batch;
use fftlearn::model::network::Network;
use fftlearn::model::params::{Init, Params, Scheme};
use fftlearn::optim::{Method, Optimizer, Schedule};
use fftlearn::train::{backend_for, Backend, BackendKind, DataMode, HostBackend, TrainConfig};

/// (lr, momentum, beta2) settings per optimizer that are stable at N = 16 from the random
/// init; the Adam-based ones also with a short beta2 (`--beta2`).
fn settings(o: Optimizer) -> &'static [(f64, f64, f64)] {
    const B2: f64 = fftlearn::optim::BETA2;
    match o {
        Optimizer::Adam => &[(1e-2, 0.0, B2), (1e-2, 0.0, 0.95)],
        Optimizer::Sgd => &[(2e-3, 0.0, B2), (2e-3, 0.9, B2)],
        Optimizer::Phase => &[(1e-2, 0.0, B2), (1e-2, 0.0, 0.95)],
        Optimizer::PhaseSgd => &[(2e-3, 0.5, B2)],
        Optimizer::Dgn => &[(0.5, 0.0, B2)],
        Optimizer::Lm => &[(1.0, 0.0, B2)],
        Optimizer::Als => &[(1.0, 0.0, B2)],
    }
}

fn cfg(
    n: usize,
    o: Optimizer,
    (lr, momentum, beta2): (f64, f64, f64),
    data: DataMode,
    schedule: Schedule,
) -> TrainConfig {
    TrainConfig {
        n,
        steps: 40,
        batch: 64,
        lr,
        seed: 3,
        init: Init::Scheme(Scheme::Random),
        print_every: 10,
        out: std::env::temp_dir(),
        checkpoint_every: 10,
        optimizer: o,
        momentum,
        beta2,
        schedule,
        data,
        ..TrainConfig::default()
    }
}

fn population_loss(p: &Params) -> f64 {
    cpu::loss(p, &Batch::Identity) * p.net.n() as f64
}

#[test]
fn every_optimizer_names_itself_and_its_checkpoint_slots() {
    for o in Optimizer::ALL {
        assert_eq!(o.name().parse::<Optimizer>().unwrap(), o);
        for &(_, mom, beta2) in settings(o) {
            let m = Method::new(o, 7, mom, beta2).unwrap();
            assert_eq!(m.optimizer(), o);
            let names: Vec<String> = m.state().slots.into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, o.slots(mom), "{o} (momentum {mom})");
        }
    }
    assert!("newton"
        .parse::<Optimizer>()
        .unwrap_err()
        .to_string()
        .contains("accepted: adam"));
}

#[test]
fn every_optimizer_lowers_the_population_loss() {
    let net = Network::new(16).unwrap();
    let p0 = Params::init(&net, &Scheme::Random, 1);
    let l0 = population_loss(&p0);
    for opt in Optimizer::ALL {
        for &(lr, mom, beta2) in settings(opt) {
            for data in DataMode::ALL {
                if opt.population_only() && data == DataMode::Minibatch {
                    continue; // LM fits the population loss only (validate() refuses it)
                }
                for schedule in [Schedule::Constant, Schedule::Cosine] {
                    let c = cfg(16, opt, (lr, mom, beta2), data, schedule);
                    c.validate().unwrap();
                    let mut b = HostBackend::new(&c, p0.clone(), None).unwrap();
                    for s in 1..=40 {
                        b.step(s).unwrap();
                    }
                    let l = population_loss(&b.params().unwrap());
                    assert!(
                        l < 0.8 * l0,
                        "{opt} (lr {lr}, momentum {mom}, beta2 {beta2}) {data} {schedule}: {l0} -> {l}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_optimizer_resumes_bit_for_bit() {
    let net = Network::new(16).unwrap();
    let p0 = Params::init(&net, &Scheme::Random, 5);
    for opt in Optimizer::ALL {
        for &(lr, mom, beta2) in settings(opt) {
            let data = if opt.population_only() {
                DataMode::Population
            } else {
                DataMode::Minibatch
            };
            let c = cfg(16, opt, (lr, mom, beta2), data, "step:5:0.5".parse().unwrap());
            let mut whole = HostBackend::new(&c, p0.clone(), None).unwrap();
            for s in 1..=12 {
                whole.step(s).unwrap();
            }
            let mut first = HostBackend::new(&c, p0.clone(), None).unwrap();
            for s in 1..=6 {
                first.step(s).unwrap();
            }
            let (pp, st) = (first.params().unwrap(), first.state().unwrap());
            let mut second = HostBackend::new(&c, Params::init(&net, &Scheme::Seed, 0), None).unwrap();
            second.restore(&pp, &st).unwrap();
            for s in 7..=12 {
                second.step(s).unwrap();
            }
            assert_eq!(
                whole.params().unwrap(),
                second.params().unwrap(),
                "{opt} momentum {mom} beta2 {beta2}"
            );
        }
    }
}

#[test]
fn every_gpu_optimizer_on_every_kernel_follows_the_cpu() {
    // each gradient optimizer (adam on minibatches entirely on the device; the others and
    // population data with the gradient from the device and the update on the host) on every
    // kernel shape: the first steps must track the CPU path closely
    let net = Network::new(16).unwrap();
    let p0 = Params::init(&net, &Scheme::Random, 1);
    let l0 = cpu::loss(&p0, &Batch::Identity);
    for opt in Optimizer::ALL.into_iter().filter(|o| o.on_gpu()) {
        for &setting in settings(opt) {
            for data in DataMode::ALL {
                let c = TrainConfig {
                    steps: 20,
                    backend: BackendKind::GpuF32,
                    ..cfg(16, opt, setting, data, Schedule::Cosine)
                };
                c.validate().unwrap();
                for kernel in Kernel::ALL {
                    let Some(dev) = gpu(false) else { return };
                    let m = model(dev, &p0, Precision::F32, kernel);
                    let mut gb = backend_for(&c, p0.clone(), Some(m)).unwrap();
                    assert_eq!(gb.kind(), BackendKind::GpuF32);
                    let cpu_cfg = TrainConfig {
                        backend: BackendKind::CpuF64,
                        ..c.clone()
                    };
                    let mut cb = HostBackend::new(&cpu_cfg, p0.clone(), None).unwrap();
                    for s in 1..=20 {
                        let lg = gb.step(s).unwrap();
                        let lc = cb.step(s).unwrap();
                        // f32 gradients (~1e-6 relative) through 20 steps stay within 1e-3 of the f64 path
                        assert!(
                            (lg - lc).abs() <= 1e-3 * lc.abs(),
                            "{kernel:?} {opt} {data} step {s}: gpu {lg} cpu {lc}"
                        );
                    }
                    let l = cpu::loss(&gb.params().unwrap(), &Batch::Identity);
                    assert!(l < 0.95 * l0, "{kernel:?} {opt} {data} on the GPU: {l0} -> {l}");
                }
            }
        }
    }
}
