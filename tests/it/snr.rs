//! `fftlearn snr`'s numbers: the closed-form moments against exact Gauss-Hermite enumeration,
//! and the minibatch estimates against the closed form within their sampling error.

use fftlearn::analysis::snr;
use fftlearn::backend::cpu;
use fftlearn::model::data::Batch;
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::objective::hessian::{self, n_real};

/// E[g] and E[g^2] per real parameter by 3-point Gauss-Hermite quadrature in every coordinate:
/// nodes 0, +-sqrt(3) with weights 2/3, 1/6, 1/6 integrate polynomials of degree <= 5 in each
/// coordinate exactly against N(0, 1), and g (degree 2) and g^2 (degree 4) are polynomials.
fn enumerate(p: &Params) -> (Vec<f64>, Vec<f64>) {
    let n = p.net.n();
    let nr = n_real(&p.net);
    let nodes = [(0.0, 2.0 / 3.0), (3f64.sqrt(), 1.0 / 6.0), (-(3f64.sqrt()), 1.0 / 6.0)];
    let count = 3usize.pow(n as u32);
    let mut x = vec![0.0; count * n];
    let mut w = vec![1.0; count];
    for c in 0..count {
        let mut r = c;
        for i in 0..n {
            let (v, wt) = nodes[r % 3];
            r /= 3;
            x[c * n + i] = v;
            w[c] *= wt;
        }
    }
    let g = cpu::per_sample_grads(p, &Batch::Given { x: &x, target: None });
    let mut m1 = vec![0.0; nr];
    let mut m2 = vec![0.0; nr];
    for (c, row) in g.chunks(nr).enumerate() {
        for j in 0..nr {
            m1[j] += w[c] * row[j];
            m2[j] += w[c] * row[j] * row[j];
        }
    }
    (m1, m2)
}

#[test]
fn closed_form_moments_match_gauss_hermite_enumeration() {
    for (n, scheme) in [
        (4, Scheme::Random),
        (4, Scheme::Seed),
        (8, Scheme::Random),
        (8, Scheme::Modulus(1.3)),
    ] {
        let net = Network::new(n).unwrap();
        let p = Params::init(&net, &scheme, 7);
        let ex = snr::exact(&p);
        let (m1, m2) = enumerate(&p);
        let (_, pop) = hessian::population_grad(&p);
        let scale = m2.iter().fold(0.0f64, |a, v| a.max(*v)).max(1.0);
        for j in 0..m1.len() {
            let var = m2[j] - m1[j] * m1[j];
            assert!(
                (ex.grad[j] - m1[j]).abs() <= 1e-12 * scale.sqrt(),
                "N={n} {scheme} j={j}: {} vs {}",
                ex.grad[j],
                m1[j]
            );
            assert!(
                (pop[j] - m1[j]).abs() <= 1e-12 * scale.sqrt(),
                "population gradient j={j}"
            );
            assert!(
                (ex.var[j] - var).abs() <= 1e-11 * scale,
                "N={n} {scheme} j={j}: var {} vs {var}",
                ex.var[j]
            );
        }
        // a real signal exists at these points
        assert!(ex.var.iter().any(|&v| v > 1e-3), "N={n} {scheme}: no variance at all");
    }
}

#[test]
fn minibatch_statistics_agree_with_the_closed_form_within_sampling_error() {
    let net = Network::new(8).unwrap();
    let p = Params::init(&net, &Scheme::Random, 3);
    let ex = snr::exact(&p);
    let (_, pop) = hessian::population_grad(&p);
    let (b, k) = (4usize, 4000usize);
    let grads: Vec<Vec<f64>> = (0..k).map(|i| snr::cpu_minibatch(&p, 11, i as u32, b)).collect();
    // unbiased mean: every parameter's K-average within 5 standard errors of E g
    for j in 0..pop.len() {
        let mean = grads.iter().map(|g| g[j]).sum::<f64>() / k as f64;
        let se = (ex.var[j] / (b * k) as f64).sqrt();
        assert!(
            (mean - pop[j]).abs() <= 5.0 * se + 1e-12,
            "j={j}: mean {mean} vs {} (se {se})",
            pop[j]
        );
    }
    let rows = snr::rows(&net, b, &grads, &pop, Some(&ex));
    assert_eq!(rows.len(), net.stages().len() + 2); // M, stages, all
    for r in &rows {
        // the relative standard error of a variance estimate from K = 4000 draws of a quadratic
        // form is a few percent; 10% on the std is > 5 of them
        let rel = (r.std - r.std_exact).abs() / r.std_exact;
        assert!(
            rel < 0.10,
            "{}: std {} vs closed form {} ({rel:.3})",
            r.group,
            r.std,
            r.std_exact
        );
        let rb = (r.b_simple - r.b_simple_exact).abs() / r.b_simple_exact;
        assert!(rb < 0.2, "{}: B_simple {} vs {}", r.group, r.b_simple, r.b_simple_exact);
        assert!(r.cos_mean > -1.0 && r.cos_mean <= 1.0 && r.cos_min <= r.cos_mean);
        assert_eq!(r.k, k);
        assert_eq!(r.batch, b);
    }
    let all = rows.last().unwrap();
    assert_eq!(all.group, "all");
    assert_eq!(all.params, net.n_real_params() - 2);
    assert!((all.pop_norm - pop.iter().map(|v| v * v).sum::<f64>().sqrt()).abs() < 1e-12 * all.pop_norm);
}

#[test]
fn scaling_fits_recover_known_slopes() {
    // SNR of iid minibatches scales exactly as sqrt(B) in the closed form
    let net = Network::new(16).unwrap();
    let p = Params::init(&net, &Scheme::Random, 5);
    let ex = snr::exact(&p);
    let (_, pop) = hessian::population_grad(&p);
    let mut rows = Vec::new();
    for (i, b) in [2usize, 32, 512].into_iter().enumerate() {
        let grads: Vec<Vec<f64>> = (0..8)
            .map(|k| snr::cpu_minibatch(&p, 1, (i * 8 + k) as u32, b))
            .collect();
        rows.extend(snr::rows(&net, b, &grads, &pop, Some(&ex)));
    }
    let s = snr::batch_slope(&rows, "all", |r| r.snr_exact_median);
    assert!((s - 0.5).abs() < 1e-12, "closed-form SNR slope {s}");
    // a synthetic per-stage std of c * 2^((L - s) / 2) has slope exactly 1/2
    let mut synthetic = rows.clone();
    let l = net.stages().len() as f64;
    for r in synthetic.iter_mut() {
        if let Some(s) = r.group.strip_prefix("stage") {
            r.std = 3.0 * 2f64.powf((l - s.parse::<f64>().unwrap()) / 2.0);
        }
    }
    assert!((snr::stage_slope(&synthetic, 2, |r| r.std) - 0.5).abs() < 1e-12);
    assert_eq!(snr::median(vec![3.0, f64::NAN, 1.0, 2.0, 10.0]), 2.5);
}
