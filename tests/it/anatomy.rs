//! The stall anatomy (`fftlearn inspect`, `analysis::anatomy`) and its evidence: the hand-built
//! stall point `odd-off` has exactly the predicted error and gradient structure; the per-stage
//! deviation is exact on a point built with known errors; the exact Hessian-vector product
//! matches the dense Hessian; sweeps keep the parameters of the cells asked for.

use crate::sweep::sweep;
use crate::util::{assert_error, bin, tmpdir};
use fftlearn::analysis::anatomy;
use fftlearn::model::network::Network;
use fftlearn::model::params::{exact_twiddles, Params, Scheme, EXACT_M};
use fftlearn::objective::hessian;
use num_complex::Complex64 as C64;

/// The odd half switched off (M row 1 = 0, odd twiddles at random unit-circle phases): the
/// even bins are exact, the odd bins are exactly zero, so the relative operator error is
/// sqrt((N/4) / (N/2 + 1)); the gradient vanishes exactly on every parameter but M's row 1
/// (the even half is exact and the two halves are independent; every odd path carries the
/// factor M row 1 = 0), and there it is minus (2 / (N/2+1)) times the correlation of the
/// switched-off subtree with its target.
#[test]
fn the_hand_built_stall_has_the_predicted_error_and_gradient() {
    for n in [8usize, 64] {
        let net = Network::new(n).unwrap();
        let p = Params::init(&net, &Scheme::OddOff(0.0, 1.0), 3);
        let bins = anatomy::bins(&p);
        for b in &bins {
            if b.bin % 2 == 0 {
                assert!(b.err2 <= 1e-28 && (b.energy - 1.0).abs() <= 1e-14, "N = {n}: {b:?}");
            } else {
                assert!((b.err2 - 1.0).abs() <= 1e-14 && b.energy == 0.0, "N = {n}: {b:?}");
            }
        }
        let want = ((n / 4) as f64 / (n / 2 + 1) as f64).sqrt();
        assert!((anatomy::rel_error(&bins) - want).abs() <= 1e-15, "N = {n}");
        assert!((anatomy::odd_off_error(&net) - want).abs() <= 1e-16);
        assert!(
            (fftlearn::backend::cpu::rel_operator_error(&p) - want).abs() <= 1e-14,
            "N = {n}"
        );
        let failed = anatomy::failed_subtrees(&bins, &net, 1e-2);
        assert_eq!(failed.len(), 1, "N = {n}: {failed:?}");
        assert_eq!((failed[0].modulus, failed[0].residue, failed[0].bins), (2, 1, n / 4));
        assert!((failed[0].share - 1.0).abs() <= 1e-15);

        let g = anatomy::grad_norms(&p);
        for (j, v) in g.grad.iter().enumerate() {
            let is_m1 = (4..8).contains(&j);
            if anatomy::half_of(&net, j) == Some(1) && !is_m1 {
                assert_eq!(*v, 0.0, "N = {n}: odd twiddle parameter {j}");
            } else if !is_m1 {
                assert!(v.abs() <= 1e-13, "N = {n}: even parameter {j}: {v}");
            }
        }
        assert!(g.halves[0] <= 1e-12);
        // M row 1: g_c = -(2/K) <T_c, F> over the odd bins, T_c = the subtree's map with M row 1 = e_c
        let k = net.bins() as f64;
        for c in 0..2 {
            let mut q = p.clone();
            q.m[2 + c] = C64::new(1.0, 0.0);
            let t = fftlearn::backend::cpu::operator(&q);
            let f = fftlearn::backend::cpu::operator(&Params::init(&net, &Scheme::Exact, 0));
            let mut corr = C64::default();
            for r in (1..net.bins()).step_by(2) {
                for col in 0..n {
                    if (col >= n / 2) as usize == c {
                        corr += f[r * n + col] * t[r * n + col].conj();
                    }
                }
            }
            let want = -corr * (2.0 / k);
            let got = C64::new(g.grad[2 * (2 + c)], g.grad[2 * (2 + c) + 1]);
            assert!(
                (got - want).norm() <= 1e-12 * (1.0 + want.norm()),
                "N = {n}, M[1,{c}]: {got} vs {want}"
            );
            assert!(
                want.norm() > 1e-3,
                "N = {n}: the predicted gradient is not trivially zero"
            );
        }
    }
}

