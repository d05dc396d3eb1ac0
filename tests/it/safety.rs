//! Run safety, one test per way a run could lose data or mislead: guarded and locked output
//! directories, SIGTERM and SIGHUP treated like Ctrl-C, stdout failures that never cost a run,
//! bounded work, the last step always recorded, resume semantics of step-dependent schedules,
//! non-finite results refused, and flags that would have no effect refused by name.

use crate::resume::{full_run, same_files, start_and_signal};
use crate::util::{assert_error as refused, bin, start_until, tmpdir};
use fftlearn::io::npy::{self, Out};
use fftlearn::train::checkpoint::Checkpoint;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

fn run(args: &[&str], out: &Path) -> Output {
    bin().args(args).arg("--out").arg(out).output().unwrap()
}

fn ck_step(dir: &Path) -> u32 {
    Checkpoint::load(&dir.join("checkpoint.npz")).unwrap().step
}

const SMALL: [&str; 5] = ["train", "--device", "cpu", "--n", "64"];

fn small(extra: &[&str], out: &Path) -> Output {
    let args: Vec<&str> = SMALL.iter().chain(extra).copied().collect();
    run(&args, out)
}

#[test]
fn a_directory_holding_a_run_is_refused_and_overwrite_replaces_it() {
    let d = tmpdir("guard");
    let r = d.join("r");
    assert!(small(&["--steps", "60"], &r).status.success());
    let before = std::fs::read(r.join("params.npz")).unwrap();
    let o = small(&["--steps", "5"], &r);
    refused(&o, 2, &["holds a run", "--resume", "--overwrite"]);
    assert_eq!(ck_step(&r), 60, "the old run is untouched");
    assert_eq!(std::fs::read(r.join("params.npz")).unwrap(), before);
    let o = small(&["--steps", "5", "--overwrite"], &r);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ck_step(&r), 5);
    let csv = std::fs::read_to_string(r.join("metrics.csv")).unwrap();
    assert!(
        csv.lines().all(|l| !l.starts_with("60,")),
        "nothing of the old run remains: {csv}"
    );
    let o = bin()
        .args(["train", "--resume"])
        .arg(&r)
        .arg("--overwrite")
        .output()
        .unwrap();
    refused(&o, 2, &["--overwrite"]);
}

fn interrupt(child: std::process::Child) -> Output {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    child.wait_with_output().unwrap()
}

