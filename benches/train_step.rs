//! Training-step throughput (samples/s) of the CPU f64 path: data, rfft target, forward, loss,
//! backward, Adam: the same work `torch_vec.py bench` times. GPU rows are added by the gpu module.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fftlearn::network::Network;
use fftlearn::params::{Params, Scheme};
use fftlearn::train::{Backend, CpuBackend};
use std::time::Duration;

fn cpu_f64(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step_cpu_f64");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for batch in [16usize, 1024, 65536] {
        let net = Network::seed();
        let mut be = CpuBackend::new(Params::init(&net, &Scheme::Seed, 0), 1e-3, batch, 0);
        let mut step = 0u32;
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| {
            b.iter(|| {
                step += 1;
                be.step(step).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, cpu_f64);
criterion_main!(benches);
