//! Packs: a cell in a pack is the cell alone, bit for bit. On the GPU (every plan shape of
//! the fused kernel, the only shape packs run; both reductions of the partials; Philox and
//! host data), the kernel-level steps of a pack against each cell's lone model; then whole
//! sweeps with `--pack on` against `--pack off` (rows and saved parameters), on the GPU and
//! on the CPU at several thread counts, over every optimizer a pack runs, both data modes,
//! cells that stop at different steps and divergence; a pack interrupted and resumed; the
//! refusal of a pack an adapter cannot hold; `bench --cells`.

use crate::gpu::gpu;
use crate::util::{assert_error, bin, signal, start_until, tmpdir, without_wall};
use fftlearn::backend::gpu::{fused, AdamHyper, CellStep, GpuBatch, GpuModel, Kernel, ModelOptions, Precision};
use fftlearn::model::network::Network;
use fftlearn::model::params::{Params, Scheme};
use fftlearn::model::rng::Stream;
use fftlearn::objective::problem::Problem;
use std::path::Path;

fn opts(shape: (u32, u32)) -> ModelOptions {
    ModelOptions {
        prec: Precision::F32,
        kernel: Some(Kernel::Fused),
        chunk: None,
        int64: true,
        fused_shape: Some(shape),
        fused_hoist: None,
        fused_omit: Default::default(),
        dispatch_cap: None,
    }
}

fn bits(p: &Params) -> Vec<u64> {
    p.flat().iter().flat_map(|z| [z.re.to_bits(), z.im.to_bits()]).collect()
}

