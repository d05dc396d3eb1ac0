//! Safe on shared machines and clusters: no output path replaces a device, a FIFO, a link or a
//! directory; counts are bounded before anything is allocated; a stderr that cannot be written
//! never turns an exit code into a panic's; a resume never switches where the update runs;
//! merge checks every row as a resume does; one sweep directory is either sharded one way or
//! whole, never both at once.

use crate::gpu::gpu;
use crate::util::{assert_error, bin, signal, start_until, tmpdir};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn no_output_path_replaces_a_device_a_fifo_a_link_or_a_directory() {
    let d = tmpdir("paths");
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::write(d.join("target.txt"), "keep").unwrap();
    std::os::unix::fs::symlink("target.txt", d.join("link.npz")).unwrap();
    std::fs::create_dir(d.join("adir")).unwrap();
    let mut cases = vec![
        ("fifo", "a FIFO"),
        ("link.npz", "a symbolic link"),
        ("adir", "a directory"),
    ];
    if is_root() {
        // a character device like /dev/null (as root the old writer replaced it)
        assert!(Command::new("mknod")
            .args(["-m", "666"])
            .arg(d.join("null"))
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success());
        cases.push(("null", "a character device"));
    }
    // a point and an input for forward/grad
    let p = d.join("p.npz");
    assert!(bin()
        .args(["init", "--scheme", "exact", "--n", "8", "--out"])
        .arg(&p)
        .status()
        .unwrap()
        .success());
    let x = d.join("x.npy");
    fftlearn::io::npy::write_npy(&x, fftlearn::io::npy::Out::F64(&[2, 8], &[0.5; 16])).unwrap();
    for (name, kind) in cases {
        let out = d.join(name);
        let o = out.to_str().unwrap();
        let pp = p.to_str().unwrap();
        let xx = x.to_str().unwrap();
        for args in [
            vec!["init", "--scheme", "exact", "--n", "8", "--out", o],
            vec!["forward", "--params", pp, "--input", xx, "--out", o],
            vec!["grad", "--params", pp, "--input", xx, "--out", o],
            vec![
                "bench",
                "--device",
                "cpu",
                "--n",
                "8",
                "--batches",
                "4",
                "--min-time",
                "5",
                "--out",
                o,
            ],
        ] {
            let t = Instant::now();
            let r = bin().args(&args).output().unwrap();
            assert_error(&r, 2, &[name, kind]);
            // refused before measuring (bench would take 5 s)
            assert!(t.elapsed() < Duration::from_secs(3), "{args:?}");
        }
        let t = std::fs::symlink_metadata(&out).unwrap().file_type();
        let still = match name {
            "fifo" => t.is_fifo(),
            "link.npz" => t.is_symlink(),
            "adir" => t.is_dir(),
            _ => t.is_char_device(),
        };
        assert!(still, "{name} was replaced");
    }
    assert_eq!(std::fs::read_to_string(d.join("target.txt")).unwrap(), "keep");
    // a directory that does not exist: refused before measuring, exit 2
    let r = bin()
        .args([
            "bench",
            "--device",
            "cpu",
            "--n",
            "8",
            "--batches",
            "4",
            "--min-time",
            "5",
            "--out",
        ])
        .arg(d.join("nowhere/b.csv"))
        .output()
        .unwrap();
    assert_error(&r, 2, &["nowhere", "does not exist"]);
}

