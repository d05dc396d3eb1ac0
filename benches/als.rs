//! ALS from the seed's all-ones init to relative operator error <= 1e-12 on the population,
//! N = 64 and 512 (docs/learnability.md reports the figure).

use criterion::{criterion_group, criterion_main, Criterion};
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::optim::als;

fn als(c: &mut Criterion) {
    let mut g = c.benchmark_group("als_to_1e-12");
    g.sample_size(10);
    for n in [64usize, 512] {
        let net = Network::new(n).unwrap();
        let p0 = Params::init(&net, &Scheme::Seed, 0);
        let mut check = p0.clone();
        let (sweeps, rel) = als::als_solve(&mut check, 1e-12, 1000);
        assert!(rel <= 1e-12, "N = {n}: {rel}");
        eprintln!("N = {n}: {sweeps} sweeps to relative operator error {rel:.3e}");
        g.bench_function(format!("n{n}"), |b| {
            b.iter(|| {
                let mut p = p0.clone();
                als::als_solve(&mut p, 1e-12, 1000)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, als);
criterion_main!(benches);