#[test]
fn a_cell_in_a_gpu_pack_is_the_cell_alone() {
    let Some(probe) = gpu(false) else { return };
    drop(probe);
    // the hardware plan (radix 8, teams of 64) and the CPU-type plan (radix 32); a batch the
    // one-thread combine sums (few workgroups per cell) and one the tree sums (many)
    for (n, shape, batch) in [
        (16, fused::CPU_SHAPE, 16usize),
        (64, fused::HARDWARE_SHAPE, 24),
        (64, fused::CPU_SHAPE, 4096),
    ] {
        let net = Network::new(n).unwrap();
        let cells = 4usize;
        let ps: Vec<Params> = (0..cells)
            .map(|c| Params::init(&net, &Scheme::Random, 10 + c as u64))
            .collect();
        let seeds: Vec<u64> = (0..cells as u64).map(|c| 1000 + 7 * c).collect();
        let hyper = |c: usize| AdamHyper {
            lr: [1e-2, 3e-3, 2e-2, 5e-3][c],
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let pack = GpuModel::pack(gpu(false).unwrap(), &ps, opts(shape), batch).unwrap();
        assert_eq!(pack.kernel(), Kernel::Fused);
        let steps = 6u32;
        // the pack: rows in reverse slot order; cell 2 leaves after step 3
        let mut pack_losses = vec![Vec::new(); cells];
        for step in 1..=steps {
            let live: Vec<usize> = (0..cells).rev().filter(|&c| c != 2 || step <= 3).collect();
            let rows: Vec<CellStep> = live
                .iter()
                .map(|&c| CellStep {
                    slot: c,
                    seed: seeds[c],
                    step,
                })
                .collect();
            let hy: Vec<(AdamHyper, u64)> = live.iter().map(|&c| (hyper(c), step as u64)).collect();
            let b = GpuBatch::Gaussian {
                seed: 0,
                stream: Stream::Data,
                step: 0,
                size: batch,
            };
            for (&c, l) in live.iter().zip(pack.pack_adam_step(&b, &rows, &hy).unwrap()) {
                pack_losses[c].push(l);
            }
        }
        let packed = pack.params_of(&[0, 1, 2, 3]).unwrap();
        for c in 0..cells {
            let alone = GpuModel::with_options(gpu(false).unwrap(), &ps[c], opts(shape)).unwrap();
            let mut losses = Vec::new();
            for step in 1..=(if c == 2 { 3 } else { steps }) {
                let b = GpuBatch::Gaussian {
                    seed: seeds[c],
                    stream: Stream::Data,
                    step,
                    size: batch,
                };
                losses.push(alone.adam_step(&b, &hyper(c), step as u64).unwrap());
            }
            let what = format!("N = {n}, plan {shape:?}, batch {batch}, cell {c}");
            assert_eq!(
                losses.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
                pack_losses[c].iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
                "{what}: losses"
            );
            assert_eq!(bits(&alone.params().unwrap()), bits(&packed[c]), "{what}: parameters");
            let (am, av) = alone.moments().unwrap();
            let (pm, pv) = pack.moments_of(c).unwrap();
            assert!(am == pm && av == pv, "{what}: Adam moments");
        }
        // host data (the population's identity inputs and exact targets), the same for every
        // cell: gradients equal the lone model's bit for bit
        let prob = Problem::population(&net);
        let (x, t) = prob.data();
        let hb = GpuBatch::Host { x, target: Some(t) };
        let rows: Vec<CellStep> = (0..cells)
            .map(|c| CellStep {
                slot: c,
                seed: 0,
                step: 0,
            })
            .collect();
        let pg = pack.pack_loss_grad(&hb, &rows).unwrap();
        for c in 0..cells {
            let alone = GpuModel::with_options(gpu(false).unwrap(), &packed[c], opts(shape)).unwrap();
            let g = alone.loss_grad(&hb).unwrap();
            assert_eq!(
                g.loss.to_bits(),
                pg[c].loss.to_bits(),
                "N = {n} cell {c}: population loss"
            );
            assert!(g.flat() == pg[c].flat(), "N = {n} cell {c}: population gradient");
        }
    }
}

#[test]
fn a_pack_the_adapter_cannot_hold_is_refused_before_allocating() {
    let Some(g) = gpu(false) else { return };
    let net = Network::new(4096).unwrap();
    let plan = fftlearn::backend::gpu::model::fused_plan(
        &g.info,
        &g.limits,
        g.features,
        &net,
        Precision::F32,
        true,
        Default::default(),
    )
    .unwrap();
    let batch = 1 << 20;
    let needs = fftlearn::backend::gpu::PackNeeds::of(&g.limits, &net, Precision::F32, &plan, batch);
    // the partials of 2^20 samples at N = 4096 fill a binding: one cell, or none
    assert!(needs.max_cells <= 1, "{needs:?}");
    let p = Params::init(&net, &Scheme::Seed, 0);
    let e = GpuModel::pack(g, &[p.clone(), p.clone(), p], ModelOptions::new(Precision::F32), batch)
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(
        msg.contains("a pack of 3 cells")
            && msg.contains("does not fit")
            && msg.contains("max_storage_buffer_binding_size"),
        "{msg}"
    );
}

/// Every file of `a/params` equals its namesake in `b/params`, and there are `count`.
fn same_params(a: &Path, b: &Path, count: usize) {
    let mut names: Vec<_> = std::fs::read_dir(a.join("params"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), count, "{}", a.display());
    for f in names {
        let x = std::fs::read(a.join("params").join(&f)).unwrap();
        let y = std::fs::read(b.join("params").join(&f)).unwrap();
        assert!(x == y, "{f:?} differs between {} and {}", a.display(), b.display());
    }
}

fn sweep(cfg: &Path, out: &Path, extra: &[&str], threads: Option<&str>) -> std::process::Output {
    let mut c = bin();
    c.args(["sweep", "--config"]).arg(cfg).arg("--out").arg(out).args(extra);
    if let Some(t) = threads {
        c.env("RAYON_NUM_THREADS", t);
    }
    c.output().unwrap()
}

/// A grid whose cells stop at different steps (threshold, budget, divergence at lr 1e3),
/// over both data modes, two schedules and `optimizers` (that take a learning rate), at
/// `precision`.
fn grid(precision: &str, optimizers: &str) -> String {
    format!(
        "n = [16]
batch = [8]
lr = [3e-2, 1e3]
init = [\"seed\"]
optimizer = [{optimizers}]
precision = [\"{precision}\"]
schedule = [\"constant\", \"cosine\"]
data = [\"minibatch\", \"population\"]
seeds = 2
steps = 200
eval_every = 20
threshold = 1e-2
save_params = \"all\"
"
    )
}

/// The exact solvers (no learning rate; lm on the population, als on both data modes).
const SOLVERS: &str = "n = [16]
batch = [8]
init = [\"seed\", \"random\"]
optimizer = [\"als\", \"lm\"]
seeds = 2
steps = 60
eval_every = 5
threshold = 1e-9
save_params = \"all\"
";

/// `text` swept `--pack off`, then packed at each of `threads`: the same rows (but wall_s)
/// and the same saved parameters. With `all_statuses`, the grid must hold a success, a fail
/// and a divergence. Returns the last packed run's log.
fn check_grid(name: &str, text: &str, threads: &[&str], all_statuses: bool) -> String {
    let d = tmpdir(name);
    let cfg = d.join("grid.toml");
    std::fs::write(&cfg, text).unwrap();
    let off = d.join("off");
    let o = sweep(&cfg, &off, &["--pack", "off"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = without_wall(&off.join("sweep.csv"));
    let cells = reference.lines().count() - 1;
    if all_statuses {
        for st in ["success", "fail", "diverged"] {
            assert!(
                reference.contains(&format!(",{st},")),
                "the grid has a {st} cell: {reference}"
            );
        }
    }
    let mut log = String::new();
    for t in threads {
        let on = d.join(format!("on{t}"));
        let o = sweep(&cfg, &on, &[], Some(t));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        log = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(without_wall(&on.join("sweep.csv")), reference, "{name}, {t} threads");
        // saved parameters: every cell but the diverged ones whose parameters are not finite
        let saved = std::fs::read_dir(off.join("params")).unwrap().count();
        same_params(&on, &off, saved);
        assert!(saved >= cells / 2, "{saved} of {cells}");
        assert!(!on.join("running").exists(), "the running state is removed at the end");
    }
    log
}

#[test]
fn gpu_packs_give_every_cell_its_lone_row_and_parameters() {
    if gpu(false).is_none() {
        return;
    }
    // adam on minibatches runs on the device; sgd, dgn and every population cell take their
    // gradients in one step and update on the host
    let log = check_grid("gpu", &grid("f32", "\"adam\", \"sgd\", \"dgn\""), &["2"], true);
    assert!(log.contains("f32 adam on the device, batch 8"), "{log}");
    assert!(log.contains("f32 sgd (population data) updated on the host"), "{log}");
    // each cell of a device-Adam pack keeps its own beta2
    let text = grid("f32", "\"adam\"") + "beta2 = [0.999, 0.95]\n";
    check_grid("gpu-beta2", &text, &["2"], true);
}

#[test]
fn cpu_packs_give_every_cell_its_lone_row_and_parameters_at_any_thread_count() {
    let text = grid("f64", "\"adam\", \"sgd\", \"phase\", \"phase-sgd\", \"dgn\"");
    let log = check_grid("cpu", &text, &["1", "3"], true);
    assert!(log.contains("[sweep] pack 1/1: "), "{log}");
    check_grid("solvers", SOLVERS, &["1", "3"], false);
}

/// Runs `args` until a stdout line contains `after`, waits `ms`, sends SIGTERM; returns the
/// exit code.
fn stop_after(args: &[&str], after: &str, ms: u64) -> Option<i32> {
    let child = start_until(args, after);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    let o = signal(child, "-TERM");
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.code() == Some(143) {
        assert!(err.contains("rerun the same command to resume"), "{err}");
    }
    o.status.code()
}

#[test]
fn an_interrupted_pack_resumes_to_the_uninterrupted_rows() {
    let d = tmpdir("resume");
    // CPU: one pack; the batch-32 cells (500 steps) end long before the batch-8 cells (2000),
    // so their rows wait ahead of the CSV when the stop comes. GPU: a pack per batch.
    for (prec, after, ms) in [("f64", "cell 1/", 0u64), ("f32", "[sweep] pack 1/", 700)] {
        if prec == "f32" && gpu(false).is_none() {
            continue;
        }
        let cfg = d.join(format!("{prec}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "n = [512]\nbatch = [8, 32]\nbudget = 32000\nseeds = 4\ninit = [\"random\"]\nprecision = [\"{prec}\"]\neval_every = 100\nthreshold = 1e-300\nsave_params = \"all\"\n"
            ),
        )
        .unwrap();
        let c = cfg.to_str().unwrap();
        let whole = d.join(format!("{prec}-whole"));
        let o = sweep(&cfg, &whole, &[], None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for shard in [None, Some("0/1")] {
            let out = d.join(format!("{prec}-{}", shard.is_some()));
            let o = out.to_str().unwrap().to_string();
            let mut args = vec!["sweep", "--config", c, "--out", &o];
            if let Some(s) = shard {
                args.extend(["--shard", s]);
            }
            let code = stop_after(&args, after, ms);
            let running = match shard {
                Some(_) => out.join("shards/0-of-1.running"),
                None => out.join("running"),
            };
            if code == Some(143) {
                let held: Vec<String> = std::fs::read_dir(&running)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                    .collect();
                assert!(held.iter().any(|f| f.ends_with(".npz")), "{prec}: {held:?}");
                if prec == "f64" {
                    assert!(
                        held.iter().any(|f| f.ends_with(".row")),
                        "{prec}: rows ahead of the CSV: {held:?}"
                    );
                }
            } else {
                assert_eq!(code, Some(0), "{prec} {shard:?}");
            }
            let r = bin().args(&args).output().unwrap();
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            assert!(!running.exists(), "{prec}: the running state is removed at the end");
            if shard.is_some() {
                assert!(bin().args(["sweep", "merge", &o]).output().unwrap().status.success());
            }
            assert_eq!(
                without_wall(&out.join("sweep.csv")),
                without_wall(&whole.join("sweep.csv")),
                "{prec} {shard:?}"
            );
            same_params(&out, &whole, 8);
        }
    }
}

#[test]
fn pack_and_bench_cells_flags() {
    let d = tmpdir("flags");
    let cfg = d.join("g.toml");
    std::fs::write(&cfg, "n = [8]\nsteps = 10\n").unwrap();
    let o = sweep(&cfg, &d.join("o"), &["--pack", "maybe"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("accepted: on, off"));
    for (cells, needle) in [("0", "--cells 0"), ("65536", "--cells 65536")] {
        let o = bin()
            .args([
                "bench",
                "--device",
                "cpu",
                "--cells",
                cells,
                "--n",
                "8",
                "--batches",
                "4",
            ])
            .output()
            .unwrap();
        assert_error(&o, 2, &[needle, "1..=65535"]);
    }
    let o = bin()
        .args([
            "bench",
            "--cells",
            "1,4",
            "--kernel",
            "lane",
            "--n",
            "8",
            "--batches",
            "4",
        ])
        .output()
        .unwrap();
    assert_error(&o, 2, &["--cells above 1", "fused"]);
    // one lone cell and a pack of 4, on the CPU (and the GPU where there is one)
    let csv = d.join("bench.csv");
    let dev = if gpu(false).is_some() { "both" } else { "cpu" };
    let o = bin()
        .args([
            "bench", "--device", dev, "--kernel", "fused", "--cells", "1,4", "--n", "16",
        ])
        .args(["--batches", "8", "--min-steps", "2", "--min-time", "0", "--out"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<String>> = lines
        .map(|l| {
            // the quoted fields hold no commas of their own here but the adapter's
            let mut v = Vec::new();
            let mut cur = String::new();
            let mut q = false;
            for ch in l.chars() {
                match ch {
                    '"' => q = !q,
                    ',' if !q => v.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            v.push(cur);
            v
        })
        .collect();
    assert_eq!(rows.len(), if dev == "both" { 4 } else { 2 }, "{text}");
    for r in &rows {
        let cells: f64 = r[col("cells")].parse().unwrap();
        let median: f64 = r[col("median_s")].parse().unwrap();
        let cs: f64 = r[col("cell_steps_per_s")].parse().unwrap();
        let ss: f64 = r[col("samples_per_s")].parse().unwrap();
        assert!((cs - cells / median).abs() <= 1e-3 * cs + 0.1, "{r:?}");
        assert!((ss - 8.0 * cells / median).abs() <= 1e-3 * ss + 0.1, "{r:?}");
    }
}
