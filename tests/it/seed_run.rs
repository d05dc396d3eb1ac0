//! The seed document's run (N = 512, Adam lr 1e-2, batch 16, all-ones init, 3000 steps)
//! reaches the FFT, as the same run in PyTorch does: the relative operator
//! error falls below 1e-12 by step 3000, at data seed 42 and at seeds 0..=9.

use fftlearn::backend::cpu;
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::train::{Backend, HostBackend};

fn seed_run(seed: u64) -> f64 {
    let net = Network::seed();
    let mut be = HostBackend::cpu_adam(Params::init(&net, &Scheme::Seed, 0), 1e-2, 16, seed);
    for step in 1..=3000 {
        be.step(step).unwrap();
    }
    cpu::rel_operator_error(&be.params().unwrap())
}

#[test]
fn seed_config_reaches_the_fft_at_seed_42() {
    let e = seed_run(42);
    assert!(e < 1e-12, "seed 42: relative operator error {e:e}");
}

#[test]
fn seed_config_reaches_the_fft_at_seeds_0_to_9() {
    let errs: Vec<f64> = (0..10).map(seed_run).collect();
    for (s, e) in errs.iter().enumerate() {
        assert!(*e < 1e-12, "seed {s}: relative operator error {e:e} (all: {errs:?})");
    }
}
