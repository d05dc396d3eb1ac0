//! The binary's behaviour: its commands end to end, and one clear error line with a non-zero
//! exit code (never a panic) for every kind of bad input.

use crate::util::{assert_error, bin, tmpdir};
use fftlearn::io::npy::{self, Npz, Out};
use num_complex::Complex64 as C64;
use std::path::Path;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// A raw .npy image with any header text.
fn raw_npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut h = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

fn gaussian(n: usize, rows: usize) -> Vec<f64> {
    let mut x = vec![0.0; n * rows];
    for (b, r) in x.chunks_mut(n).enumerate() {
        fftlearn::model::rng::normals(5, fftlearn::model::rng::Stream::Measure, 0, b as u32, r);
    }
    x
}

fn p(d: &Path, f: &str) -> String {
    d.join(f).display().to_string()
}

#[test]
fn init_forward_grad_round_trip() {
    let d = tmpdir("roundtrip");
    let out = run(&["init", "--scheme", "exact", "--n", "64", "--out", &p(&d, "P.npz")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let x = gaussian(64, 5);
    npy::write_npy(&d.join("X.npy"), Out::F64(&[5, 64], &x)).unwrap();
    let out = run(&[
        "forward",
        "--params",
        &p(&d, "P.npz"),
        "--input",
        &p(&d, "X.npy"),
        "--out",
        &p(&d, "Y.npy"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (shape, y) = npy::read_npy_c128(&d.join("Y.npy"), &[Some(5), Some(33)]).unwrap();
    assert_eq!(shape, vec![5, 33]);
    let net = fftlearn::model::network::Network::new(64).unwrap();
    let want = fftlearn::model::data::rfft_rows(&net, &x);
    let err = y.iter().zip(&want).map(|(a, b)| (a - b).norm()).fold(0.0, f64::max);
    assert!(err < 1e-12, "{err}");
    // grad at the exact point: loss ~ 0 and every gradient ~ 0
    let out = run(&[
        "grad",
        "--params",
        &p(&d, "P.npz"),
        "--input",
        &p(&d, "X.npy"),
        "--out",
        &p(&d, "G.npz"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut z = Npz::open(&d.join("G.npz")).unwrap();
    let (_, loss) = z.read_f64("loss", &[], 1).unwrap();
    assert!(loss[0] < 1e-25, "{}", loss[0]);
    let (_, g) = z.read_c128("twiddles", &[Some(63)], 63).unwrap();
    assert!(g.iter().all(|v| v.norm() < 1e-12));
    // an explicit target of zeros gives loss = mean |y|^2 per (sample, bin)
    let zeros = vec![C64::default(); 5 * 33];
    npy::write_npy(&d.join("T.npy"), Out::C128(&[5, 33], &zeros)).unwrap();
    let out = run(&[
        "grad",
        "--params",
        &p(&d, "P.npz"),
        "--input",
        &p(&d, "X.npy"),
        "--target",
        &p(&d, "T.npy"),
        "--out",
        &p(&d, "G2.npz"),
    ]);
    assert!(out.status.success());
    let (_, loss) = Npz::open(&d.join("G2.npz")).unwrap().read_f64("loss", &[], 1).unwrap();
    let want: f64 = y.iter().map(|v| v.norm_sqr()).sum::<f64>() / (5.0 * 33.0);
    assert!((loss[0] - want).abs() < 1e-12 * want);
}

#[test]
fn bad_sizes_and_hyper_parameters() {
    let d = tmpdir("bad-hp");
    assert_error(
        &run(&["init", "--n", "100", "--out", &p(&d, "P.npz")]),
        2,
        &["N = 100", "power of two"],
    );
    assert_error(
        &run(&["init", "--n", "131072", "--out", &p(&d, "P.npz")]),
        2,
        &["N = 131072"],
    );
    assert_error(
        &run(&["init", "--scheme", "bogus", "--out", &p(&d, "P.npz")]),
        2,
        &["'bogus'", "modulus:R"],
    );
    let o = p(&d, "run");
    assert_error(
        &run(&["train", "--device", "cpu", "--batch", "0", "--out", &o]),
        2,
        &["--batch 0"],
    );
    assert_error(
        &run(&["train", "--device", "cpu", "--lr", "-1", "--out", &o]),
        2,
        &["--lr -1"],
    );
    assert_error(
        &run(&["train", "--device", "cpu", "--lr", "NaN", "--out", &o]),
        2,
        &["--lr NaN"],
    );
    assert_error(
        &run(&["train", "--device", "cpu", "--n", "96", "--out", &o]),
        2,
        &["N = 96"],
    );
    assert_error(
        &run(&["train", "--device", "cpu", "--steps", "0", "--out", &o]),
        2,
        &["--steps 0"],
    );
}

#[test]
fn bad_files() {
    let d = tmpdir("bad-files");
    assert!(run(&["init", "--out", &p(&d, "P.npz")]).status.success());
    let fwd = |x: &str| {
        run(&[
            "forward",
            "--params",
            &p(&d, "P.npz"),
            "--input",
            x,
            "--out",
            &p(&d, "Y.npy"),
        ])
    };
    // missing file
    assert_error(&fwd(&p(&d, "nope.npy")), 2, &["nope.npy", "cannot open"]);
    assert_error(
        &run(&["forward", "--params", &p(&d, "none.npz"), "--input", "x", "--out", "y"]),
        2,
        &["none.npz", "cannot open"],
    );
    // wrong shape
    npy::write_npy(&d.join("X1.npy"), Out::F64(&[3, 100], &vec![0.0; 300])).unwrap();
    assert_error(&fwd(&p(&d, "X1.npy")), 2, &["shape (3, 100)", "(any, 512)"]);
    npy::write_npy(&d.join("X2.npy"), Out::F64(&[512], &vec![0.0; 512])).unwrap();
    assert_error(&fwd(&p(&d, "X2.npy")), 2, &["shape (512,)"]);
    // wrong dtype
    std::fs::write(d.join("X3.npy"), raw_npy("<f4", false, "(1, 512)", &[0u8; 2048])).unwrap();
    assert_error(&fwd(&p(&d, "X3.npy")), 2, &["<f4", "float64"]);
    npy::write_npy(&d.join("X4.npy"), Out::C128(&[1, 512], &vec![C64::default(); 512])).unwrap();
    assert_error(&fwd(&p(&d, "X4.npy")), 2, &["complex128", "expected float64"]);
    // Fortran order
    std::fs::write(d.join("X5.npy"), raw_npy("<f8", true, "(2, 512)", &[0u8; 8192])).unwrap();
    assert_error(&fwd(&p(&d, "X5.npy")), 2, &["Fortran"]);
    // truncated data, huge declared length, absurd header length, not an npy at all
    std::fs::write(d.join("X6.npy"), raw_npy("<f8", false, "(2, 512)", &[0u8; 100])).unwrap();
    assert_error(&fwd(&p(&d, "X6.npy")), 2, &["truncated"]);
    std::fs::write(
        d.join("X7.npy"),
        raw_npy("<f8", false, "(4611686018427387904, 512)", &[0u8; 8]),
    )
    .unwrap();
    assert_error(&fwd(&p(&d, "X7.npy")), 2, &["overflows"]);
    let mut absurd = b"\x93NUMPY\x02\x00".to_vec();
    absurd.extend_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(d.join("X8.npy"), &absurd).unwrap();
    assert_error(&fwd(&p(&d, "X8.npy")), 2, &["header length 4294967295"]);
    std::fs::write(d.join("X9.npy"), b"hello world, not numpy").unwrap();
    assert_error(&fwd(&p(&d, "X9.npy")), 2, &["not a .npy file"]);
    // NaN input
    npy::write_npy(&d.join("X10.npy"), Out::F64(&[1, 512], &[f64::NAN; 512])).unwrap();
    assert_error(&fwd(&p(&d, "X10.npy")), 2, &["NaN"]);
    // a parameter file with a missing array, a wrong twiddle count, a corrupt zip
    npy::write_npz(&d.join("P1.npz"), &[("M", Out::C128(&[2, 2], &[C64::default(); 4]))]).unwrap();
    let x = gaussian(512, 1);
    npy::write_npy(&d.join("X.npy"), Out::F64(&[1, 512], &x)).unwrap();
    let fwdp = |pp: &str| {
        run(&[
            "forward",
            "--params",
            pp,
            "--input",
            &p(&d, "X.npy"),
            "--out",
            &p(&d, "Y.npy"),
        ])
    };
    assert_error(&fwdp(&p(&d, "P1.npz")), 2, &["missing array 'twiddles'", "[M]"]);
    npy::write_npz(
        &d.join("P2.npz"),
        &[
            ("M", Out::C128(&[2, 2], &[C64::default(); 4])),
            ("twiddles", Out::C128(&[100], &[C64::default(); 100])),
        ],
    )
    .unwrap();
    assert_error(&fwdp(&p(&d, "P2.npz")), 2, &["twiddles has 100 entries"]);
    let mut bytes = std::fs::read(d.join("P.npz")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(d.join("P3.npz"), &bytes).unwrap();
    assert_error(&fwdp(&p(&d, "P3.npz")), 2, &["P3.npz"]);
    // parameters for N = 64 with inputs for N = 512
    assert!(run(&["init", "--n", "64", "--out", &p(&d, "P64.npz")]).status.success());
    assert_error(&fwdp(&p(&d, "P64.npz")), 2, &["shape (1, 512)", "(any, 64)"]);
    // a target of the wrong shape
    let t = vec![C64::default(); 256];
    npy::write_npy(&d.join("T.npy"), Out::C128(&[1, 256], &t)).unwrap();
    let out = run(&[
        "grad",
        "--params",
        &p(&d, "P.npz"),
        "--input",
        &p(&d, "X.npy"),
        "--target",
        &p(&d, "T.npy"),
        "--out",
        &p(&d, "G.npz"),
    ]);
    assert_error(&out, 2, &["--target", "shape (1, 256)", "(1, 257)"]);
}

#[test]
fn train_writes_metrics_and_params() {
    let d = tmpdir("train");
    let out = run(&[
        "train",
        "--device",
        "cpu",
        "--steps",
        "30",
        "--n",
        "64",
        "--out",
        &p(&d, "r"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("step     1 | loss ") && s.contains("step    30 | loss "),
        "{s}"
    );
    assert!(s.contains("[eval] mean MSE over 10 random examples"), "{s}");
    let csv = std::fs::read_to_string(d.join("r/metrics.csv")).unwrap();
    assert_eq!(csv.lines().next().unwrap(), "step,loss,eval_mse,rel_op_err");
    assert_eq!(csv.lines().count(), 1 + 4); // steps 1, 10, 20, 30
    let p = fftlearn::model::params::Params::load(&d.join("r/params.npz")).unwrap();
    assert_eq!(p.net.n(), 64);
}

#[test]
fn divergence_is_one_clear_error() {
    let d = tmpdir("diverge");
    let out = run(&[
        "train",
        "--device",
        "cpu",
        "--lr",
        "1e3",
        "--steps",
        "300",
        "--out",
        &p(&d, "r"),
    ]);
    assert_error(&out, 3, &["diverged at step", "lr 1e3"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        !s.contains("NaN") && !s.contains("loss inf"),
        "printed non-finite rows: {s}"
    );
}

/// With the Vulkan driver list pointed at nothing, no adapter exists: `--device gpu` is one
/// clear error (exit 1) and `--device auto` falls back to the CPU path and says so.
#[cfg(target_os = "linux")]
#[test]
fn no_adapter_gpu_fails_and_auto_falls_back() {
    let d = tmpdir("noadapter");
    let no_vk = |args: &[&str]| {
        bin()
            .args(args)
            .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
            .output()
            .unwrap()
    };
    let out = no_vk(&["train", "--device", "gpu", "--steps", "3", "--out", &p(&d, "g")]);
    assert_error(&out, 1, &["no GPU adapter", "mesa-vulkan-drivers"]);
    let out = no_vk(&["gradcheck", "--batch", "4"]);
    assert_error(&out, 1, &["no GPU adapter"]);
    let out = no_vk(&[
        "train",
        "--device",
        "auto",
        "--steps",
        "3",
        "--n",
        "64",
        "--out",
        &p(&d, "a"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("[device] auto: no usable hardware GPU") && s.contains("using the CPU f64 path"),
        "{s}"
    );
    assert!(s.contains("backend cpu f64"), "{s}");
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn plot_hessian_and_rsweep_write_their_files_and_reject_bad_flags() {
    let d = tmpdir("measure");
    let run_dir = p(&d, "r");
    let out = run(&[
        "train", "--device", "cpu", "--steps", "20", "--n", "16", "--out", &run_dir,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = p(&d, "curves.png");
    let out = run(&["plot", "--run", &run_dir, "--run", &run_dir, "--out", &png]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(png_size(Path::new(&png)), (1280, 480)); // two 640 x 480 panels
    assert_error(
        &run(&["plot", "--run", &run_dir, "--label", "a", "--label", "b", "--out", &png]),
        2,
        &["2 --label for 1 --run"],
    );
    assert_error(
        &run(&["plot", "--run", &run_dir, "--out", &p(&d, "x.jpg")]),
        2,
        &["x.jpg", ".png"],
    );

    let h = p(&d, "h");
    let out = run(&["hessian", "--n", "8", "--out", &h]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("Gauss-Newton: lambda_max 9.600000e0, zero modes (|lambda| <= 9.6e-9) 2"),
        "{s}"
    );
    let eig = std::fs::read_to_string(d.join("h/eigenvalues.csv")).unwrap();
    assert_eq!(eig.lines().count(), 1 + 22); // 2 (N + 3) real parameters at N = 8
    let blocks = std::fs::read_to_string(d.join("h/blocks.csv")).unwrap();
    // one row per group (M, stage 1, stage 2), both matrices' blocks side by side
    assert_eq!(blocks.lines().count(), 1 + 3);
    assert_eq!(
        blocks.lines().next(),
        Some("group,size,gn_min_eig,gn_max_eig,gn_mean_diag,h_min_eig,h_max_eig,h_mean_diag")
    );
    png_size(&d.join("h/spectrum.png"));
    assert_error(
        &run(&["hessian", "--n", "8", "--zero-tol", "2", "--out", &h]),
        2,
        &["--zero-tol 2"],
    );
    // a setting of the other method would change nothing: refused by name
    assert_error(
        &run(&["hessian", "--n", "8", "--iters", "5", "--out", &h]),
        2,
        &["--iters acts on --method lanczos only", "this is --method dense"],
    );
    assert_error(
        &run(&[
            "hessian",
            "--n",
            "8",
            "--method",
            "lanczos",
            "--save-matrices",
            "--out",
            &h,
        ]),
        2,
        &["--save-matrices acts on --method dense only"],
    );

    let r = p(&d, "rs");
    let out = run(&["rsweep", "--n", "16", "--points", "5", "--phases", "exact", "--out", &r]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(d.join("rs/rsweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5);
    assert!(csv.lines().next().unwrap().ends_with("grad_norm_stage3"), "{csv}");
    png_size(&d.join("rs/rsweep.png"));
    assert_error(&run(&["rsweep", "--r-min", "0", "--out", &r]), 2, &["--r-min 0"]);
    assert_error(&run(&["rsweep", "--points", "2", "--out", &r]), 2, &["--points 2"]);
}

#[test]
fn snr_writes_one_row_per_group_and_batch_and_rejects_bad_flags() {
    let d = tmpdir("snr");
    let out_dir = p(&d, "snr");
    let out = run(&[
        "snr",
        "--n",
        "16",
        "--batches",
        "8,64",
        "--k",
        "5",
        "--device",
        "cpu",
        "--init",
        "random",
        "--out",
        &out_dir,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(d.join("snr/snr.csv")).unwrap();
    // header + 2 batch sizes x (M, 3 stages, all)
    assert_eq!(csv.lines().count(), 1 + 2 * 5, "{csv}");
    assert!(csv.starts_with("group,batch,params,k,"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("per-stage fit"), "{stdout}");
    assert!(d.join("snr/snr.png").metadata().unwrap().len() > 1000);
    assert_error(
        &run(&["snr", "--n", "16", "--k", "1", "--out", &out_dir]),
        2,
        &["--k 1", "at least 2"],
    );
    assert_error(
        &run(&["snr", "--n", "16", "--batches", "8,0", "--out", &out_dir]),
        2,
        &["batch size 0", "1..=2^32"],
    );
    // 2^32 minibatches exactly are within the Measure stream's steps; one more is not
    assert_error(
        &run(&[
            "snr",
            "--n",
            "16",
            "--k",
            "4294967297",
            "--batches",
            "1",
            "--out",
            &out_dir,
        ]),
        2,
        &["--k 4294967297", "more than 2^32 minibatches"],
    );
    // K gradients held at once are checked against the memory there is, before allocating
    assert_error(
        &run(&[
            "snr",
            "--n",
            "16",
            "--k",
            "4294967296",
            "--batches",
            "1",
            "--device",
            "cpu",
            "--out",
            &out_dir,
        ]),
        2,
        &["--k 4294967296", "GiB of memory", "available"],
    );
    assert_error(
        &run(&[
            "snr", "--n", "2048", "--exact", "on", "--device", "cpu", "--out", &out_dir,
        ]),
        2,
        &["N = 2048", "--exact off"],
    );
    assert_error(&run(&["snr", "--n", "12", "--out", &out_dir]), 2, &["N = 12"]);
}

#[test]
fn claims_writes_its_table_into_the_readme_section() {
    let d = tmpdir("claims");
    let readme = d.join("README.md");
    std::fs::write(
        &readme,
        "# title\n\nbefore\n<!-- claims:begin -->\nold table\n<!-- claims:end -->\nafter\n",
    )
    .unwrap();
    let out = run(&["claims", "--out", &p(&d, "claims.md"), "--readme", &p(&d, "README.md")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(
        text.starts_with("# title\n\nbefore\n<!-- claims:begin -->\n| # | claim"),
        "{text}"
    );
    assert!(text.ends_with("<!-- claims:end -->\nafter\n"), "{text}");
    assert!(!text.contains("old table"));
    let table = std::fs::read_to_string(d.join("claims.md")).unwrap();
    // one row per claim of the seed document, each with a verdict
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
        .collect();
    assert_eq!(rows.len(), 10, "{table}");
    for r in &rows {
        assert!(
            r.ends_with("| **holds** |") || r.ends_with("| **fails** |") || r.ends_with("| **partly** |"),
            "{r}"
        );
    }
    // the stall row measures the hand-built point: its error is sqrt(128/257) = 0.705730
    assert!(table.contains("error 0.705730 (sqrt(128/257) = 0.705730)"), "{table}");
    // the seed's own run is measured, not assumed: its row carries the measured error
    let at = table.find("relative operator error ").expect("seed-run figure") + "relative operator error ".len();
    let fig: f64 = table[at..].split_whitespace().next().unwrap().parse().unwrap();
    assert!(fig < 1e-12, "seed run figure {fig}");
    // a README without the section is refused before any measurement
    std::fs::write(&readme, "# no section\n").unwrap();
    assert_error(
        &run(&["claims", "--out", &p(&d, "c2.md"), "--readme", &p(&d, "README.md")]),
        2,
        &["claims:begin", "--no-readme"],
    );
}

#[test]
fn hessian_lanczos_reports_the_dense_condition_number() {
    let d = tmpdir("lanczos");
    let out = run(&[
        "hessian",
        "--method",
        "lanczos",
        "--n",
        "64",
        "--init",
        "exact",
        "--out",
        &p(&d, "lz"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    // the dense route gives 76.59 at N = 64 (docs/measurements.md; tests/it/measure.rs compares the two)
    assert!(s.contains("condition number 7.6588"), "{s}");
    assert!(s.contains("converged"), "{s}");
    assert!(d.join("lz/ritz.csv").exists());
    assert_error(
        &run(&[
            "hessian",
            "--method",
            "lanczos",
            "--n",
            "64",
            "--iters",
            "1",
            "--out",
            &p(&d, "lz"),
        ]),
        2,
        &["--iters 1"],
    );
}

#[test]
fn train_refuses_bad_optimizer_settings_naming_them() {
    let d = tmpdir("optflags");
    let o = p(&d, "run");
    for (args, needles) in [
        (
            vec!["--optimizer", "newton"],
            vec!["optimizer 'newton'", "accepted: adam, sgd"],
        ),
        (
            vec!["--optimizer", "als", "--device", "gpu"],
            vec!["'als' runs on the CPU f64 path only"],
        ),
        (
            vec!["--optimizer", "adam", "--momentum", "0.5"],
            vec!["--momentum 0.5", "sgd and phase-sgd only"],
        ),
        // in f32 (the GPU path) this beta2 is 1: refused before any device is opened
        (
            vec!["--device", "gpu", "--beta2", "0.99999999"],
            vec!["--beta2 0.99999999", "rounds to 1 in f32", "--device cpu"],
        ),
        (
            vec!["--optimizer", "sgd", "--momentum", "1"],
            vec!["--momentum 1", "[0, 1)"],
        ),
        (vec!["--beta2", "1"], vec!["--beta2 1", "[0, 1)"]),
        (vec!["--beta2", "nan"], vec!["--beta2 NaN", "[0, 1)"]),
        (
            vec!["--optimizer", "sgd", "--beta2", "0.99"],
            vec!["--beta2 0.99", "adam and phase only", "'sgd'"],
        ),
        (vec!["--optimizer", "lm"], vec!["--data population", "minibatch"]),
        (
            vec!["--schedule", "step:0:0.5"],
            vec!["schedule 'step:0:0.5'", "step:EVERY:GAMMA"],
        ),
        (vec!["--data", "pop"], vec!["--data 'pop'", "minibatch or population"]),
        (
            vec![
                "--optimizer",
                "als",
                "--data",
                "population",
                "--n",
                "8192",
                "--device",
                "cpu",
            ],
            vec!["N = 8192", "4096"],
        ),
    ] {
        let mut a = vec!["train", "--steps", "2", "--out", &o];
        a.extend(args.iter().copied());
        assert_error(&run(&a), 2, &needles);
    }
    // a valid non-Adam run writes a checkpoint with its own slots and resumes
    let out = run(&[
        "train",
        "--device",
        "cpu",
        "--n",
        "16",
        "--steps",
        "6",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--lr",
        "1e-3",
        "--out",
        &o,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["train", "--resume", &o, "--steps", "9"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_error(
        &run(&["train", "--resume", &o, "--steps", "12", "--optimizer", "adam"]),
        2,
        &["--optimizer adam", "optimizer = sgd"],
    );
    // beta2 is part of the run: kept by the checkpoint, a resume may not switch it
    let b = d.join("beta2");
    let b = b.to_str().unwrap();
    let out = run(&[
        "train", "--device", "cpu", "--n", "16", "--steps", "6", "--beta2", "0.99", "--out", b,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_error(
        &run(&["train", "--resume", b, "--steps", "9", "--beta2", "0.999"]),
        2,
        &["--beta2 9.99e-1", "9.9e-1"],
    );
    let out = run(&["train", "--resume", b, "--steps", "9"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bench_writes_one_row_per_device_kernel_and_batch_and_rejects_bad_flags() {
    let d = tmpdir("bench");
    let csv = d.join("bench.csv");
    let has_gpu = fftlearn::backend::gpu::context::pick(None, true).is_ok();
    let require = std::env::var("FFTLEARN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    assert!(has_gpu || !require, "FFTLEARN_REQUIRE_GPU=1 but no adapter");
    let device = if has_gpu { "both" } else { "cpu" };
    let timestamps = has_gpu
        && fftlearn::backend::gpu::context::pick(None, true)
            .is_ok_and(|a| a.features().contains(wgpu::Features::TIMESTAMP_QUERY));
    let out = run(&[
        "bench",
        "--device",
        device,
        "--kernel",
        "all",
        "--n",
        "16",
        "--batches",
        "64,256",
        "--min-time",
        "0",
        "--min-steps",
        "2",
        "--out",
        &csv.to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(fftlearn::experiments::bench::Row::HEADER));
    let rows: Vec<&str> = lines.collect();
    // cpu x 2 batches, then (gpu) 3 kernels x 2 batches, each naming its kernel and batch
    let want = if has_gpu { 8 } else { 2 };
    assert_eq!(rows.len(), want, "{text}");
    for k in ["lane", "group", "fused"].iter().filter(|_| has_gpu) {
        assert_eq!(
            rows.iter().filter(|r| r.contains(&format!(",{k},f32,16,"))).count(),
            2,
            "{text}"
        );
    }
    for r in &rows {
        // samples/s is the batch over the median step: positive and finite
        let f: Vec<&str> = r.split(',').collect();
        let sps: f64 = f[f.len() - 9].parse().unwrap();
        assert!(sps.is_finite() && sps > 0.0, "{r}");
        assert!(r.contains("cores"), "the machine is named: {r}");
        // GPU timestamps (step, train, combine, Adam) on fused rows where the adapter has
        // them (lavapipe does), none elsewhere; no parts without --parts
        assert!(f[f.len() - 2..].iter().all(|v| v.is_empty()), "{r}");
        let gpu: Vec<&str> = f[f.len() - 6..f.len() - 2].to_vec();
        if r.contains(",fused,") && timestamps {
            let t: Vec<f64> = gpu.iter().map(|v| v.parse().unwrap()).collect();
            assert!(t.iter().all(|&v| v > 0.0) && t[0] >= t[1], "{r}");
            // the GPU's step lies within the host's median step (a 10% allowance for clocks)
            let median: f64 = f[f.len() - 13].parse().unwrap();
            assert!(t[0] <= 1.1 * median, "{r}");
        } else {
            assert!(gpu.iter().all(|v| v.is_empty()), "{r}");
        }
    }
    if timestamps {
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("GPU timestamps (median step)"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if timestamps {
        // --parts: the kernel timed again without the target's forward and without the
        // backward (timing plans; at 1 ms steps their order against the whole kernel is
        // noise, so only their presence is asserted)
        let parts = d.join("parts.csv");
        let out = run(&[
            "bench",
            "--kernel",
            "fused",
            "--n",
            "64",
            "--batches",
            "4096",
            "--min-time",
            "0",
            "--min-steps",
            "3",
            "--parts",
            "--out",
            &parts.to_string_lossy(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("parts by removal (kernel, median step): target's forward"),
            "{stdout}"
        );
        let text = std::fs::read_to_string(&parts).unwrap();
        let f: Vec<f64> = text
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .rev()
            .take(5)
            .map(|v| v.parse().unwrap())
            .collect();
        // (without the backward, without the target, Adam, combine, the whole kernel)
        assert!(f.iter().all(|v| v.is_finite() && *v > 0.0), "{text}");
    }
    assert_error(
        &run(&["bench", "--device", "cpu", "--parts"]),
        2,
        &["--parts sets the GPU path"],
    );
    assert_error(
        &run(&["bench", "--kernel", "lane", "--parts"]),
        2,
        &["--parts times the fused kernel"],
    );
    assert_error(&run(&["bench", "--batches", "0"]), 2, &["--batches", "at least 1"]);
    assert_error(
        &run(&["bench", "--kernel", "warp"]),
        2,
        &["--kernel 'warp'", "lane", "group", "fused"],
    );
    assert_error(&run(&["bench", "--min-time", "-1"]), 2, &["--min-time -1"]);
}
