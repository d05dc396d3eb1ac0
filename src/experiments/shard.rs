//! A sweep cut into shards for a cluster's own scheduler (a Slurm array job, a Kubernetes
//! Indexed Job): which cells shard I of N runs (balanced by estimated cost, deterministic),
//! where it finds I and N (a flag, or the scheduler's environment), its resumable CSV
//! `OUT/shards/I-of-N.csv` (each row carries its grid index and the config's hash), and the
//! merge that checks every shard ran the same config and writes `sweep.csv` and the heat maps
//! exactly as an unsharded run does.

use super::cell::{self, HEADER};
use super::grid::{Cell, SweepConfig, MAX_CELLS};
use super::sweep;
use crate::error::{Error, Result};
use crate::io::lock::DirLock;
use crate::io::npy;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Shard `index` of `count` (index from 0, as Slurm array indices and Kubernetes completion
/// indices are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0..count.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

/// The most shards a sweep is cut into (a shard per cell of the largest grid).
pub const MAX_SHARDS: usize = MAX_CELLS;

/// A shard count from `what` (a flag or an environment variable), within 1..=[`MAX_SHARDS`].
pub fn check_count(count: usize, what: &str) -> Result<usize> {
    if count == 0 || count > MAX_SHARDS {
        return Err(Error::input(format!(
            "{what}: the shard count {count} must be 1..={MAX_SHARDS} (a sweep has at most {MAX_SHARDS} cells)"
        )));
    }
    Ok(count)
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::input(format!("--shard '{s}': expected I/N with 0 <= I < N (e.g. 0/4)"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        check_count(count, &format!("--shard {s}"))?;
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard the scheduler's environment names, and in words where it came from:
/// Slurm's `SLURM_ARRAY_TASK_ID` (less `SLURM_ARRAY_TASK_MIN`) of `SLURM_ARRAY_TASK_COUNT`,
/// or Kubernetes' `JOB_COMPLETION_INDEX` of `count` (the `--shards` flag; the Job's
/// `completions`). `None` when neither is set.
pub fn from_env(env: &dyn Fn(&str) -> Option<String>, count: Option<usize>) -> Result<Option<(Shard, String)>> {
    let num = |k: &str| -> Result<Option<usize>> {
        match env(k) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::input(format!("environment {k}={v}: not a whole number"))),
        }
    };
    if let Some(c) = count {
        check_count(c, "--shards")?;
    }
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let total = num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            Error::input("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: give --shard I/N")
        })?;
        check_count(total, "environment SLURM_ARRAY_TASK_COUNT")?;
        if let Some(c) = count.filter(|&c| c != total) {
            return Err(Error::input(format!(
                "--shards {c} disagrees with SLURM_ARRAY_TASK_COUNT={total} (a Slurm array task takes its count from Slurm; drop --shards)"
            )));
        }
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let index = id.checked_sub(min).filter(|&i| i < total).ok_or_else(|| {
            Error::input(format!(
                "SLURM_ARRAY_TASK_ID={id} is outside the array (min {min}, count {total}): submit --array=0-{}",
                total.saturating_sub(1)
            ))
        })?;
        let shard = Shard { index, count: total };
        return Ok(Some((
            shard,
            format!("SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_COUNT={total}"),
        )));
    }
    if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let count = count.ok_or_else(|| {
            Error::input(
                "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): give --shards N, the Job's completions",
            )
        })?;
        if index >= count {
            return Err(Error::input(format!(
                "JOB_COMPLETION_INDEX={index} is not below --shards {count}"
            )));
        }
        return Ok(Some((
            Shard { index, count },
            format!("JOB_COMPLETION_INDEX={index}, --shards {count}"),
        )));
    }
    Ok(None)
}

/// A cell's estimated cost: samples it may consume times N log2 N (the work of one sample).
pub fn cost(cell: &Cell) -> f64 {
    let n = cell.n as f64;
    cell.steps as f64 * cell::samples_per_step(cell) as f64 * n * n.log2()
}