/// A point built from the exact FFT with known twiddle errors: the per-stage report gives
/// exactly those errors, in the right stage and half, and nothing elsewhere.
#[test]
fn stage_deviation_is_exact_on_a_point_with_known_errors() {
    let net = Network::new(64).unwrap();
    let mut tw = exact_twiddles(&net);
    let st3 = net.stages()[2]; // s = 3, e = 8
    let st5 = net.stages()[4]; // s = 5, e = 32
    tw[st3.offset + 1] += C64::new(0.25, 0.0);
    tw[st3.offset + 3] += C64::new(0.0, 0.5);
    tw[st5.offset + 6] *= 0.5;
    let p = Params::from_parts(EXACT_M, tw).unwrap();
    for s in anatomy::stages(&p) {
        match (s.stage, s.half) {
            (3, 1) => {
                assert_eq!((s.count, s.exact), (4, 2));
                assert!(
                    (s.max_dev - 0.5).abs() <= 1e-15 && (s.mean_dev - 0.75 / 4.0).abs() <= 1e-15,
                    "{s:?}"
                );
            }
            (5, 0) => {
                assert_eq!((s.count, s.exact), (16, 15));
                assert!((s.max_dev - 0.5).abs() <= 1e-15, "{s:?}");
                assert!((s.modulus.0 - 0.5).abs() <= 1e-15 && (s.modulus.2 - 1.0).abs() <= 1e-15);
            }
            _ => {
                assert_eq!(s.exact, s.count, "{s:?}");
                assert!(s.max_dev <= 1e-15, "{s:?}");
            }
        }
    }
    // the bins those twiddles reach, and no others, are wrong
    let bins = anatomy::bins(&p);
    for b in &bins {
        let hit = b.bin % 8 == 1 || b.bin % 8 == 3 || b.bin % 32 == 6;
        assert_eq!(b.err2 > 1e-20, hit, "{b:?}");
    }
    assert!(anatomy::failed_subtrees(&anatomy::bins(&Params::init(&net, &Scheme::Exact, 0)), &net, 1e-2).is_empty());
}

