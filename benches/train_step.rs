//! Training-step throughput (samples/s) of the CPU f64 path: data, rfft target, forward, loss,
//! backward, Adam: the same work `torch_vec.py bench` times; and the GPU path's, per kernel shape.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::train::{Backend, HostBackend};
use std::time::Duration;

fn cpu_f64(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step_cpu_f64");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for batch in [16usize, 1024, 65536] {
        let net = Network::seed();
        let mut be = HostBackend::cpu_adam(Params::init(&net, &Scheme::Seed, 0), 1e-3, batch, 0);
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

/// The GPU kernels, both shapes (one invocation per sample: `lane`; one workgroup per sample:
/// `group`), on the first adapter wgpu finds (FFTLEARN_BENCH_ADAPTER picks another): Adam
/// steps on device-generated data. Batches: FFTLEARN_BENCH_GPU_BATCHES (default 65536).
fn gpu(c: &mut Criterion) {
    use fftlearn::backend::gpu::{context, Gpu, GpuBatch, GpuModel, Kernel, ModelOptions, Precision};
    use fftlearn::optim::Adam;
    let name = std::env::var("FFTLEARN_BENCH_ADAPTER").ok();
    for kernel in Kernel::ALL {
        let gpu = match context::pick(name.as_deref(), true).and_then(|a| Gpu::open(&a, false)) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("*** skipping GPU benches: {e}");
                return;
            }
        };
        let label = format!("train_step_gpu_f32_{} [{}]", kernel.name(), gpu.info.name);
        let net = Network::seed();
        let opts = ModelOptions {
            kernel: Some(kernel),
            ..ModelOptions::new(Precision::F32)
        };
        let model = GpuModel::with_options(gpu, &Params::init(&net, &Scheme::Seed, 0), opts).unwrap();
        let adam = Adam::new(1e-3);
        let mut g = c.benchmark_group(label);
        g.sample_size(10)
            .measurement_time(Duration::from_secs(20))
            .warm_up_time(Duration::from_secs(1));
        let batches: Vec<usize> = std::env::var("FFTLEARN_BENCH_GPU_BATCHES")
            .ok()
            .map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![65536]);
        for batch in batches {
            let mut t = 0u64;
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| {
                b.iter(|| {
                    t += 1;
                    let bt = GpuBatch::Gaussian {
                        seed: 0,
                        stream: fftlearn::model::rng::Stream::Data,
                        step: t as u32,
                        size: batch,
                    };
                    model.adam_step(&bt, &adam.hyper(), t).unwrap()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, cpu_f64, gpu);
criterion_main!(benches);