/// The shard of every cell: the costliest first, each to the shard with the least cost so far
/// (ties: the lower cell index first, then the lower shard). A function of the grid and the
/// count only.
pub fn assign(cells: &[Cell], count: usize) -> Vec<usize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    /// A shard's load, ordered by `total_cmp`, then by the shard's index.
    #[derive(PartialEq)]
    struct Load(f64, usize);
    impl Eq for Load {}
    impl PartialOrd for Load {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Load {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
        }
    }
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| cost(&cells[b]).total_cmp(&cost(&cells[a])).then(a.cmp(&b)));
    // only the shards a cell can reach matter: beyond one per cell, shards stay empty
    let used = count.max(1).min(cells.len().max(1));
    let mut heap: BinaryHeap<Reverse<Load>> = (0..used).map(|s| Reverse(Load(0.0, s))).collect();
    let mut of = vec![0; cells.len()];
    for i in order {
        let Reverse(Load(load, s)) = heap.pop().expect("at least one shard");
        of[i] = s;
        heap.push(Reverse(Load(load + cost(&cells[i]), s)));
    }
    of
}

/// The grid indices of shard `s`'s cells, in the order it runs them.
pub fn shard_cells(cells: &[Cell], s: Shard) -> Vec<usize> {
    of_shard(&assign(cells, s.count), s.index)
}

/// The cells `of` (an [`assign`]ment) gives shard `index`, in grid order.
fn of_shard(of: &[usize], index: usize) -> Vec<usize> {
    of.iter()
        .enumerate()
        .filter(|&(_, &sh)| sh == index)
        .map(|(i, _)| i)
        .collect()
}