#[test]
fn shard_counts_are_bounded_before_allocation() {
    let d = tmpdir("counts");
    let cfg = d.join("g.toml");
    std::fs::write(&cfg, "n = [8]\nsteps = 10\n").unwrap();
    let c = cfg.to_str().unwrap();
    let o = d.join("o");
    let o = o.to_str().unwrap();
    for (args, env, needle) in [
        (vec!["--shard", "0/4294967296"], None, "--shard 0/4294967296"),
        (
            vec!["--shards", "4294967296"],
            Some(("JOB_COMPLETION_INDEX", "0")),
            "--shards",
        ),
        (
            vec![],
            Some(("SLURM_ARRAY_TASK_COUNT", "4294967296")),
            "SLURM_ARRAY_TASK_COUNT",
        ),
    ] {
        let mut cmd = bin();
        cmd.args(["sweep", "--config", c, "--out", o]).args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v).env("SLURM_ARRAY_TASK_ID", "0");
            if k == "JOB_COMPLETION_INDEX" {
                cmd.env_remove("SLURM_ARRAY_TASK_ID");
            }
        }
        let t = Instant::now();
        let r = cmd.output().unwrap();
        assert_error(&r, 2, &[needle, "1..=100000"]);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
    // the largest count runs at once (shards beyond one per cell are empty, and their
    // header-only files fix that directory's count: another directory for the rest)
    let t = Instant::now();
    let big = d.join("big");
    let r = bin()
        .args([
            "sweep",
            "--config",
            c,
            "--out",
            big.to_str().unwrap(),
            "--shard",
            "99999/100000",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(t.elapsed() < Duration::from_secs(5));
    // the flag wins over a broken environment, which is then not read; --shards beside
    // Slurm's own count must agree with it
    let r = bin()
        .args(["sweep", "--config", c, "--out", o, "--shard", "0/3"])
        .env("SLURM_ARRAY_TASK_ID", "zz")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = bin()
        .args(["sweep", "--config", c, "--out", o, "--shards", "4"])
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert_error(&r, 2, &["--shards 4", "SLURM_ARRAY_TASK_COUNT=2"]);
}

#[test]
fn a_full_stderr_never_turns_an_exit_code_into_a_panic() {
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    // a usage error and a refused value: their own exit code, 2
    for args in [vec!["train", "--n", "3"], vec!["train", "--bogus"]] {
        let r = bin().args(&args).stderr(full()).output().unwrap();
        assert_eq!(r.status.code(), Some(2), "{args:?}");
    }
    // SIGTERM: the checkpoint is written and the exit code is 143 (what requeue logic keys on)
    let d = tmpdir("stderr");
    let out = d.join("r");
    let mut child = bin()
        .args([
            "train", "--device", "cpu", "--n", "512", "--batch", "256", "--steps", "100000", "--out",
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(full())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    for l in lines.by_ref() {
        if l.unwrap().starts_with("[eval]") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let r = signal(child, "-TERM");
    assert_eq!(r.status.code(), Some(143));
    assert!(out.join("checkpoint.npz").is_file());
}

#[test]
fn a_resume_never_switches_where_the_update_runs() {
    if gpu(false).is_none() {
        return;
    }
    let d = tmpdir("update");
    for (first, then, was, now) in [
        (
            vec!["--device", "gpu"],
            vec!["--adapters", "all"],
            "device-f32",
            "host-f64",
        ),
        (
            vec!["--device", "gpu", "--adapters", "all"],
            vec![],
            "host-f64",
            "device-f32",
        ),
    ] {
        let out = d.join(format!("r{}", first.len()));
        let o = out.to_str().unwrap();
        let r = bin()
            .args(["train", "--n", "16", "--steps", "20", "--out", o])
            .args(&first)
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let r = bin()
            .args(["train", "--resume", o, "--steps", "30"])
            .args(&then)
            .output()
            .unwrap();
        assert_error(&r, 2, &[was, now, "resume as the run started"]);
        // as it started, it resumes
        let r = bin()
            .args(["train", "--resume", o, "--steps", "30"])
            .args(&first[2..])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
}

fn sweep(args: &[&str]) -> std::process::Output {
    bin().arg("sweep").args(args).output().unwrap()
}

#[test]
fn merge_checks_every_row_and_a_truncated_row_is_named() {
    let d = tmpdir("merge");
    let cfg = d.join("g.toml");
    std::fs::write(&cfg, "n = [8, 16]\nseeds = 3\nsteps = 50\n").unwrap();
    let c = cfg.to_str().unwrap();
    let out = d.join("s");
    let o = out.to_str().unwrap();
    for s in ["0/2", "1/2"] {
        assert!(sweep(&["--config", c, "--out", o, "--shard", s]).status.success());
    }
    assert!(sweep(&["merge", o]).status.success());
    let f0 = out.join("shards/0-of-2.csv");
    let f1 = out.join("shards/1-of-2.csv");
    let (t0, t1) = (
        std::fs::read_to_string(&f0).unwrap(),
        std::fs::read_to_string(&f1).unwrap(),
    );
    // a row of shard 0, its final_rel_err edited, appended to shard 1
    let row = t0.lines().nth(1).unwrap();
    let mut fields: Vec<&str> = row.split(',').collect();
    fields[15] = "1e-300";
    std::fs::write(&f1, format!("{t1}{}\n", fields.join(","))).unwrap();
    let r = sweep(&["merge", o]);
    assert_error(&r, 2, &["1-of-2.csv line", "is not shard 1/2's cell"]);
    // the shard's own resume refuses it the same way
    let r = sweep(&["--config", c, "--out", o, "--shard", "1/2"]);
    assert_error(&r, 2, &["1-of-2.csv line", "is not shard 1/2's cell"]);
    // a truncated last row: named as such, the earlier rows intact
    let cut = &t1[..t1.trim_end().len() - 8];
    std::fs::write(&f1, cut).unwrap();
    let r = sweep(&["merge", o]);
    assert_error(&r, 2, &["is not a complete row", "rows before it are intact"]);
    // a whole sweep into a sharded directory is refused, naming the shards
    std::fs::write(&f1, &t1).unwrap();
    let r = sweep(&["--config", c, "--out", o]);
    assert_error(&r, 2, &["holds a sharded sweep", "--shard I/N"]);
}

#[test]
fn one_directory_is_sharded_one_way_and_never_swept_whole_beside_running_shards() {
    let d = tmpdir("lock");
    let cfg = d.join("g.toml");
    std::fs::write(
        &cfg,
        "n = [512]\nbatch = [64]\nseeds = 4\nsteps = 100000\nthreshold = 1e-300\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let out = d.join("s");
    let o = out.to_str().unwrap();
    let running = start_until(&["sweep", "--config", c, "--out", o, "--shard", "0/2"], "pack 1/");
    for (args, needles) in [
        (
            vec!["--config", c, "--out", o],
            vec!["in use by another fftlearn process"],
        ),
        (
            vec!["--config", c, "--out", o, "--shard", "0/3"],
            vec!["cut into 2 shards", "--shard I/2"],
        ),
        (vec!["merge", o], vec!["in use by another fftlearn process"]),
    ] {
        let r = sweep(&args);
        assert_error(&r, 2, &needles);
    }
    // the other shard of the same sharding runs beside it
    let other = start_until(&["sweep", "--config", c, "--out", o, "--shard", "1/2"], "pack 1/");
    for p in [running, other] {
        assert_eq!(signal(p, "-TERM").status.code(), Some(143));
    }
    assert!(Path::new(o).join("shards/0-of-2.running").is_dir());
}

#[test]
fn submit_sh_checks_its_arguments_and_passes_paths_whole() {
    let d = tmpdir("submit");
    // a stand-in for sbatch that records what it was given (the real Slurm run is
    // tools/slurm_ci.sh, in CI)
    let stub = d.join("bin");
    std::fs::create_dir(&stub).unwrap();
    let log = d.join("sbatch.log");
    std::fs::write(
        stub.join("sbatch"),
        "#!/bin/sh\necho \"$* | CONFIG=$CONFIG | OUT=$OUT\" >> \"$SBATCH_LOG\"\necho 4242\n",
    )
    .unwrap();
    std::fs::set_permissions(stub.join("sbatch"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = d.join("grid,one.toml");
    std::fs::write(&cfg, "n = [8]\nsteps = 10\n").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm/submit.sh");
    let path = format!("{}:{}", stub.display(), std::env::var("PATH").unwrap_or_default());
    let submit = |args: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .env("PATH", &path)
            .env("SBATCH_LOG", &log)
            .output()
            .unwrap()
    };
    let c = cfg.to_str().unwrap();
    let out = d.join("runs,a/out");
    let o = out.to_str().unwrap();
    for (args, needle) in [
        (vec![c, o], "usage:"),
        (vec!["missing.toml", o, "4"], "CONFIG missing.toml is not a file"),
        (vec![c, o, "0"], "SHARDS '0' must be a whole number 1..=100000"),
        (vec![c, o, "abc"], "SHARDS 'abc'"),
        (vec![c, o, "-2"], "SHARDS '-2'"),
        (vec![c, o, "100001"], "SHARDS '100001'"),
    ] {
        let r = submit(&args);
        assert_eq!(r.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(!log.exists(), "{args:?} submitted a job");
    }
    let r = submit(&[c, o, "4", "--wait"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].contains("--array=0-3") && calls[0].contains("--export=ALL ") && !calls[0].contains("--wait"));
    assert!(calls[1].contains("--dependency=afterok:4242") && calls[1].contains("--wait"));
    // the paths reach the jobs whole, commas and all
    for call in &calls {
        assert!(
            call.ends_with(&format!("| CONFIG={} | OUT={}", cfg.display(), out.display())),
            "{call}"
        );
    }
}

/// A hostile corpus of sweep configs and flags: each is refused with one line naming what is
/// wrong (the key, the value or the flag), exit 2, before any cell or measurement runs.
#[test]
fn hostile_sweep_configs_and_flags_are_refused_naming_what_is_wrong() {
    let d = tmpdir("hostile");
    for (doc, needles) in [
        (
            "n = [8]\nsteps = 18446744073709551615\n",
            vec!["g.toml:2", "key 'steps'"],
        ),
        (
            "n = [8]\nsteps = 10\ninit = [\"modulus:1\", \"modulus:1.0\"]\n",
            vec!["key 'init'", "values 1 and 2 are the same, modulus:1"],
        ),
        ("n = [8]\nbatch = [16]\nbudget = 3\n", vec!["key 'budget'", "0 steps"]),
        (
            "n = [8]\nbatch = [16]\nbudget = 9223372036854775807\n",
            vec!["key 'budget'", "1..=4294967295 steps"],
        ),
        (
            "n = [8]\nsteps = 10\nlr = [1e-2, 3e-2]\noptimizer = [\"als\"]\n",
            vec!["train the same run", "no effect on als"],
        ),
        (
            "n = [8]\nsteps = 10\nbatch = [8, 16]\ndata = [\"population\"]\n",
            vec!["train the same run", "batch has no effect on population data"],
        ),
        ("n = [8]\nsteps = 10\nseeds = 0\n", vec!["key 'seeds'", "must be >= 1"]),
    ] {
        let cfg = d.join("g.toml");
        std::fs::write(&cfg, doc).unwrap();
        let r = bin()
            .args(["sweep", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(d.join("o"))
            .output()
            .unwrap();
        assert_error(&r, 2, &needles);
        assert!(!d.join("o").join("sweep.csv").exists(), "{doc:?} ran");
    }
    let flags: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["inspect", "--init", "exact", "--n", "8", "--lr", "0.1"],
            vec!["--lr sets the escape runs", "--escape"],
        ),
        (
            vec!["inspect", "--init", "odd-off:1e308:1e308", "--n", "8"],
            vec!["relative operator error is NaN"],
        ),
        (
            vec!["bench", "--device", "cpu", "--kernel", "lane", "--precision", "f32"],
            vec!["--kernel, --precision set the GPU path", "--device cpu"],
        ),
        (
            vec!["bench", "--device", "cpu", "--batches", "1000000000000"],
            vec!["--batches 1000000000000", "2^32"],
        ),
        (
            vec!["bench", "--device", "cpu", "--min-time", "1e10"],
            vec!["--min-time", "0..=3600"],
        ),
        (
            vec!["bench", "--device", "cpu", "--min-steps", "100000000"],
            vec!["--min-steps"],
        ),
        (
            vec!["bench", "--device", "cpu", "--min-steps", "0"],
            vec!["--min-steps 0: 1..=1000000"],
        ),
        (
            vec!["bench", "--device", "cpu", "--batches", "64,256,64"],
            vec!["batch 64 given twice (at positions 1 and 3)"],
        ),
        (
            vec!["inspect", "--n", "8", "--lanczos", "1"],
            vec!["--lanczos 1: at least 2"],
        ),
        (
            vec!["inspect", "--n", "8", "--escape", "0.1,0.2,0.1"],
            vec!["--escape: size 0.1 given twice"],
        ),
    ];
    for (args, needles) in flags {
        let out = d.join("x");
        let r = bin().args(&args).arg("--out").arg(&out).output().unwrap();
        assert_error(&r, 2, &needles);
    }
    // claims measures for minutes: a directory as --out is refused before it starts
    std::fs::create_dir_all(d.join("adir")).unwrap();
    let t = Instant::now();
    let r = bin()
        .args(["claims", "--no-readme", "--out"])
        .arg(d.join("adir"))
        .output()
        .unwrap();
    assert_error(&r, 2, &["adir", "a directory"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    // a shard with no cells reports a cost of 0, not -0
    let cfg = d.join("one.toml");
    std::fs::write(&cfg, "n = [8]\nsteps = 5\n").unwrap();
    let r = bin()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(d.join("sh"))
        .args(["--shard", "1/2"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&r.stdout);
    assert!(log.contains("0 of 1 cells, estimated cost 0.000e0 of"), "{log}");
    if gpu(false).is_none() {
        return;
    }
    for (adapters, needle) in [
        ("", "an empty adapter name"),
        (",", "an empty adapter name"),
        ("all,all", "'all' takes every adapter"),
    ] {
        let r = bin()
            .args([
                "train",
                "--device",
                "gpu",
                "--n",
                "8",
                "--steps",
                "2",
                "--adapters",
                adapters,
                "--out",
            ])
            .arg(d.join("t"))
            .arg("--overwrite")
            .output()
            .unwrap();
        assert_error(&r, 2, &["--adapters", needle]);
    }
    for shape in ["abc", "0,0", "3,99999"] {
        let r = bin()
            .args(["train", "--device", "gpu", "--n", "8", "--steps", "2", "--out"])
            .arg(d.join("t"))
            .arg("--overwrite")
            .env("FFTLEARN_FUSED_SHAPE", shape)
            .output()
            .unwrap();
        assert_error(&r, 2, &[&format!("FFTLEARN_FUSED_SHAPE={shape}"), "BITS,WG"]);
    }
}

#[test]
fn a_refused_run_leaves_its_directory_as_it_was() {
    let d = tmpdir("refused");
    let train = |args: &[&str]| {
        bin()
            .args(["train", "--device", "cpu", "--n", "16"])
            .args(args)
            .output()
            .unwrap()
    };
    let run = d.join("run");
    let r = run.to_str().unwrap();
    let o = train(&["--steps", "5", "--out", r]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let files = |p: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().to_string(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = files(&run);
    // --overwrite with a setting, an init file or a flag that is refused: the old run stays
    let missing = d.join("missing.npz");
    for (args, needle) in [
        (vec!["--lr", "nan"], "--lr NaN"),
        (vec!["--kernel", "lane"], "--kernel sets the GPU path"),
        (vec!["--init", missing.to_str().unwrap()], "missing.npz"),
        (vec!["--optimizer", "lm"], "population"),
    ] {
        let mut a = vec!["--steps", "3", "--out", r, "--overwrite"];
        a.extend(args);
        assert_error(&train(&a), 2, &[needle]);
        assert!(files(&run) == before, "{a:?} changed the run");
    }
    // the run's own parameters as the new run's init: read before the old run is replaced
    let init = run.join("params.npz");
    let o = train(&[
        "--steps",
        "3",
        "--out",
        r,
        "--overwrite",
        "--init",
        init.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // a run that starts at the FFT (step-1 loss ~1e-31) is not divergence for Adam's first
    // noise-driven steps; an exploding one still is
    let exact = d.join("exact");
    let e = exact.to_str().unwrap();
    let o = train(&["--steps", "30", "--init", "exact", "--out", e]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = train(&[
        "--steps",
        "30",
        "--init",
        "exact",
        "--lr",
        "1e3",
        "--out",
        e,
        "--overwrite",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the floor (1e-8 N)"));
    // a refused new run creates no directory
    let fresh = d.join("fresh");
    assert_error(
        &train(&["--out", fresh.to_str().unwrap(), "--lr", "-1"]),
        2,
        &["--lr -1"],
    );
    assert!(!fresh.exists());
    // --out naming the resumed directory another way is the same directory
    let dot = format!("{}/./", r);
    let o = train(&["--resume", r, "--out", &dot, "--steps", "4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // a finished run: the message does not name a --steps that was not given
    assert_error(&train(&["--resume", r]), 2, &["the run's 4 steps are done"]);
    // GPU settings on a resumed CPU run: refused, without offering a GPU the run cannot take
    let o = train(&["--resume", r, "--steps", "9", "--kernel", "lane"]);
    assert_error(
        &o,
        2,
        &["--kernel sets the GPU path, but the run resumes on the CPU f64 path it started on; drop it"],
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("--device gpu"));
}
