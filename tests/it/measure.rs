//! The measurement suite against independent routes: the Hessian against second differences of
//! the loss and against the Gauss-Newton matrix at the optimum, the zero-mode count at
//! `exact`, and the r-sweep against its closed form.

use fftlearn::analysis::rsweep::{self, Phases};
use fftlearn::model::data::Batch;
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::objective::hessian;

fn pop_loss(p: &Params) -> f64 {
    fftlearn::backend::cpu::loss(p, &Batch::Identity) * p.net.n() as f64
}

fn shifted(p: &Params, moves: &[(usize, f64)]) -> Params {
    let mut q = p.clone();
    let mut f = q.flat();
    for &(j, h) in moves {
        if j.is_multiple_of(2) {
            f[j / 2].re += h;
        } else {
            f[j / 2].im += h;
        }
    }
    q.set_flat(&f);
    q
}

#[test]
fn hessian_matches_second_differences_of_the_loss() {
    let net = Network::new(8).unwrap();
    let p = Params::init(&net, &Scheme::Random, 3);
    let nr = hessian::n_real(&net);
    let (h, asym) = hessian::hessian(&p);
    assert!(asym < 1e-12, "asymmetry {asym:e}");
    // L is quadratic in each real parameter, so central second differences are exact up to
    // rounding (~ eps L / h^2 = 1e-16 * 10 / 1e-2 ~ 1e-13 here)
    let step = 0.1;
    let scale = h.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for i in 0..nr {
        for j in 0..nr {
            let fd = if i == j {
                (pop_loss(&shifted(&p, &[(i, step)])) - 2.0 * pop_loss(&p) + pop_loss(&shifted(&p, &[(i, -step)])))
                    / (step * step)
            } else {
                (pop_loss(&shifted(&p, &[(i, step), (j, step)]))
                    - pop_loss(&shifted(&p, &[(i, step), (j, -step)]))
                    - pop_loss(&shifted(&p, &[(i, -step), (j, step)]))
                    + pop_loss(&shifted(&p, &[(i, -step), (j, -step)])))
                    / (4.0 * step * step)
            };
            let d = (fd - h[i * nr + j]).abs();
            assert!(
                d <= 1e-9 * scale,
                "H[{i},{j}] = {} vs second difference {fd}",
                h[i * nr + j]
            );
        }
    }
    // away from the optimum the Hessian is not the Gauss-Newton matrix
    let (gn, _) = hessian::gauss_newton(&p);
    let diff = h.iter().zip(&gn).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff > 1e-3 * scale, "H == GN away from the optimum?");
}

#[test]
fn at_the_exact_fft_two_zero_modes_and_h_equals_gauss_newton() {
    for n in [8usize, 64] {
        let net = Network::new(n).unwrap();
        let p = Params::init(&net, &Scheme::Exact, 0);
        let (h, _) = hessian::hessian(&p);
        let (gn, _) = hessian::gauss_newton(&p);
        let scale = gn.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let diff = h.iter().zip(&gn).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        // the residual is zero (to rounding), so H = GN: two independent routes agree
        assert!(diff <= 1e-13 * scale, "N = {n}: max |H - GN| = {diff:e} of {scale:e}");
        let s = hessian::spectrum(&net, &gn, 1e-9).unwrap();
        assert_eq!(s.zero_modes.len(), 2, "N = {n}: {:?}", s.zero_modes);
        let unused = format!("tw[{}, unused]", net.unused_twiddle());
        for (_, carriers) in &s.zero_modes {
            assert!(
                carriers[0].0.starts_with(&unused) && carriers[0].1 > 0.999,
                "{carriers:?}"
            );
        }
        assert_eq!(s.negative, 0);
        // lambda_max is the M / stage-1 block's 2K/2^... : at N = 8, K = 5: measured 9.6 exactly
        if n == 8 {
            assert!((s.eig.last().unwrap() - 9.6).abs() < 1e-12, "{:?}", s.eig.last());
        }
    }
}

#[test]
fn rsweep_matches_its_closed_form_and_paths_are_binomial() {
    let net = Network::new(64).unwrap();
    let hist = rsweep::path_histogram(&net);
    // paths through 5 stages carry m ~ Binomial(5, 1/2) twiddles: C(5, m) / 32 of all paths
    let total: usize = hist.iter().sum();
    assert_eq!(total, 33 * 64);
    let binom = [1usize, 5, 10, 10, 5, 1];
    for (m, &c) in hist.iter().enumerate() {
        assert_eq!(c * 32, binom[m] * total, "m = {m}: {hist:?}");
    }
    let rows = rsweep::sweep(&net, &[0.5, 0.9, 1.5, 2.0], Phases::Exact, 0);
    for r in &rows {
        let want = rsweep::predicted_loss(&net, &hist, r.r);
        assert!(
            (r.loss - want).abs() <= 1e-12 * want,
            "r = {}: {} vs {want}",
            r.r,
            r.loss
        );
    }
    // the fitted slopes come from log-log least squares
    let pts: Vec<(f64, f64)> = [1.0f64, 2.0, 4.0].iter().map(|&x| (x, 3.0 * x.powi(5))).collect();
    assert!((rsweep::log_slope(&pts, 0.0..=10.0) - 5.0).abs() < 1e-12);
}

#[test]
fn lanczos_on_the_gn_operator_matches_the_dense_spectrum() {
    use fftlearn::objective::hessian::{gauss_newton, lanczos, spectrum, GnOperator};
    for (n, scheme) in [(64usize, Scheme::Exact), (128, Scheme::Exact), (32, Scheme::Random)] {
        let net = Network::new(n).unwrap();
        let p = Params::init(&net, &scheme, 3);
        let (gn, _) = gauss_newton(&p);
        let op = GnOperator::new(&p).unwrap();
        let nr = net.n_real_params();
        // the operator reproduces the dense matrix column by column
        for j in [0usize, 5, 9, nr / 2, nr - 3] {
            let mut e = vec![0.0; nr];
            e[j] = 1.0;
            let col = op.apply(&e);
            let scale = (0..nr).map(|i| gn[i * nr + i]).fold(0.0, f64::max);
            for i in 0..nr {
                assert!((col[i] - gn[i * nr + j]).abs() <= 1e-12 * scale, "N={n} ({i},{j})");
            }
        }
        // Lanczos over the used parameters: the extremes of the dense spectrum
        let mask: Vec<bool> = (0..nr)
            .map(|j| fftlearn::objective::hessian::group_of(&net, j).is_some())
            .collect();
        let (ritz, iters) = lanczos(|v| op.apply(v), &mask, 400, 1).unwrap();
        let s = spectrum(&net, &gn, 1e-9).unwrap();
        let lmax = *s.eig.last().unwrap();
        let lmin = s
            .eig
            .iter()
            .copied()
            .filter(|&l| l > s.tol)
            .fold(f64::INFINITY, f64::min);
        assert!(
            (ritz[ritz.len() - 1] - lmax).abs() <= 1e-8 * lmax,
            "N={n}: lmax {} vs {lmax}",
            ritz[ritz.len() - 1]
        );
        assert!(
            (ritz[0] - lmin).abs() <= 1e-6 * lmin,
            "N={n} {scheme}: lmin {} vs {lmin} after {iters}",
            ritz[0]
        );
    }
}