/// The config's fingerprint (SHA-256 of its canonical form, the output directory left out):
/// equal for every shard of one grid, different as soon as any key differs.
pub fn config_hash(c: &SweepConfig) -> String {
    let mut c = c.clone();
    c.out = PathBuf::new();
    c.save_params = Default::default();
    let digest = Sha256::digest(format!("{c:?}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The header of a shard's CSV: the grid index, the sweep's columns, the config hash.
pub fn shard_header() -> String {
    format!("cell,{HEADER},config")
}

fn shard_path(out: &Path, s: Shard) -> PathBuf {
    out.join("shards").join(format!("{}-of-{}.csv", s.index, s.count))
}

/// Run (or resume) shard `s` of the config at `path`: its cells in grid order, each row
/// written to `OUT/shards/I-of-N.csv` atomically as it finishes. Concurrent shards share
/// `OUT`; each holds the lock of its own file.
pub fn run(path: &Path, ov: &sweep::Overrides, s: Shard, log: &mut dyn Write) -> Result<()> {
    let (c, text) = sweep::load(path, ov)?;
    let dir = c.out.join("shards");
    // every shard of one sweep shares the directory's lock (a whole sweep or a merge into it
    // is refused while any runs), holds its own file's, and shares its shard count's
    let _dir_lock = DirLock::acquire_shared(&c.out, crate::io::lock::FILE, "--out")?;
    let _lock = DirLock::acquire_named(&dir, &format!(".{}-of-{}.lock", s.index, s.count), "--out")?;
    let _count_lock = DirLock::acquire_shared(&dir, &format!(".of-{}.lock", s.count), "--out")?;
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let other = |suffix: &str| {
            name.rsplit_once("-of-")
                .and_then(|(_, n)| n.strip_suffix(suffix))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n != s.count)
        };
        // another sharding of this directory: finished or running
        let running = name
            .strip_prefix(".of-")
            .and_then(|n| n.strip_suffix(".lock"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n != s.count && DirLock::is_held(&e.path()));
        if let Some(n) = other(".csv").or(other(".running")).or(running) {
            return Err(Error::input(format!(
                "{} holds a sweep cut into {n} shards ({}); run --shard I/{n} there, or use another --out",
                c.out.display(),
                e.path().display()
            )));
        }
    }
    // every shard writes the same copy; merge reads it
    let copy = c.out.join("sweep.toml");
    match std::fs::read_to_string(&copy) {
        Ok(old) => {
            let o = SweepConfig::parse(&old, &copy.display().to_string())?;
            if let Some(k) = c.first_difference(&o) {
                return Err(Error::input(format!(
                    "{} holds a sweep of another config ({}: key '{k}' differs); use another --out",
                    c.out.display(),
                    copy.display()
                )));
            }
        }
        Err(_) => npy::write_text(&copy, &text)?,
    }
    let cells = c.cells();
    let hash = config_hash(&c);
    let mine = shard_cells(&cells, s);
    let csv_path = shard_path(&c.out, s);
    let mut rows: Vec<String> = Vec::new();
    if let Ok(existing) = std::fs::read_to_string(&csv_path) {
        rows = parse_shard(&csv_path, &existing, &hash, &cells, s, &mine)?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        writeln!(
            log,
            "[sweep] shard {s}: resuming, {} of {} cells done",
            rows.len(),
            mine.len()
        )?;
    }
    writeln!(
        log,
        "[sweep] shard {s}: {} of {} cells, estimated cost {:.3e} of {:.3e}",
        mine.len(),
        cells.len(),
        // (+ 0.0: an empty sum is -0)
        mine.iter().map(|&i| cost(&cells[i])).sum::<f64>() + 0.0,
        cells.iter().map(cost).sum::<f64>()
    )?;
    let mut write = |rows: &[String]| {
        let mut csv = shard_header();
        csv.push('\n');
        for (r, i) in rows.iter().zip(&mine) {
            csv.push_str(&format!("{i},{r},{hash}\n"));
        }
        npy::write_text(&csv_path, &csv)
    };
    let running = dir.join(format!("{}-of-{}.running", s.index, s.count));
    match super::packs::run(&c, &cells, &mine, &mut rows, &running, ov.pack, log, &mut write) {
        Ok(()) => {}
        Err(e) if e.kind() == crate::error::Kind::Interrupted => {
            return Err(Error::interrupted(format!(
                "sweep shard {s} interrupted: {} of its {} cells in {}, the running ones checkpointed in {}; rerun the same command to resume",
                rows.len(),
                mine.len(),
                csv_path.display(),
                running.display()
            )))
        }
        Err(e) => return Err(e),
    }
    // a shard can own no cells (more shards than cells); its file, header only, still marks
    // this directory's shard count and tells merge the shard ran
    if !csv_path.exists() {
        write(&rows)?;
    }
    writeln!(log, "[sweep] shard {s}: done; wrote {}", csv_path.display())?;
    Ok(())
}

/// The rows of a shard file: (grid index, the sweep row), each checked against the config.
/// The rows of shard `s`'s file, each checked as a resume checks it: this config's hash, the
/// shard's own cells in its order (from [`assign`]), and a complete row of that cell.
fn parse_shard(
    path: &Path,
    text: &str,
    hash: &str,
    cells: &[Cell],
    s: Shard,
    mine: &[usize],
) -> Result<Vec<(usize, String)>> {
    let rows = parse_rows(path, text, hash, cells)?;
    for (k, (idx, _)) in rows.iter().enumerate() {
        if mine.get(k) != Some(idx) {
            return Err(Error::input(format!(
                "{} line {}: cell {idx} is not shard {s}'s cell number {} (its rows are its own cells, in order); remove that line, or use another --out",
                path.display(),
                k + 2,
                k + 1
            )));
        }
    }
    Ok(rows)
}

fn parse_rows(path: &Path, text: &str, hash: &str, cells: &[Cell]) -> Result<Vec<(usize, String)>> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    if head != shard_header() {
        return Err(Error::input(format!(
            "{}: not a sweep shard CSV of this version (header differs{})",
            path.display(),
            if cell::before_beta2(head, &shard_header()) {
                ": written before the beta2 column, it cannot be merged; run the shard again into another --out"
            } else {
                ""
            }
        )));
    }
    let mut out = Vec::new();
    for (k, l) in lines.enumerate() {
        let bad = |why: &str| Error::input(format!("{} line {}: {why}", path.display(), k + 2));
        let want = HEADER.split(',').count() + 2;
        let got = l.split(',').count();
        let (idx, rest) = l.split_once(',').ok_or_else(|| bad("not a shard row"))?;
        let (row, h) = rest.rsplit_once(',').ok_or_else(|| bad("not a shard row"))?;
        if got != want || (h != hash && !h.is_empty() && hash.starts_with(h)) {
            return Err(bad(&format!(
                "is not a complete row ({got} of {want} columns{}); the rows before it are intact: remove that line to resume",
                if got == want { ", its config hash cut short" } else { "" }
            )));
        }
        if h != hash {
            return Err(Error::input(format!(
                "{}: ran another config (hash {h}, this config's is {hash}); remove it or use another --out",
                path.display()
            )));
        }
        let idx: usize = idx.parse().map_err(|_| bad("bad cell index"))?;
        let cell = cells.get(idx).ok_or_else(|| bad("cell index outside the grid"))?;
        if let Some(why) = cell::row_problem(cell, row) {
            return Err(bad(&format!("cell {idx} {why}; fix or remove that line")));
        }
        out.push((idx, row.to_string()));
    }
    Ok(out)
}

/// Merge the shards in `out`: every shard file must come from this config (its hash) and one
/// shard count; writes `sweep.csv` (grid order, as an unsharded run writes it) and the heat
/// maps. Missing cells are an error naming them by their grid coordinates, unless `partial`
/// (then the CSV and maps hold what is there and the gaps are listed).
pub fn merge(out: &Path, partial: bool, log: &mut dyn Write) -> Result<()> {
    let copy = out.join("sweep.toml");
    let text = std::fs::read_to_string(&copy).map_err(|e| {
        Error::input(format!(
            "cannot read {}: {e} (is {} a sweep's output directory?)",
            copy.display(),
            out.display()
        ))
    })?;
    let mut c = SweepConfig::parse(&text, &copy.display().to_string())?;
    c.out = out.to_path_buf();
    let _lock = DirLock::acquire(out, "merge")?;
    super::summary::check_outputs(out)?;
    let cells = c.cells();
    let hash = config_hash(&c);
    let dir = out.join("shards");
    let mut files: Vec<(Shard, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(&dir)
        .map_err(|e| Error::input(format!("cannot read {}: {e} (no shards ran here)", dir.display())))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".csv") {
            let s: Shard = stem
                .replacen("-of-", "/", 1)
                .parse()
                .map_err(|_| Error::input(format!("{}: not a shard file name (I-of-N.csv)", e.path().display())))?;
            files.push((s, e.path()));
        }
    }
    files.sort_by_key(|(s, _)| (s.count, s.index));
    let counts: std::collections::BTreeSet<usize> = files.iter().map(|(s, _)| s.count).collect();
    if counts.len() > 1 {
        return Err(Error::input(format!(
            "{} holds shards of different counts ({:?}); keep one sharding",
            dir.display(),
            counts
        )));
    }
    let mut got: BTreeMap<usize, String> = BTreeMap::new();
    let of = counts.first().map(|&n| assign(&cells, n)).unwrap_or_default();
    for (s, f) in &files {
        let t = std::fs::read_to_string(f).map_err(|e| Error::input(format!("cannot read {}: {e}", f.display())))?;
        for (i, r) in parse_shard(f, &t, &hash, &cells, *s, &of_shard(&of, s.index))? {
            got.insert(i, r);
        }
    }
    let missing: Vec<usize> = (0..cells.len()).filter(|i| !got.contains_key(i)).collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .take(5)
            .map(|&i| format!("cell {i} ({})", cells[i].label()))
            .collect();
        let more = if missing.len() > 5 {
            format!(" and {} more", missing.len() - 5)
        } else {
            String::new()
        };
        let what = format!(
            "{} of {} cells missing: {}{more}",
            missing.len(),
            cells.len(),
            names.join("; ")
        );
        if !partial {
            return Err(Error::input(format!(
                "{what}; rerun their shards (or merge with --partial to draw what is there)"
            )));
        }
        writeln!(log, "[merge] --partial: {what}")?;
    }
    let (present, rows): (Vec<Cell>, Vec<String>) = got.iter().map(|(&i, r)| (cells[i].clone(), r.clone())).unzip();
    let mut csv = format!("{HEADER}\n");
    for r in &rows {
        csv.push_str(r);
        csv.push('\n');
    }
    let csv_path = out.join("sweep.csv");
    npy::write_text(&csv_path, &csv)?;
    super::summary::write(&c, &present, &rows)?;
    writeln!(
        log,
        "[merge] {} shard files, {} of {} cells; wrote {}, {}, {} and {}",
        files.len(),
        rows.len(),
        cells.len(),
        csv_path.display(),
        out.join("summary.csv").display(),
        out.join("success_rate.png").display(),
        out.join("median_steps.png").display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn shards_parse_and_come_from_the_scheduler() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        for bad in ["4/4", "1/0", "x/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let s = from_env(
            &env(&[
                ("SLURM_ARRAY_TASK_ID", "5"),
                ("SLURM_ARRAY_TASK_MIN", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.0, Shard { index: 1, count: 3 });
        assert!(s.1.contains("SLURM_ARRAY_TASK_ID=5"));
        let k = from_env(&env(&[("JOB_COMPLETION_INDEX", "2")]), Some(4))
            .unwrap()
            .unwrap();
        assert_eq!(k.0, Shard { index: 2, count: 4 });
        assert!(from_env(&env(&[("JOB_COMPLETION_INDEX", "2")]), None).is_err());
        assert!(from_env(&env(&[("SLURM_ARRAY_TASK_ID", "2")]), None).is_err());
        assert!(from_env(&env(&[]), None).unwrap().is_none());
    }

    #[test]
    fn assignment_balances_estimated_cost_and_covers_every_cell_once() {
        let c = SweepConfig::parse(
            "n = [8, 64, 512, 4096]\nbatch = [16, 256]\nseeds = 5\nsteps = 100\n",
            "t",
        )
        .unwrap();
        let cells = c.cells();
        for count in [1, 2, 3, 7] {
            let of = assign(&cells, count);
            assert_eq!(of.len(), cells.len());
            let mut load = vec![0.0; count];
            for (i, &s) in of.iter().enumerate() {
                load[s] += cost(&cells[i]);
            }
            let max_cell = cells.iter().map(cost).fold(0.0, f64::max);
            let (lo, hi) = (
                load.iter().copied().fold(f64::MAX, f64::min),
                load.iter().copied().fold(0.0, f64::max),
            );
            // greedy largest-first: the spread is at most the largest cell
            assert!(hi - lo <= max_cell, "{count} shards: loads {load:?}");
            assert_eq!(of, assign(&cells, count), "deterministic");
        }
        // the same assignment as the plain greedy scan (every shard's load compared for each
        // cell, ties to the lower shard): existing shard directories resume unchanged
        let scan = |count: usize| {
            let mut order: Vec<usize> = (0..cells.len()).collect();
            order.sort_by(|&a, &b| cost(&cells[b]).total_cmp(&cost(&cells[a])).then(a.cmp(&b)));
            let mut load = vec![0.0f64; count];
            let mut of = vec![0; cells.len()];
            for i in order {
                let s = (0..count)
                    .min_by(|&x, &y| load[x].total_cmp(&load[y]).then(x.cmp(&y)))
                    .unwrap();
                load[s] += cost(&cells[i]);
                of[i] = s;
            }
            of
        };
        for count in [1, 2, 3, 7, 39, 40, 41, 1000] {
            assert_eq!(assign(&cells, count), scan(count), "{count} shards");
        }
        assert_ne!(
            config_hash(&c),
            config_hash(&SweepConfig::parse("n = [8]\nsteps = 100\n", "t").unwrap())
        );
    }
}
