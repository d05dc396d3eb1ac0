//! Chain of trust, links 1 and 2: the f64 forward pass against a naive O(N^2) DFT and rustfft,
//! and the hand-written backward pass against central finite differences.

use fftlearn::backend::cpu;
use fftlearn::model::data::{rfft_rows, Batch};
use fftlearn::model::network::Network;
use fftlearn::model::params::{root_of_unity, Params, Scheme};
use fftlearn::model::rng::{self, Stream};
use num_complex::Complex64 as C64;

fn gaussian_rows(n: usize, rows: usize, seed: u64) -> Vec<f64> {
    let mut x = vec![0.0; n * rows];
    for (b, row) in x.chunks_mut(n).enumerate() {
        rng::normals(seed, Stream::Measure, 0, b as u32, row);
    }
    x
}

/// The naive DFT, bins 0..=N/2, with exactly reduced angles.
fn naive_rdft(x: &[f64]) -> Vec<C64> {
    let n = x.len();
    (0..=n / 2)
        .map(|k| {
            x.iter()
                .enumerate()
                .map(|(j, &v)| root_of_unity((j * k) as u64, n as u64) * v)
                .sum()
        })
        .collect()
}

fn rel_err(a: &[C64], b: &[C64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let den: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    (num / den).sqrt()
}

#[test]
fn exact_scheme_is_the_real_fft_at_every_size() {
    for log2 in 2..=16u32 {
        let n = 1usize << log2;
        let net = Network::new(n).unwrap();
        let p = Params::init(&net, &Scheme::Exact, 0);
        let rows = if n <= 4096 { 9 } else { 2 };
        let x = gaussian_rows(n, rows, log2 as u64);
        let y = cpu::forward(&p, &x);
        let r = rfft_rows(&net, &x);
        let e = rel_err(&y, &r);
        assert!(e <= 1e-13, "N = {n}: vs rustfft rel err {e:e}");
        if n <= 4096 {
            let k = net.bins();
            for (b, row) in x.chunks(n).enumerate().take(3) {
                let d = naive_rdft(row);
                let e = rel_err(&y[b * k..(b + 1) * k], &d);
                assert!(e <= 1e-13, "N = {n}: vs naive DFT rel err {e:e}");
            }
        }
    }
}

#[test]
fn exact_scheme_has_zero_operator_error() {
    for n in [4usize, 8, 64, 512, 2048] {
        let net = Network::new(n).unwrap();
        let p = Params::init(&net, &Scheme::Exact, 0);
        let e = cpu::rel_operator_error(&p);
        assert!(e < 1e-14, "N = {n}: {e:e}");
        let seed = Params::init(&net, &Scheme::Seed, 0);
        assert!(cpu::rel_operator_error(&seed) > 0.5);
    }
}

/// Central differences of the loss in each real direction, compared with the analytic
/// gradient (PyTorch convention: Re part = dL/dRe, Im part = dL/dIm).
fn check_fd(n: usize, scheme: Scheme, samples: usize, probes: &[usize]) {
    let net = Network::new(n).unwrap();
    let p = Params::init(&net, &scheme, 11);
    let x = gaussian_rows(n, samples, 99);
    let batch = Batch::Given { x: &x, target: None };
    let g = cpu::loss_grad(&p, &batch).flat();
    let flat = p.flat();
    let gnorm = g.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
    for &k in probes {
        for part in 0..2 {
            // the loss is a polynomial of degree 18: a step of 1e-5 * (1 + |p|) keeps the
            // truncation error (h^2 f''') and the rounding error (eps L / h) both below 1e-9
            let h = 1e-5 * (1.0 + flat[k].norm());
            let eval = |d: f64| {
                let mut q = p.clone();
                let mut f = flat.clone();
                if part == 0 {
                    f[k].re += d
                } else {
                    f[k].im += d
                }
                q.set_flat(&f);
                cpu::loss(&q, &batch)
            };
            let fd = (eval(h) - eval(-h)) / (2.0 * h);
            let an = if part == 0 { g[k].re } else { g[k].im };
            let err = (fd - an).abs() / an.abs().max(1e-3 * gnorm);
            assert!(
                err <= 1e-7,
                "N = {n}, param {k} part {part}: fd {fd:e} analytic {an:e} rel {err:e}"
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_n8() {
    check_fd(
        8,
        Scheme::Random,
        5,
        &(0..Network::new(8).unwrap().n_params()).collect::<Vec<_>>(),
    );
}

#[test]
fn gradients_match_finite_differences_n64() {
    check_fd(
        64,
        Scheme::Random,
        16,
        &(0..Network::new(64).unwrap().n_params()).collect::<Vec<_>>(),
    );
}

#[test]
fn gradients_match_finite_differences_n512() {
    // M, every stage's first and last twiddle, and a few in between
    let net = Network::seed();
    let mut probes: Vec<usize> = (0..4).collect();
    for st in net.stages() {
        probes.push(st.param(0));
        probes.push(st.param(st.e - 1));
        probes.push(st.param(st.e / 2));
    }
    check_fd(512, Scheme::Random, 16, &probes);
}

#[test]
fn unused_twiddle_has_exactly_zero_gradient() {
    let net = Network::seed();
    for scheme in [Scheme::Seed, Scheme::Random, Scheme::Exact] {
        let p = Params::init(&net, &scheme, 3);
        let g = cpu::loss_grad(
            &p,
            &Batch::Gaussian {
                seed: 1,
                stream: Stream::Data,
                step: 1,
                size: 16,
            },
        );
        assert_eq!(g.tw[510], C64::new(0.0, 0.0));
        assert_eq!(g.tw[510].re.to_bits(), 0.0f64.to_bits());
    }
}
