//! `fftlearn sweep`: a stopped sweep resumes to the same CSV as an uninterrupted one (every
//! column but wall_s, which is a clock reading), and bad configs are refused naming the key.

use crate::util::{bin, tmpdir};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const GRID: &str = "# resume test grid
n = [8, 16, 32]
batch = [8, 32]
lr = [1e-2]
optimizer = [\"adam\", \"als\", \"sgd\"]
init = [\"seed\", \"random\"]
seeds = 2
steps = 400
threshold = 1e-6
";

/// The CSV without its last column (wall_s).
fn without_wall(csv: &str) -> String {
    csv.lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `fftlearn sweep --config CFG --out OUT`.
pub(crate) fn sweep(cfg: &Path, out: &Path) -> Output {
    bin()
        .args(["sweep", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn a_stopped_sweep_resumes_to_the_same_csv() {
    let d = tmpdir("resume");
    let cfg = d.join("grid.toml");
    std::fs::write(&cfg, GRID).unwrap();
    let full = d.join("full");
    let o = sweep(&cfg, &full);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = std::fs::read_to_string(full.join("sweep.csv")).unwrap();
    assert_eq!(reference.lines().count(), 1 + 3 * 2 * 3 * 2 * 2);
    assert!(reference.contains(",success,"), "{reference}");
    for png in ["success_rate.png", "median_steps.png"] {
        assert!(full.join(png).metadata().unwrap().len() > 1000);
    }

    // 1. stopped by Ctrl-C after the third cell
    let part = d.join("sigint");
    let mut child = bin()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&part)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for l in lines.by_ref() {
        if l.unwrap().contains("cell 3/") {
            break;
        }
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    for l in lines {
        l.unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let stopped_early = o.status.code() == Some(130);
    assert!(
        stopped_early || o.status.success(),
        "{:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    if stopped_early {
        assert!(String::from_utf8_lossy(&o.stderr).contains("rerun the same command to resume"));
        // (no CSV yet when no cell had finished with every cell before it)
        let partial = std::fs::read_to_string(part.join("sweep.csv")).unwrap_or_default();
        assert!(partial.lines().count() < reference.lines().count());
    }
    let o = sweep(&cfg, &part);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let resumed = std::fs::read_to_string(part.join("sweep.csv")).unwrap();
    assert_eq!(without_wall(&resumed), without_wall(&reference));

    // 2. a CSV cut after any number of cells (as a kill -9 between cells leaves it)
    for keep in [0usize, 1, 17, 71] {
        let cut = d.join(format!("cut{keep}"));
        std::fs::create_dir_all(&cut).unwrap();
        std::fs::copy(full.join("sweep.toml"), cut.join("sweep.toml")).unwrap();
        let head: Vec<&str> = reference.lines().take(1 + keep).collect();
        std::fs::write(cut.join("sweep.csv"), head.join("\n") + "\n").unwrap();
        let o = sweep(&cfg, &cut);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("resuming: {keep} of 72 cells done")));
        let resumed = std::fs::read_to_string(cut.join("sweep.csv")).unwrap();
        assert_eq!(without_wall(&resumed), without_wall(&reference), "cut after {keep}");
    }

    // 3. another config into the same directory is refused
    std::fs::write(&cfg, GRID.replace("steps = 400", "steps = 401")).unwrap();
    let o = sweep(&cfg, &full);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another config"));
}

#[test]
fn bad_configs_name_the_key() {
    let d = tmpdir("bad");
    for (doc, code, needles) in [
        (
            "n = [8]\nsteps = 10\nbatchsize = [4]\n",
            2,
            vec!["unknown key 'batchsize'", "known: n, batch"],
        ),
        ("n = []\nsteps = 10\n", 2, vec!["key 'n'", "empty list"]),
        (
            "n = [8]\nsteps = 10\noptimizer = []\n",
            2,
            vec!["key 'optimizer'", "empty list"],
        ),
        (
            "n = [8, 131072]\nsteps = 10\n",
            2,
            vec!["key 'n'", "131072", "out of range"],
        ),
        (
            "n = [8, 12]\nsteps = 10\n",
            2,
            vec!["key 'n'", "N = 12", "power of two"],
        ),
        ("n = [8]\n", 2, vec!["'steps' or 'budget'"]),
        (
            "n = [8]\nsteps = 10\noptimizer = [\"newton\"]\n",
            2,
            vec!["optimizer 'newton'", "accepted: adam"],
        ),
        (
            "n = [8]\nsteps = 10\ninit = [\"zeros\"]\n",
            2,
            vec!["key 'init'", "zeros"],
        ),
        (
            "n = [8]\nsteps = 10\nprecision = [\"f16\"]\n",
            2,
            vec!["key 'precision'", "f16"],
        ),
        ("n = [8]\nsteps = [10, 20]\n", 2, vec!["key 'steps'", "one value"]),
        (
            "n = [8]\nsteps = 10\nlr = [\"fast\"]\n",
            2,
            vec!["key 'lr'", "expected numbers"],
        ),
        // any valid TOML is read; a table is an unknown key, named with its line
        (
            "n = [8]\nsteps = 10\n[grid]\n",
            2,
            vec!["grid.toml:3", "unknown key 'grid'"],
        ),
        (
            "n = [8]\nsteps = 10\nthreshold = 2\n",
            2,
            vec!["key 'threshold'", "(0, 1)"],
        ),
        (
            "n = [8]\nsteps = 10\noptimizer = [\"sgd\"]\nbeta2 = [0.99]\n",
            2,
            vec!["cell 0", "--beta2 0.99", "adam and phase only"],
        ),
    ] {
        let cfg = d.join("grid.toml");
        std::fs::write(&cfg, doc).unwrap();
        let o = sweep(&cfg, &d.join("out"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{doc:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{doc:?}: {err}");
        for n in needles {
            assert!(lines[0].contains(n), "{doc:?}: '{n}' not in {err}");
        }
    }
    let o = sweep(&d.join("missing.toml"), &d.join("out"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.toml"));
}

/// Columns of a CSV by name: `(header, rows)`.
fn table(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines.map(|l| l.split(',').map(String::from).collect()).collect();
    (head, rows)
}

#[test]
fn the_summary_gives_each_seed_group_its_wilson_interval_and_quartiles() {
    let d = tmpdir("summary");
    let cfg = d.join("grid.toml");
    // two groups where some seeds succeed and some do not within the budget
    std::fs::write(
        &cfg,
        "n = [8, 32]\ninit = [\"random\"]\nbeta2 = [0.999, 0.99]\nseeds = 6\nsteps = 1300\neval_every = 100\n",
    )
    .unwrap();
    let out = d.join("out");
    let o = sweep(&cfg, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (h, rows) = table(&out.join("sweep.csv"));
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (sh, summary) = table(&out.join("summary.csv"));
    let scol = |name: &str| sh.iter().position(|c| c == name).unwrap();
    assert_eq!(summary.len(), 4, "2 N x 2 beta2");
    let mut mixed = 0;
    for s in &summary {
        let mine: Vec<&Vec<String>> = rows
            .iter()
            .filter(|r| r[col("n")] == s[scol("n")] && r[col("beta2")] == s[scol("beta2")])
            .collect();
        assert_eq!(mine.len(), 6);
        assert_eq!(s[scol("seeds")], "6");
        let ok: Vec<f64> = mine
            .iter()
            .filter(|r| r[col("status")] == "success")
            .map(|r| r[col("steps_to_success")].parse().unwrap())
            .collect();
        let k = ok.len() as f64;
        assert_eq!(s[scol("successes")], ok.len().to_string());
        // Wilson's bounds as the roots of (p - k/n)^2 = z^2 p (1 - p) / n
        let (n, z) = (6.0, 1.959964f64);
        let root = |sign: f64| (k + z * z / 2.0 + sign * z * (k * (n - k) / n + z * z / 4.0).sqrt()) / (n + z * z);
        let lo: f64 = s[scol("wilson95_lo")].parse().unwrap();
        let hi: f64 = s[scol("wilson95_hi")].parse().unwrap();
        assert!((lo - root(-1.0).max(0.0)).abs() < 1e-4, "{s:?}");
        assert!((hi - root(1.0).min(1.0)).abs() < 1e-4, "{s:?}");
        if ok.is_empty() {
            assert_eq!(s[scol("steps_to_success_median")], "");
            continue;
        }
        if ok.len() < 6 {
            mixed += 1;
        }
        let mut sorted = ok.clone();
        sorted.sort_by(f64::total_cmp);
        let m = sorted.len();
        let median = if m % 2 == 1 {
            sorted[m / 2]
        } else {
            (sorted[m / 2 - 1] + sorted[m / 2]) / 2.0
        };
        let got: f64 = s[scol("steps_to_success_median")].parse().unwrap();
        assert_eq!(got, median, "{s:?}");
        let q1: f64 = s[scol("steps_to_success_q1")].parse().unwrap();
        let q3: f64 = s[scol("steps_to_success_q3")].parse().unwrap();
        assert!(
            sorted[0] <= q1 && q1 <= median && median <= q3 && q3 <= sorted[m - 1],
            "{s:?}"
        );
    }
    // the grid is chosen so that an interval strictly inside (0, 1) is checked
    assert!(mixed >= 1, "no group with successes and failures");
}

#[test]
fn a_special_file_where_the_summary_goes_is_refused_before_any_cell() {
    let d = tmpdir("special");
    let cfg = d.join("grid.toml");
    std::fs::write(&cfg, "n = [8]\nsteps = 10\nseeds = 2\n").unwrap();
    let out = d.join("out");
    std::fs::create_dir_all(out.join("summary.csv")).unwrap();
    let o = sweep(&cfg, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("summary.csv is a directory"), "{err}");
    assert!(!out.join("sweep.csv").exists(), "refused before the first cell");
}

#[test]
fn a_csv_from_before_the_beta2_column_is_named_as_such() {
    let d = tmpdir("oldheader");
    let cfg = d.join("grid.toml");
    std::fs::write(&cfg, "n = [8]\nsteps = 10\nseeds = 2\n").unwrap();
    let out = d.join("out");
    assert!(sweep(&cfg, &out).status.success());
    let csv = out.join("sweep.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, text.replacen("momentum,beta2,", "momentum,", 1)).unwrap();
    let o = sweep(&cfg, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("written before the beta2 column"), "{err}");
    // -0 is 0: a config saying beta2 = [-0.0] continues the rows of beta2 = [0.0]
    let zero = d.join("zero.toml");
    std::fs::write(&zero, "n = [8]\nsteps = 10\nbeta2 = [0.0]\n").unwrap();
    let zout = d.join("zout");
    assert!(sweep(&zero, &zout).status.success());
    std::fs::write(&zero, "n = [8]\nsteps = 10\nbeta2 = [-0.0]\n").unwrap();
    let o = sweep(&zero, &zout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 of 1 cells done"));
    // any other header: refused without that claim
    std::fs::write(&csv, "n,batch\n").unwrap();
    let err = String::from_utf8_lossy(&sweep(&cfg, &out).stderr).to_string();
    assert!(err.contains("header differs") && !err.contains("beta2"), "{err}");
}
