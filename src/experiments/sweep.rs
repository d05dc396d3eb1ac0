//! The learnability map: every cell of a grid ([`super::grid`]) trained (in packs,
//! [`super::packs`]) against a threshold on the relative operator error, recording success,
//! steps to success, wall time and final error; resumable cell by cell; the CSV, and the
//! summary over seeds with its heat maps ([`super::summary`]).

use super::cell::{before_beta2, row_problem, HEADER, RUNNING};
pub use super::grid::{Cell, SaveParams, SweepConfig, KEYS, MAX_CELLS};
use crate::error::{Error, Result};
use crate::io::lock::DirLock;
use crate::io::npy;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the command line overrides in a sweep config, and how the cells run.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--out`.
    pub out: Option<PathBuf>,
    /// `--save-params`.
    pub save_params: Option<SaveParams>,
    /// `--pack`: cells in packs (default) or one by one; no effect on any result.
    pub pack: super::packs::PackMode,
}

/// The config at `path` (with the command line's overrides), and its text.
pub(crate) fn load(path: &Path, ov: &Overrides) -> Result<(SweepConfig, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::input(format!("cannot read sweep config {}: {e}", path.display())))?;
    let mut c = SweepConfig::parse(&text, &path.display().to_string())?;
    if let Some(o) = &ov.out {
        c.out = o.clone();
    }
    if let Some(sp) = ov.save_params {
        c.save_params = sp;
    }
    Ok((c, text))
}

/// Run (or resume) the sweep of the config file at `path`, writing `OUT/sweep.csv`, the
/// config copy `OUT/sweep.toml`, and the heat maps. Prints one line per cell.
pub fn run(path: &Path, ov: &Overrides, log: &mut dyn Write) -> Result<()> {
    let (c, text) = load(path, ov)?;
    // one sweep per directory at a time (running shards share this lock, so it is refused
    // while any runs)
    let lock = DirLock::acquire(&c.out, "--out")?;
    super::summary::check_outputs(&c.out)?;
    lock.remove_stale_temporaries();
    let shards = c.out.join("shards");
    if let Some(f) = std::fs::read_dir(&shards).into_iter().flatten().flatten().find(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        name.ends_with(".csv") || name.ends_with(".running")
    }) {
        return Err(Error::input(format!(
            "{} holds a sharded sweep ({}): continue its shards with --shard I/N and `fftlearn sweep merge`, or use another --out",
            c.out.display(),
            f.path().display()
        )));
    }
    let cells = c.cells();
    let copy = c.out.join("sweep.toml");
    let csv_path = c.out.join("sweep.csv");
    let mut rows: Vec<String> = Vec::new();
    if csv_path.exists() {
        let old = std::fs::read_to_string(&copy).unwrap_or_default();
        let differs = match SweepConfig::parse(&old, &copy.display().to_string()) {
            Ok(o) => c.first_difference(&o).map(|k| format!("key '{k}' differs")),
            Err(e) => Some(format!("its copy does not parse: {e}")),
        };
        if let Some(why) = differs {
            return Err(Error::input(format!(
                "{} holds a sweep of another config ({}: {why}); use another --out or remove it",
                c.out.display(),
                copy.display()
            )));
        }
        let existing = std::fs::read_to_string(&csv_path)
            .map_err(|e| Error::input(format!("cannot read {}: {e}", csv_path.display())))?;
        let mut lines = existing.lines();
        let head = lines.next().unwrap_or("");
        if head != HEADER {
            return Err(Error::input(format!(
                "{}: not a sweep CSV of this version (header differs{}); use another --out",
                csv_path.display(),
                if before_beta2(head, HEADER) {
                    ": written before the beta2 column, it cannot be continued"
                } else {
                    ""
                }
            )));
        }
        for (i, l) in lines.enumerate() {
            let why = match cells.get(i) {
                Some(cell) => row_problem(cell, l),
                None => Some("is past the config's last cell".to_string()),
            };
            if let Some(why) = why {
                return Err(Error::input(format!(
                    "{} line {} (cell {i}) {why}; fix or remove that line, or use another --out",
                    csv_path.display(),
                    i + 2
                )));
            }
            rows.push(l.to_string());
        }
        writeln!(log, "[sweep] resuming: {} of {} cells done", rows.len(), cells.len())?;
    } else {
        npy::write_text(&copy, &text)?;
    }
    let order: Vec<usize> = (0..cells.len()).collect();
    let mut write = |rows: &[String]| {
        let mut csv = String::from(HEADER);
        csv.push('\n');
        for r in rows {
            csv.push_str(r);
            csv.push('\n');
        }
        npy::write_text(&csv_path, &csv)
    };
    let running = c.out.join(RUNNING);
    match super::packs::run(&c, &cells, &order, &mut rows, &running, ov.pack, log, &mut write) {
        Ok(()) => {}
        Err(e) if e.kind() == crate::error::Kind::Interrupted => {
            return Err(Error::interrupted(format!(
                "sweep interrupted: {} of {} cells in {}, the running ones checkpointed in {}; rerun the same command to resume",
                rows.len(),
                cells.len(),
                csv_path.display(),
                running.display()
            )))
        }
        Err(e) => return Err(e),
    }
    super::summary::write(&c, &cells, &rows)?;
    writeln!(
        log,
        "[sweep] {} cells; wrote {}, {}, {} and {}",
        cells.len(),
        csv_path.display(),
        c.out.join("summary.csv").display(),
        c.out.join("success_rate.png").display(),
        c.out.join("median_steps.png").display()
    )?;
    Ok(())
}
