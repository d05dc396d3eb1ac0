//! Reproducibility: CPU results are bit-identical at any thread count, and a training run is a
//! pure function of its seed.

use fftlearn::backend::cpu;
use fftlearn::model::data::Batch;
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::model::rng::Stream;
use fftlearn::train::{Backend, HostBackend};

fn bits(v: &[num_complex::Complex64]) -> Vec<(u64, u64)> {
    v.iter().map(|z| (z.re.to_bits(), z.im.to_bits())).collect()
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn gradients_are_bit_identical_across_thread_counts() {
    let net = Network::seed();
    let p = Params::init(&net, &Scheme::Random, 4);
    for size in [1usize, 16, 1000, 4099] {
        let batch = Batch::Gaussian {
            seed: 9,
            stream: Stream::Data,
            step: 2,
            size,
        };
        let g1 = in_pool(1, || cpu::loss_grad(&p, &batch));
        let g2 = in_pool(2, || cpu::loss_grad(&p, &batch));
        let g3 = in_pool(3, || cpu::loss_grad(&p, &batch));
        assert_eq!(g1.loss.to_bits(), g2.loss.to_bits(), "batch {size}");
        assert_eq!(bits(&g1.flat()), bits(&g2.flat()), "batch {size}");
        assert_eq!(bits(&g1.flat()), bits(&g3.flat()), "batch {size}");
    }
}

#[test]
fn training_trajectories_are_bit_identical_across_thread_counts() {
    let run = |threads| {
        in_pool(threads, || {
            let net = Network::new(64).unwrap();
            let mut be = HostBackend::cpu_adam(Params::init(&net, &Scheme::Seed, 0), 1e-2, 100, 3);
            let losses: Vec<u64> = (1..=40).map(|s| be.step(s).unwrap().to_bits()).collect();
            (losses, bits(&be.params().unwrap().flat()))
        })
    };
    assert_eq!(run(1), run(2));
}
