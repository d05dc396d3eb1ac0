//! PyTorch autograd on the seed's own code (tests/data/torch_reference.npz, made by
//! tools/make_torch_reference.py) against the f64 CPU path: outputs, loss and gradients.

use fftlearn::backend::cpu;
use fftlearn::io::npy::Npz;
use fftlearn::model::data::Batch;
use fftlearn::model::network::Network;
use fftlearn::model::params::Params;
use num_complex::Complex64 as C64;
use std::path::Path;

fn rel(a: &[C64], b: &[C64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let den: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    (num / den).sqrt()
}

#[test]
fn matches_pytorch_autograd_on_the_seed_model() {
    let mut z = Npz::open(Path::new("tests/data/torch_reference.npz")).unwrap();
    for case in ["rand", "ones"] {
        let (_, m) = z.read_c128(&format!("{case}_M"), &[Some(2), Some(2)], 4).unwrap();
        let (_, tw) = z.read_c128(&format!("{case}_twiddles"), &[Some(511)], 511).unwrap();
        let (xs, x) = z.read_f64(&format!("{case}_x"), &[None, Some(512)], 1 << 16).unwrap();
        let (_, y) = z
            .read_c128(&format!("{case}_y"), &[Some(xs[0]), Some(257)], 1 << 16)
            .unwrap();
        let (_, loss) = z.read_f64(&format!("{case}_loss"), &[], 1).unwrap();
        let (_, gm) = z.read_c128(&format!("{case}_grad_M"), &[Some(2), Some(2)], 4).unwrap();
        let (_, gtw) = z
            .read_c128(&format!("{case}_grad_twiddles"), &[Some(511)], 511)
            .unwrap();
        let p = Params {
            net: Network::seed(),
            m: [m[0], m[1], m[2], m[3]],
            tw,
        };
        let out = cpu::forward(&p, &x);
        assert!(rel(&out, &y) <= 1e-12, "{case}: outputs {:e}", rel(&out, &y));
        let g = cpu::loss_grad(&p, &Batch::Given { x: &x, target: None });
        assert!(
            ((g.loss - loss[0]) / loss[0]).abs() <= 1e-12,
            "{case}: loss {} vs {}",
            g.loss,
            loss[0]
        );
        let em = rel(&g.m, &gm);
        let et = rel(&g.tw, &gtw);
        assert!(
            em <= 1e-10 && et <= 1e-10,
            "{case}: grad M rel {em:e}, grad twiddles rel {et:e}"
        );
        // per-entry agreement for the twiddles, relative to the largest entry of the stage's group
        let gmax = gtw.iter().map(|v| v.norm()).fold(0.0, f64::max);
        for (k, (a, b)) in g.tw.iter().zip(&gtw).enumerate() {
            assert!((a - b).norm() <= 1e-10 * gmax, "{case}: twiddle {k}: {a} vs torch {b}");
        }
        assert_eq!(gtw[510], C64::new(0.0, 0.0));
        eprintln!("{case}: grad M rel {em:.2e}, grad twiddles rel {et:.2e}");
    }
}
