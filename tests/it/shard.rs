//! Sharded sweeps: shards run as separate concurrent processes and merged give the
//! one-process sweep's CSV (every column but wall_s) for 1, 2, 3 and 7 shards; a stopped shard
//! resumes; merge refuses a shard of another config naming the file, and missing cells unless
//! --partial; the shard comes from Slurm's or Kubernetes' environment when no flag names it.

use crate::util::{assert_error, bin, tmpdir, without_wall};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

const GRID: &str = "n = [8, 16, 32]\noptimizer = [\"adam\", \"sgd\"]\nlr = [0.01, 0.03]\nseeds = 3\nsteps = 200\n";

fn sweep(args: &[&str]) -> std::process::Output {
    bin().arg("sweep").args(args).output().unwrap()
}

#[test]
fn merged_shards_equal_the_one_process_sweep() {
    let d = tmpdir("equal");
    let cfg = d.join("grid.toml");
    std::fs::write(&cfg, GRID).unwrap();
    let c = cfg.to_str().unwrap();
    let one = d.join("one");
    assert!(sweep(&["--config", c, "--out", one.to_str().unwrap()]).status.success());
    let want = without_wall(&one.join("sweep.csv"));
    assert_eq!(want.lines().count(), 1 + 36);
    for n in [1usize, 2, 3, 7] {
        let out = d.join(format!("s{n}"));
        let o = out.to_str().unwrap().to_string();
        // every shard at once, as an array job runs them
        let children: Vec<_> = (0..n)
            .map(|i| {
                bin()
                    .args(["sweep", "--config", c, "--out", &o, "--shard", &format!("{i}/{n}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for ch in children {
            let r = ch.wait_with_output().unwrap();
            assert!(r.status.success(), "{n} shards: {}", String::from_utf8_lossy(&r.stderr));
        }
        let m = sweep(&["merge", &o]);
        assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
        assert_eq!(without_wall(&out.join("sweep.csv")), want, "{n} shards");
        assert!(out.join("success_rate.png").exists());
    }
}

#[test]
fn a_stopped_shard_resumes_and_merge_checks_what_it_merges() {
    let d = tmpdir("resume");
    let cfg = d.join("grid.toml");
    std::fs::write(&cfg, GRID.replace("steps = 200", "steps = 3000")).unwrap();
    let c = cfg.to_str().unwrap();
    let one = d.join("one");
    assert!(sweep(&["--config", c, "--out", one.to_str().unwrap()]).status.success());
    let out = d.join("s");
    let o = out.to_str().unwrap();
    // shard 0 of 2 from Slurm's environment, stopped after its second cell
    let mut child = bin()
        .args(["sweep", "--config", c, "--out", o])
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("shard 0/2 (from SLURM_ARRAY_TASK_ID=0"), "{first}");
    for l in lines.by_ref() {
        if l.unwrap().contains("cell 2/") {
            break;
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    std::thread::spawn(move || for _ in lines {});
    let r = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    if r.status.code() == Some(143) {
        assert!(err.contains("rerun the same command to resume"), "{err}");
    }
    // incomplete: merge refuses, naming the missing cells; --partial draws what is there
    let m = sweep(&["merge", o]);
    assert_error(&m, 2, &["cells missing", "n = ", "--partial"]);
    assert!(sweep(&["merge", o, "--partial"]).status.success());
    // the shard resumes; Kubernetes' index runs the other one
    let r = bin()
        .args(["sweep", "--config", c, "--out", o, "--shard", "0/2"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("resuming"));
    let k = bin()
        .args(["sweep", "--config", c, "--out", o, "--shards", "2"])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    assert!(String::from_utf8_lossy(&k.stdout).contains("shard 1/2 (from JOB_COMPLETION_INDEX=1"));
    assert!(sweep(&["merge", o]).status.success());
    assert_eq!(
        without_wall(&out.join("sweep.csv")),
        without_wall(&one.join("sweep.csv"))
    );
    // a shard file of another config is refused by name
    let other = d.join("other.toml");
    std::fs::write(&other, GRID.replace("seeds = 3", "seeds = 2")).unwrap();
    let o2 = d.join("o2");
    assert!(sweep(&[
        "--config",
        other.to_str().unwrap(),
        "--out",
        o2.to_str().unwrap(),
        "--shard",
        "1/2"
    ])
    .status
    .success());
    std::fs::copy(o2.join("shards/1-of-2.csv"), out.join("shards/1-of-2.csv")).unwrap();
    assert_error(&sweep(&["merge", o]), 2, &["1-of-2.csv", "ran another config"]);
    // bad shard flags
    assert_error(
        &sweep(&["--config", c, "--out", o, "--shard", "2/2"]),
        2,
        &["--shard", "0 <= I < N"],
    );
    let k = bin()
        .args(["sweep", "--config", c, "--out", o])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert_error(&k, 2, &["JOB_COMPLETION_INDEX", "--shards"]);
}

#[test]
fn a_preempted_cell_resumes_mid_cell_to_the_same_row() {
    let d = tmpdir("midcell");
    let cfg = d.join("grid.toml");
    // one cell of several seconds, evaluated every 100 steps
    std::fs::write(
        &cfg,
        "n = [512]\nbatch = [128]\nsteps = 2500\neval_every = 100\nthreshold = 1e-300\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let one = d.join("one");
    assert!(sweep(&["--config", c, "--out", one.to_str().unwrap()]).status.success());
    for shard in [None, Some("0/1")] {
        let out = d.join(if shard.is_some() { "sharded" } else { "whole" });
        let o = out.to_str().unwrap().to_string();
        let mut args = vec!["sweep", "--config", c, "--out", &o];
        if let Some(s) = shard {
            args.extend(["--shard", s]);
        }
        let child = bin()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(800));
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let r = child.wait_with_output().unwrap();
        assert_eq!(r.status.code(), Some(143), "{}", String::from_utf8_lossy(&r.stderr));
        let ck = match shard {
            Some(_) => out.join("shards/0-of-1.running/0.npz"),
            None => out.join("running/0.npz"),
        };
        let k = fftlearn::train::checkpoint::Checkpoint::load(&ck).unwrap();
        assert!(k.step > 0 && k.step < 2500, "checkpoint at step {}", k.step);
        let r = bin().args(&args).output().unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(!ck.exists(), "the cell checkpoint is removed once the cell ends");
        assert!(
            !ck.parent().unwrap().exists(),
            "and the running state once the sweep ends"
        );
        if shard.is_some() {
            assert!(sweep(&["merge", &o]).status.success());
        }
        assert_eq!(
            without_wall(&out.join("sweep.csv")),
            without_wall(&one.join("sweep.csv")),
            "{shard:?}"
        );
    }
}

#[test]
fn a_shard_without_cells_still_marks_its_sharding_and_merges() {
    let d = tmpdir("empty");
    let cfg = d.join("grid.toml");
    // two cells, three shards: one shard owns none
    std::fs::write(&cfg, "n = [8]\nseeds = 2\nsteps = 50\n").unwrap();
    let c = cfg.to_str().unwrap();
    let out = d.join("s");
    let o = out.to_str().unwrap();
    let counts: Vec<usize> = (0..3)
        .map(|i| {
            let r = sweep(&["--config", c, "--out", o, "--shard", &format!("{i}/3")]);
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            let f = out.join(format!("shards/{i}-of-3.csv"));
            let t = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            t.lines().count() - 1
        })
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 2, "{counts:?}");
    assert!(counts.contains(&0), "{counts:?}");
    // the directory is cut into three, even by the shard that ran nothing
    let r = sweep(&["--config", c, "--out", o, "--shard", "0/2"]);
    assert_error(&r, 2, &["cut into 3 shards"]);
    let m = sweep(&["merge", o]);
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    assert!(String::from_utf8_lossy(&m.stdout).contains("3 shard files, 2 of 2 cells"));
    // --shards beside --shard must agree with it
    let r = sweep(&["--config", c, "--out", o, "--shard", "0/3", "--shards", "2"]);
    assert_error(&r, 2, &["--shards 2 disagrees with --shard 0/3"]);
}
