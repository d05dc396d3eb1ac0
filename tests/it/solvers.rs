//! The optimizers and solvers of `train --optimizer`: every one lowers the population loss,
//! ALS and LM recover the exact FFT, the Gauss-Newton diagonal is exact, and every optimizer's
//! state resumes bit for bit.

use fftlearn::backend::cpu;
use fftlearn::model::data::Batch;
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::objective::hessian;
use fftlearn::objective::problem::{self, Problem};
use fftlearn::optim::als;
use fftlearn::train::{Backend, HostBackend, TrainConfig};

fn cfg(n: usize, optimizer: &str, lr: f64, momentum: f64, data: &str, schedule: &str) -> TrainConfig {
    TrainConfig {
        n,
        steps: 40,
        batch: 64,
        lr,
        seed: 3,
        init: "random".parse().unwrap(),
        print_every: 10,
        out: std::env::temp_dir(),
        max_loss_ratio: 1e8,
        checkpoint_every: 10,
        backend: "cpu-f64".parse().unwrap(),
        optimizer: optimizer.parse().unwrap(),
        momentum,
        schedule: schedule.parse().unwrap(),
        data: data.parse().unwrap(),
        beta2: fftlearn::optim::BETA2,
        kernel: None,
        chunk: None,
    }
}

fn population_loss(p: &Params) -> f64 {
    cpu::loss(p, &Batch::Identity) * p.net.n() as f64
}

#[test]
fn als_and_lm_recover_the_exact_fft() {
    for n in [8usize, 64] {
        let net = Network::new(n).unwrap();
        for (opt, start) in [("als", Scheme::Seed), ("lm", Scheme::Seed), ("lm", Scheme::Random)] {
            let c = cfg(n, opt, 1.0, 0.0, "population", "constant");
            let mut b = HostBackend::new(&c, Params::init(&net, &start, 2), None).unwrap();
            let mut steps = 0;
            let mut e = f64::INFINITY;
            while steps < 300 {
                steps += 1;
                b.step(steps).unwrap();
                e = cpu::rel_operator_error(&b.params().unwrap());
                if e <= 1e-12 {
                    break;
                }
            }
            eprintln!("N = {n}, {opt} from {start}: {steps} steps, relative operator error {e:.3e}");
            assert!(e <= 1e-12, "N = {n}, {opt} from {start}: {e:e} after {steps} steps");
        }
    }
}

#[test]
fn als_converges_at_n512_from_the_seed_init() {
    // the ALS figure of docs/learnability.md: the seed's init to 1e-12 at N = 512
    let net = Network::new(512).unwrap();
    let mut p = Params::init(&net, &Scheme::Seed, 0);
    let prob = Problem::population(&net);
    let mut sweeps = 0;
    while cpu::rel_operator_error(&p) > 1e-12 && sweeps < 200 {
        als::als_sweep(&mut p, &prob);
        sweeps += 1;
    }
    assert!(cpu::rel_operator_error(&p) <= 1e-12, "{sweeps} sweeps");
}

#[test]
fn gauss_newton_diagonal_is_exact() {
    for (n, scheme) in [(8usize, Scheme::Random), (32, Scheme::Seed), (64, Scheme::Modulus(0.8))] {
        let net = Network::new(n).unwrap();
        let p = Params::init(&net, &scheme, 4);
        let d = problem::gn_diagonal(&p, &Problem::population(&net));
        let (gn, _) = hessian::gauss_newton(&p);
        let nr = d.len();
        let scale = (0..nr).map(|j| gn[j * nr + j]).fold(0.0, f64::max);
        for j in 0..nr {
            assert!(
                (d[j] - gn[j * nr + j]).abs() <= 1e-12 * scale,
                "N={n} j={j}: {} vs {}",
                d[j],
                gn[j * nr + j]
            );
        }
        // the population problem's loss is the population loss
        let l = problem::loss(&p, &Problem::population(&net));
        assert!((l - population_loss(&p)).abs() <= 1e-12 * l);
    }
}

#[test]
fn structured_population_sweep_matches_the_generic_sweep() {
    for (n, scheme) in [
        (4usize, Scheme::Random),
        (8, Scheme::Seed),
        (64, Scheme::Random),
        (256, Scheme::Modulus(0.9)),
    ] {
        let net = Network::new(n).unwrap();
        let prob = Problem::population(&net);
        let mut a = Params::init(&net, &scheme, 6);
        let mut b = a.clone();
        for sweep in 0..3 {
            let la = als::als_sweep_population(&mut a) * prob_scale(&net);
            let lb = als::als_sweep_generic(&mut b, &prob);
            assert!(
                (la - lb).abs() <= 1e-12 * lb.max(1e-300),
                "N={n} sweep {sweep}: loss {la} vs {lb}"
            );
            let d = a
                .flat()
                .iter()
                .zip(b.flat())
                .fold(0.0f64, |m, (x, y)| m.max((x - y).norm()));
            let scale = b.flat().iter().fold(0.0f64, |m, x| m.max(x.norm()));
            assert!(d <= 1e-10 * scale, "N={n} {scheme} sweep {sweep}: max diff {d:e}");
        }
    }
}

fn prob_scale(net: &Network) -> f64 {
    1.0 / net.bins() as f64
}