/// The Hessian-vector product `inspect` feeds to Lanczos equals the dense exact Hessian times
/// the vector (N = 8, a random point), and the lowest Ritz pair is an eigenpair.
#[test]
fn hessian_vector_product_matches_the_dense_hessian() {
    let net = Network::new(8).unwrap();
    let p = Params::init(&net, &Scheme::Random, 11);
    let nr = hessian::n_real(&net);
    let (h, _) = hessian::hessian(&p);
    let v = anatomy::random_direction(&net, 4);
    let hv = anatomy::hessian_vector(&p, &v, 1e-3);
    let dense: Vec<f64> = (0..nr).map(|i| (0..nr).map(|j| h[i * nr + j] * v[j]).sum()).collect();
    let scale = dense.iter().map(|x| x * x).sum::<f64>().sqrt();
    for (a, b) in hv.iter().zip(&dense) {
        assert!((a - b).abs() <= 1e-7 * scale, "{a} vs {b}");
    }
    let c = anatomy::curvature(&p, 100, 1).unwrap();
    let used: Vec<usize> = (0..nr).filter(|&j| hessian::group_of(&net, j).is_some()).collect();
    let sub: Vec<f64> = used
        .iter()
        .flat_map(|&i| used.iter().map(move |&j| (i, j)))
        .map(|(i, j)| h[i * nr + j])
        .collect();
    let ev = hessian::eigenvalues(used.len(), &sub).unwrap();
    assert!(
        (c.min - ev[0]).abs() <= 1e-6 * ev[ev.len() - 1].abs(),
        "{} vs {}",
        c.min,
        ev[0]
    );
    assert!((c.max - ev[ev.len() - 1]).abs() <= 1e-6 * ev[ev.len() - 1].abs());
    assert!(ev[0] < 0.0, "a random point has negative curvature");
    let hv = anatomy::hessian_vector(&p, &c.min_vector, 1e-3);
    let res: f64 = hv
        .iter()
        .zip(&c.min_vector)
        .map(|(a, b)| (a - c.min * b).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(res <= 1e-5 * ev[ev.len() - 1].abs(), "residual {res}");
}

/// `inspect` on the hand-built stall: the report names the switched-off subtree, gives a
/// verdict, writes its files, and runs the escapes; bad input is one clear error.
#[test]
fn inspect_reports_the_stall_and_refuses_bad_input() {
    let d = tmpdir("inspect");
    let out = bin()
        .args([
            "inspect",
            "--init",
            "odd-off:0",
            "--n",
            "16",
            "--lanczos",
            "30",
            "--escape",
            "0.1",
        ])
        .args(["--escape-steps", "300", "--eval-every", "100", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("subtree in error: bins k = 1 (mod 2) (4 bins)"), "{text}");
    assert!(text.contains("relative operator error 6.666667e-1"), "{text}");
    assert!(text.contains("verdict: "), "{text}");
    for f in ["bins.csv", "stages.csv", "twiddles.csv", "escape.csv", "anatomy.png"] {
        assert!(d.join(f).exists(), "{f}");
    }
    let esc = std::fs::read_to_string(d.join("escape.csv")).unwrap();
    let dirs: Vec<&str> = esc.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(dirs, ["fresh", "lowest", "random"], "{esc}");
    assert_eq!(
        std::fs::read_to_string(d.join("bins.csv")).unwrap().lines().count(),
        1 + 9
    );

    let o = bin()
        .args(["inspect", "--n", "16", "--escape", "-1", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    assert_error(&o, 2, &["--escape -1", ">= 0"]);
    let o = bin()
        .args(["inspect", "--init", "odd-off:x", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    assert_error(&o, 2, &["odd-off:x", "odd-off:R"]);
    let p = d.join("p.npz");
    Params::init(&Network::new(16).unwrap(), &Scheme::Exact, 0)
        .save(&p)
        .unwrap();
    let o = bin()
        .args(["inspect", "--seed", "3", "--params"])
        .arg(&p)
        .arg("--out")
        .arg(&d)
        .output()
        .unwrap();
    assert_error(&o, 2, &["--seed", "--data-seed"]);
}

/// `save_params`: failed cells keep their final parameters under OUT/params (named by their
/// coordinates, loadable), successful ones do not; `--save-params all` keeps every cell.
#[test]
fn sweeps_keep_the_parameters_asked_for() {
    let d = tmpdir("save");
    let cfg = d.join("grid.toml");
    std::fs::write(
        &cfg,
        "n = [8]\nbatch = [16]\ninit = [\"exact\", \"random\"]\nseeds = 1\nsteps = 3\nthreshold = 1e-6\nsave_params = \"failed\"\n",
    )
    .unwrap();
    let out = d.join("a");
    let o = sweep(&cfg, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<String> = std::fs::read_dir(out.join("params"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        ["n8_b16_lr1e-2_random_adam_f64_constant_m0e0_beta2-9.99e-1_minibatch_s0.npz"],
        "{names:?}"
    );
    let p = Params::load(&out.join("params").join(&names[0])).unwrap();
    assert_eq!(p.net.n(), 8);
    assert_ne!(
        p,
        Params::init(&p.net, &Scheme::Random, 0),
        "the final point, not the init"
    );
    let out = d.join("b");
    let o = bin()
        .args(["sweep", "--save-params", "all", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(std::fs::read_dir(out.join("params")).unwrap().count(), 2);
    std::fs::write(&cfg, "n = [8]\nsteps = 3\nsave_params = \"some\"\n").unwrap();
    let o = sweep(&cfg, &out);
    assert_error(&o, 2, &["save_params", "'some'", "none, failed, all"]);
}