#[test]
fn a_second_writer_is_refused_naming_the_holder() {
    let d = tmpdir("lock");
    let r = d.join("r");
    let rs = r.to_str().unwrap();
    let a = start_until(
        &[
            "train", "--device", "cpu", "--batch", "256", "--steps", "100000", "--out", rs,
        ],
        "step     1",
    );
    let pid = a.id().to_string();
    let o = bin()
        .args(["train", "--device", "cpu", "--n", "64", "--out", rs])
        .output()
        .unwrap();
    refused(&o, 2, &["in use by another fftlearn process", &pid]);
    let o = bin().args(["train", "--resume", rs]).output().unwrap();
    refused(&o, 2, &["in use", &pid]);
    let a = interrupt(a);
    assert_eq!(a.status.code(), Some(130));
    // the lock went with the process: the run resumes
    let o = bin()
        .args(["train", "--resume", rs, "--steps"])
        .arg((ck_step(&r) + 1).to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // two sweeps into one directory
    let grid = d.join("grid.toml");
    std::fs::write(&grid, "n = [256, 512]\nbatch = [256]\nsteps = 20000\nseeds = 4\n").unwrap();
    let other = d.join("other.toml");
    std::fs::write(&other, "n = [8]\nsteps = 10\n").unwrap();
    let s = d.join("s");
    let ss = s.to_str().unwrap();
    let a = start_until(&["sweep", "--config", grid.to_str().unwrap(), "--out", ss], "");
    // the first sweep holds the directory from before its first cell
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = bin()
        .args(["sweep", "--config", other.to_str().unwrap(), "--out", ss])
        .output()
        .unwrap();
    refused(&o, 2, &["in use", &a.id().to_string()]);
    interrupt(a);
}

#[test]
fn sigterm_and_sighup_checkpoint_and_resume_bit_for_bit() {
    let d = tmpdir("term");
    let full = full_run(&d);
    for (sig, code) in [("-TERM", 143), ("-HUP", 129)] {
        let part = d.join(&sig[1..]);
        let o = start_and_signal(&part, "step   200 |", sig, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{sig}: {err}");
        assert!(err.contains("interrupted at step") && err.contains("--resume"), "{err}");
        let step = ck_step(&part);
        assert!((200..3000).contains(&step), "{sig}: checkpoint at step {step}");
        let r = bin().arg("train").arg("--resume").arg(&part).output().unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        same_files(&full, &part);
    }
}

#[test]
fn stdout_failures_never_cost_the_run() {
    let d = tmpdir("stdout");
    // a broken pipe: the reader goes away after one line; the run finishes, exit 0
    let bp = d.join("bp");
    let mut child = bin()
        .args(SMALL)
        .args(["--steps", "50", "--print-every", "1", "--out"])
        .arg(&bp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(first.starts_with("[info]"), "{first}");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ck_step(&bp), 50);
    assert!(bp.join("params.npz").exists());
    // a full disk behind stdout: the run finishes and the failure is one error line
    let full = d.join("full");
    let o = bin()
        .args(SMALL)
        .args(["--steps", "50", "--out"])
        .arg(&full)
        .stdout(std::fs::File::options().write(true).open("/dev/full").unwrap())
        .output()
        .unwrap();
    refused(&o, 1, &["cannot write to stdout", "No space left"]);
    assert_eq!(ck_step(&full), 50);
    // commands that only report: never a panic (exit 101)
    for args in [
        vec!["devices"],
        vec!["hessian", "--n", "8", "--out", d.join("h").to_str().unwrap()],
        vec!["init", "--n", "8", "--out", d.join("p8.npz").to_str().unwrap()],
        vec![
            "rsweep",
            "--n",
            "8",
            "--points",
            "3",
            "--out",
            d.join("rs").to_str().unwrap(),
        ],
    ] {
        let mut child = bin()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?} | closed pipe: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = bin()
            .args(&args)
            .stdout(std::fs::File::options().write(true).open("/dev/full").unwrap())
            .output()
            .unwrap();
        refused(&o, 1, &["cannot write to stdout"]);
    }
    assert!(
        d.join("h/eigenvalues.csv").exists(),
        "hessian wrote its files behind a closed pipe"
    );
}

/// Run `args` as the unprivileged user `nobody` when this is root (root writes anywhere).
fn as_user(args: &[&str]) -> Output {
    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if root.unwrap_or(false) {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_fftlearn"))
            .args(args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .unwrap()
    } else {
        bin().args(args).output().unwrap()
    }
}

#[test]
fn an_unwritable_out_is_refused_before_step_1() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmpdir("ro");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ro = d.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let target = ro.join("x");
    let o = as_user(&[
        "train",
        "--device",
        "cpu",
        "--n",
        "64",
        "--out",
        target.to_str().unwrap(),
    ]);
    refused(&o, 2, &["--out", "cannot create the directory"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("step "), "no step ran");
    // a directory that exists but cannot be written
    let o = as_user(&["train", "--device", "cpu", "--n", "64", "--out", ro.to_str().unwrap()]);
    refused(&o, 2, &["--out", "cannot write in the directory"]);
    // a file path in a missing directory: the user's to fix (exit 2)
    let o = bin()
        .args(["init", "--n", "8", "--out"])
        .arg(d.join("missing/p.npz"))
        .output()
        .unwrap();
    refused(&o, 2, &["cannot write", "must exist"]);
}

#[test]
fn the_last_step_is_always_logged_and_is_the_summary() {
    let d = tmpdir("last");
    for (steps, every) in [("15", "10"), ("3", "100000")] {
        let r = d.join(steps);
        let o = small(&["--steps", steps, "--print-every", every], &r);
        assert!(o.status.success());
        let csv = std::fs::read_to_string(r.join("metrics.csv")).unwrap();
        let last = csv.lines().last().unwrap();
        assert!(last.starts_with(&format!("{steps},")), "{csv}");
        let loss: f64 = last.split(',').nth(1).unwrap().parse().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(&format!("final loss {loss:.6e}")), "{out}");
    }
    // a resumed run whose first leg ended off the print grid equals an uninterrupted one
    let a = d.join("a");
    assert!(small(&["--steps", "25", "--print-every", "10"], &a).status.success());
    let b = d.join("b");
    assert!(small(&["--steps", "15", "--print-every", "10"], &b).status.success());
    assert!(bin()
        .args(["train", "--resume"])
        .arg(&b)
        .args(["--steps", "25"])
        .output()
        .unwrap()
        .status
        .success());
    assert_eq!(
        std::fs::read(a.join("metrics.csv")).unwrap(),
        std::fs::read(b.join("metrics.csv")).unwrap()
    );
}

#[test]
fn a_cosine_run_keeps_its_horizon_on_resume() {
    let d = tmpdir("cosine");
    let r = d.join("r");
    assert!(small(&["--steps", "20", "--schedule", "cosine"], &r).status.success());
    let o = bin()
        .args(["train", "--resume"])
        .arg(&r)
        .args(["--steps", "40"])
        .output()
        .unwrap();
    refused(&o, 2, &["--steps 40", "cosine", "20 steps"]);
    assert_eq!(ck_step(&r), 20);
    // a step schedule does not depend on the horizon: it may be extended
    let s = d.join("s");
    assert!(small(&["--steps", "20", "--schedule", "step:5:0.5"], &s)
        .status
        .success());
    let o = bin()
        .args(["train", "--resume"])
        .arg(&s)
        .args(["--steps", "40"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn divergence_advice_does_not_send_the_run_back_into_it() {
    let d = tmpdir("advice");
    let o = run(
        &["train", "--device", "cpu", "--lr", "1e3", "--checkpoint-every", "1"],
        &d.join("r"),
    );
    refused(&o, 3, &["diverged at step", "smaller --lr", "--lr 1e2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("continue with"), "{err}");
    assert!(err.contains("relative operator error"), "{err}");
}

#[test]
fn non_finite_targets_and_results_are_refused() {
    let d = tmpdir("finite");
    let p = d.join("p.npz");
    assert!(bin()
        .args(["init", "--n", "8", "--scheme", "modulus:1e200", "--out"])
        .arg(&p)
        .output()
        .unwrap()
        .status
        .success());
    let x = d.join("x.npy");
    npy::write_npy(&x, Out::F64(&[2, 8], &[1.0; 16])).unwrap();
    let o = bin()
        .args(["forward", "--params"])
        .arg(&p)
        .arg("--input")
        .arg(&x)
        .arg("--out")
        .arg(d.join("y.npy"))
        .output()
        .unwrap();
    refused(&o, 1, &["NaN or infinity", "nothing written"]);
    assert!(!d.join("y.npy").exists());
    let q = d.join("q.npz");
    assert!(bin()
        .args(["init", "--n", "8", "--out"])
        .arg(&q)
        .output()
        .unwrap()
        .status
        .success());
    let big = d.join("big.npy");
    npy::write_npy(&big, Out::F64(&[1, 8], &[1e300; 8])).unwrap();
    let o = bin()
        .args(["grad", "--params"])
        .arg(&q)
        .arg("--input")
        .arg(&big)
        .arg("--out")
        .arg(d.join("g.npz"))
        .output()
        .unwrap();
    refused(&o, 1, &["NaN or infinite"]);
    let t = d.join("t.npy");
    let mut tv = vec![num_complex::Complex64::new(0.0, 0.0); 2 * 5];
    tv[3].re = f64::NAN;
    npy::write_npy(&t, Out::C128(&[2, 5], &tv)).unwrap();
    let o = bin()
        .args(["grad", "--params"])
        .arg(&q)
        .arg("--input")
        .arg(&x)
        .arg("--target")
        .arg(&t)
        .arg("--out")
        .arg(d.join("g.npz"))
        .output()
        .unwrap();
    refused(&o, 2, &["--target", "NaN"]);
}

#[test]
fn flags_without_effect_are_refused_by_name() {
    let d = tmpdir("flags");
    let r = d.join("r");
    let r = r.to_str().unwrap();
    for (args, needles) in [
        (
            vec![
                "train",
                "--device",
                "cpu",
                "--precision",
                "f64",
                "--kernel",
                "group",
                "--out",
                r,
            ],
            vec!["--precision, --kernel", "CPU f64 path"],
        ),
        (
            vec!["train", "--device", "cpu", "--adapter", "nosuch", "--out", r],
            vec!["--adapter"],
        ),
        (
            vec!["train", "--optimizer", "als", "--lr", "0.1", "--out", r],
            vec!["--lr", "als"],
        ),
        (
            vec![
                "train",
                "--device",
                "cpu",
                "--data",
                "population",
                "--batch",
                "64",
                "--out",
                r,
            ],
            vec!["--batch 64", "population"],
        ),
        (
            vec!["gradcheck", "--params", "p8.npz", "--n", "64"],
            vec!["--n", "--params"],
        ),
        (
            vec!["snr", "--params", "p8.npz", "--init", "exact"],
            vec!["--init", "--params"],
        ),
        (vec!["train", "--seed", "-1", "--out", r], vec!["--seed", "-1"]),
    ] {
        let o = bin().args(&args).current_dir(&d).output().unwrap();
        refused(&o, 2, &needles);
    }
    assert!(!Path::new(r).join("checkpoint.npz").exists());
}

#[test]
fn stale_temporary_files_are_removed_under_the_lock() {
    let d = tmpdir("tmpfiles");
    let r = d.join("r");
    assert!(small(&["--steps", "20"], &r).status.success());
    let stale = r.join(".checkpoint.npz.tmp99999");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let o = bin()
        .args(["train", "--resume"])
        .arg(&r)
        .args(["--steps", "30"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stale.exists());
}

#[test]
fn grids_and_allocations_are_bounded_before_they_are_made() {
    let d = tmpdir("bounds");
    for (doc, needles) in [
        ("n = [8]\nsteps = 10\nseeds = 100000000\n", vec!["key 'seeds'", "100000"]),
        ("n = [8]\nsteps = 10\nseeds = 1000000000000\n", vec!["key 'seeds'", "100000"]),
        (
            "n = [8, 16, 32, 64]\nlr = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nbatch = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nsteps = 10\nseeds = 300\n",
            vec!["120000 cells", "at most 100000"],
        ),
        ("n = [8, 8]\nsteps = 10\n", vec!["key 'n'", "values 1 and 2 are the same, 8"]),
    ] {
        let cfg = d.join("g.toml");
        std::fs::write(&cfg, doc).unwrap();
        let t = std::time::Instant::now();
        let o = bin().args(["sweep", "--config"]).arg(&cfg).arg("--out").arg(d.join("s")).output().unwrap();
        refused(&o, 2, &needles);
        assert!(t.elapsed().as_secs_f64() < 10.0, "{doc:?} took {:?}", t.elapsed());
    }
    let o = bin()
        .args(["hessian", "--method", "lanczos", "--n", "65536", "--out"])
        .arg(d.join("h"))
        .output()
        .unwrap();
    if fftlearn::io::memory::available().is_some_and(|a| a < 100 << 30) {
        refused(&o, 2, &["GiB of memory", "available"]);
    }
}

#[test]
fn sweep_refusals_and_progress_name_what_differs() {
    let d = tmpdir("sweepmsg");
    let cfg = d.join("g.toml");
    std::fs::write(&cfg, "n = [8]\nlr = [0.01, 0.02]\nsteps = 10\n").unwrap();
    let s = d.join("s");
    let o = bin()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&s)
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("lr 1e-2") && out.contains("lr 2e-2"),
        "progress names the lr: {out}"
    );
    // the CSV does not depend on the thread count
    let csv1 = std::fs::read_to_string(s.join("sweep.csv")).unwrap();
    assert!(!csv1.contains("threads"), "{csv1}");
    std::fs::write(&cfg, "n = [8]\nlr = [0.01, 0.03]\nsteps = 10\n").unwrap();
    let o = bin()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&s)
        .output()
        .unwrap();
    refused(&o, 2, &["another config", "key 'lr' differs"]);
}

#[test]
fn claims_refuses_reversed_markers_before_measuring() {
    let d = tmpdir("claims");
    let readme = d.join("README.md");
    std::fs::write(&readme, "x\n<!-- claims:end -->\n<!-- claims:begin -->\n").unwrap();
    let t = std::time::Instant::now();
    let o = bin()
        .args(["claims", "--out"])
        .arg(d.join("c.md"))
        .arg("--readme")
        .arg(&readme)
        .output()
        .unwrap();
    refused(&o, 2, &["comes before"]);
    assert!(t.elapsed().as_secs_f64() < 5.0, "refused after {:?}", t.elapsed());
}

#[test]
fn gpu_messages_say_what_is_accepted_and_nan_fails() {
    if crate::gpu::gpu(false).is_none() {
        return;
    }
    // the chunk range in the message is the range accepted
    let o = bin()
        .args([
            "gradcheck",
            "--kernel",
            "lane",
            "--n",
            "8",
            "--batch",
            "4",
            "--chunk",
            "0",
        ])
        .output()
        .unwrap();
    refused(&o, 2, &["--chunk 0: must be 1..="]);
    let err = String::from_utf8_lossy(&o.stderr);
    let most: usize = err
        .split("1..=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ok = bin()
        .args(["gradcheck", "--kernel", "lane", "--n", "8", "--batch", "4", "--chunk"])
        .arg(most.to_string())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "--chunk {most}: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let over = bin()
        .args(["gradcheck", "--kernel", "lane", "--n", "8", "--batch", "4", "--chunk"])
        .arg((most + 1).to_string())
        .output()
        .unwrap();
    refused(&over, 2, &["--chunk"]);
    // a point that overflows f32: NaN groups make the check fail, never "worst group 0"
    let o = bin()
        .args(["gradcheck", "--init", "modulus:1e30", "--n", "16", "--batch", "4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAIL") && out.contains("worst group scaled norm err NaN"),
        "{out}"
    );
}

#[test]
fn an_interrupt_within_a_huge_step_is_answered_at_once_and_resumes_exactly() {
    let d = tmpdir("hugestep");
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--device",
            "cpu",
            "--n",
            "4",
            "--batch",
            "8000000",
            "--steps",
            "4",
            "--print-every",
            "1",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let full = d.join("full");
    assert!(bin().args(args(&full)).output().unwrap().status.success());
    let part = d.join("part");
    let mut child = bin()
        .args(args(&part))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for l in lines.by_ref() {
        if l.unwrap().starts_with("step     1") {
            break;
        }
    }
    // step 2 is under way (a step of 8e6 samples takes about half a second here)
    let t = std::time::Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    std::thread::spawn(move || for _ in lines {});
    let o = child.wait_with_output().unwrap();
    let waited = t.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        (1..3).contains(&ck_step(&part)),
        "checkpoint at step {}",
        ck_step(&part)
    );
    assert!(waited < 5.0, "the interrupt waited {waited:.1} s");
    let r = bin().args(["train", "--resume"]).arg(&part).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    same_files(&full, &part);
}

#[test]
fn an_interrupt_within_an_exact_evaluation_is_answered_and_the_row_completed_on_resume() {
    let d = tmpdir("evalstop");
    // at N = 8192 each exact evaluation (every step here) takes most of a second
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--device",
            "cpu",
            "--n",
            "8192",
            "--batch",
            "1",
            "--steps",
            "3",
            "--print-every",
            "1",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let full = d.join("full");
    assert!(bin().args(args(&full)).output().unwrap().status.success());
    let part = d.join("part");
    let mut child = bin()
        .args(args(&part))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("[info]"), "{first}");
    // step 1 (one sample) is instant: its evaluation is under way
    std::thread::sleep(std::time::Duration::from_millis(150));
    let t = std::time::Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    std::thread::spawn(move || for _ in lines {});
    let o = child.wait_with_output().unwrap();
    let waited = t.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(waited < 0.5, "the interrupt waited {waited:.2} s");
    let r = bin().args(["train", "--resume"]).arg(&part).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    same_files(&full, &part);
}

#[test]
fn measurements_refused_or_overflowing_leave_no_output_directory() {
    let d = tmpdir("measure-out");
    let big = d.join("big.npz");
    assert!(bin()
        .args(["init", "--n", "8", "--scheme", "modulus:1e200", "--out"])
        .arg(&big)
        .output()
        .unwrap()
        .status
        .success());
    let b = big.to_str().unwrap();
    let overflow = "overflow the network's f64 range";
    for (i, (args, needles)) in [
        (
            vec!["snr", "--params", b, "--device", "cpu"],
            vec![overflow, "population loss is NaN"],
        ),
        (vec!["hessian", "--params", b], vec![overflow, "measure a point"]),
        (vec!["hessian", "--params", b, "--method", "lanczos"], vec![overflow]),
        (vec!["inspect", "--params", b], vec![overflow, "inspect a point"]),
        (
            vec!["rsweep", "--points", "1000000000"],
            vec!["--points 1000000000: from 3 to 100000"],
        ),
        (
            vec!["inspect", "--n", "8", "--escape", "0.1", "--batch", "4294967297"],
            vec!["--batch 4294967297: at most 2^32"],
        ),
        // a device refusal comes after the directory is made: it is removed again
        (
            vec!["snr", "--n", "8", "--adapters", "no-such-adapter"],
            vec!["adapter 'no-such-adapter': no adapter's name contains it"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        // a directory two levels down, so the parents made for it must go too
        let out = d.join(format!("o{i}/deeper"));
        refused(&run(&args, &out), 2, &needles);
        assert!(!d.join(format!("o{i}")).exists(), "{args:?} left {}", out.display());
    }
    // a special file or an unwritable directory as --out: named before anything is measured
    refused(
        &run(&["snr", "--n", "8"], Path::new("/dev/null")),
        2,
        &["/dev/null is a character device", "give a directory"],
    );
    refused(
        &run(&["hessian", "--n", "8"], Path::new("/proc/self")),
        2,
        &["/proc/self", "takes no new file"],
    );
}

#[test]
fn a_measurement_directory_holds_one_runs_files() {
    let d = tmpdir("stale");
    let out = d.join("h");
    // dense, with the matrices, then Lanczos into the same directory: the dense files go
    let r = run(&["hessian", "--n", "8", "--save-matrices"], &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.join("matrices.npz").exists() && out.join("eigenvalues.csv").exists());
    let r = run(&["hessian", "--n", "8", "--method", "lanczos"], &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&out), ["ritz.csv"]);
    assert!(String::from_utf8_lossy(&r.stdout)
        .contains("removed an earlier run's eigenvalues.csv, blocks.csv, spectrum.png, matrices.npz"));
    // inspect with escape runs, then without: no escape.csv of the other point
    let out = d.join("i");
    let r = run(
        &[
            "inspect",
            "--n",
            "8",
            "--init",
            "seed",
            "--escape",
            "0.1",
            "--escape-steps",
            "50",
        ],
        &out,
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.join("escape.csv").exists());
    let r = run(&["inspect", "--n", "8"], &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(names(&out), ["anatomy.png", "bins.csv", "stages.csv", "twiddles.csv"]);
}

#[test]
fn snr_and_inspect_stop_at_ctrl_c_saying_what_they_wrote() {
    let d = tmpdir("measure-int");
    let out = d.join("i");
    let o = out.to_str().unwrap();
    // escape runs that cannot finish on their own: the first Ctrl-C ends them
    let p = start_until(
        &[
            "inspect",
            "--n",
            "512",
            "--escape",
            "0.1",
            "--escape-steps",
            "100000000",
            "--threshold",
            "1e-300",
            "--out",
            o,
        ],
        "escape: Adam",
    );
    let r = crate::util::signal(p, "-INT");
    refused(
        &r,
        130,
        &[
            "inspect interrupted",
            "bins.csv,stages.csv,twiddles.csv,anatomy.png} only",
        ],
    );
    assert!(out.join("bins.csv").exists() && !out.join("escape.csv").exists());
    // snr between minibatches: nothing written, and the directory it made removed
    let out = d.join("s");
    let p = start_until(
        &[
            "snr",
            "--n",
            "256",
            "--device",
            "cpu",
            "--batches",
            "65536",
            "--k",
            "100000",
            "--out",
            out.to_str().unwrap(),
        ],
        "snr: N = 256",
    );
    let r = crate::util::signal(p, "-INT");
    refused(&r, 130, &["snr interrupted at batch size 65536", "nothing written"]);
    assert!(!out.exists());
}
