//! How a sweep runs its cells: grouped into packs (cells as a dimension of the training step,
//! src/train/pack.rs), or one by one with `--pack off`, and the on-disk state that makes
//! either resumable. One loop serves whole sweeps and shards.
//!
//! Grouping: a pack holds cells that share what one step must share. On the CPU f64 path: one
//! N (each cell keeps its own optimizer, batch, data, lr, schedule, init and seed), as many
//! as half the available memory holds. On the GPU (f32): one N, batch, data mode and
//! optimizer (lr, schedule, init and seed per cell), as many as the adapter's limits allow
//! ([`PackNeeds`]); Adam on minibatches runs on the device, other gradient optimizers and
//! population data take every cell's gradient in one step and update on the host. A GPU cell
//! whose N does not fit the fused kernel runs alone, and the plan says so.
//!
//! State for a resume, in the running directory (`OUT/running`, or `OUT/shards/I-of-N.running`
//! for a shard): `CELL.npz`, the checkpoint of a cell a stop signal interrupted (every running
//! cell of the pack writes one), and `CELL.row`, the row of a cell that finished before the
//! cells ahead of it in the CSV's order. The CSV holds rows in grid order only; a row moves
//! from its `.row` file into the CSV as soon as every cell before it is done.

use super::cell::{self, CellJob, Outcome};
use super::grid::{precision_name, Cell, SweepConfig};
use crate::backend::gpu::{self, Gpu, GpuModel, ModelOptions, PackNeeds, Precision};
use crate::error::{Error, Kind, Result};
use crate::io::npy;
use crate::optim::Optimizer;
use crate::train::pack::{drive_pack, CellRun, CpuPack, GpuAdamPack, GpuHostPack, PackBackend};
use crate::train::{BackendKind, DataMode, TrainConfig};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--pack`: cells in packs (the default), or one by one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PackMode {
    /// Packs.
    #[default]
    On,
    /// One cell at a time (for comparison).
    Off,
}

impl std::str::FromStr for PackMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "on" => Ok(PackMode::On),
            "off" => Ok(PackMode::Off),
            _ => Err(Error::input(format!("--pack '{s}': accepted: on, off"))),
        }
    }
}

/// How a group of cells steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// Every cell on the CPU f64 path, one task each per step.
    Cpu,
    /// Adam on minibatches on the device.
    GpuAdam,
    /// The gradient on the device, the update on the host.
    GpuHost,
    /// One cell alone (`--pack off`, or a GPU cell the fused kernel cannot hold).
    Alone,
}

/// A unit of work: cells (positions in the run's order) that step together, or one alone.
struct Unit {
    kind: How,
    cells: Vec<usize>,
    /// What the plan says about it (a pack's size bound, or why a cell runs alone).
    note: String,
}

/// CPU bytes one cell of a CPU pack holds beyond the per-thread scratch: parameters and
/// optimizer state, and the population problem (identity inputs and exact targets) when its
/// optimizer or data needs it.
fn cpu_cell_bytes(cell: &Cell) -> u64 {
    let n = cell.n as u64;
    let np = n + 3;
    let state = 16 * np * 4;
    let needs_population =
        cell.data == DataMode::Population || matches!(cell.optimizer, Optimizer::Dgn | Optimizer::Lm | Optimizer::Als);
    let pop = if needs_population {
        8 * n * n + 16 * n * (n / 2 + 1)
    } else {
        0
    };
    let lm = if cell.optimizer == Optimizer::Lm {
        8 * (2 * np) * (2 * np)
    } else {
        0
    };
    state + pop + lm
}

/// The adapter a sweep's GPU cells run on (the first one `pick` finds, software included).
fn adapter() -> Result<wgpu::Adapter> {
    gpu::context::pick(None, true)
}

/// The plan: `order` (grid indices) cut into units, in order of their first cell.
fn plan(cells: &[Cell], order: &[usize], mode: PackMode) -> Result<Vec<Unit>> {
    let alone = |k: usize, note: String| Unit {
        kind: How::Alone,
        cells: vec![k],
        note,
    };
    if mode == PackMode::Off {
        return Ok((0..order.len()).map(|k| alone(k, String::new())).collect());
    }
    // group keys in order of first appearance; a GPU group carries what its pack needs
    let mut groups: Vec<(String, How, Vec<usize>, Option<PackNeeds>)> = Vec::new();
    let mut units = Vec::new();
    let mut gpu_adapter = None;
    for (k, &i) in order.iter().enumerate() {
        let c = &cells[i];
        let (key, kind) = if c.precision == BackendKind::CpuF64 {
            (format!("cpu {}", c.n), How::Cpu)
        } else {
            let kind = if c.optimizer == Optimizer::Adam && c.data == DataMode::Minibatch {
                How::GpuAdam
            } else {
                How::GpuHost
            };
            (format!("gpu {} {} {} {}", c.n, c.batch, c.data, c.optimizer), kind)
        };
        if let Some(g) = groups.iter_mut().find(|g| g.0 == key) {
            g.2.push(k);
            continue;
        }
        let needs = if kind == How::Cpu {
            None
        } else {
            let a = match &gpu_adapter {
                Some(a) => a,
                None => gpu_adapter.insert(adapter()?),
            };
            let net = crate::model::network::Network::new(c.n)?;
            let (info, limits, features) = gpu::context::caps(a)?;
            match gpu::model::fused_plan(&info, &limits, features, &net, Precision::F32, true, Default::default()) {
                Ok(plan) => Some(PackNeeds::of(
                    &limits,
                    &net,
                    Precision::F32,
                    &plan,
                    cell::samples_per_step(c) as usize,
                )),
                Err(why) => {
                    units.push((k, alone(k, format!("alone: the fused kernel does not hold it ({why})"))));
                    continue;
                }
            }
        };
        groups.push((key, kind, vec![k], needs));
    }
    let budget = crate::io::memory::available().unwrap_or(8 << 30) / 2;
    for (_, kind, members, needs) in groups {
        let (max, note) = match needs {
            None => {
                let per = members
                    .iter()
                    .map(|&k| cpu_cell_bytes(&cells[order[k]]))
                    .max()
                    .unwrap_or(1);
                let max = (budget / per.max(1)).max(1) as usize;
                (
                    max,
                    format!(
                        "{:.1} KiB per cell; up to {max} cells per pack in half the available memory ({:.1} GiB)",
                        per as f64 / 1024.0,
                        budget as f64 / (1u64 << 30) as f64
                    ),
                )
            }
            Some(needs) if needs.max_cells == 0 => {
                for k in members {
                    units.push((
                        k,
                        alone(
                            k,
                            format!("alone: one cell is over the adapter's limits ({})", needs.bound),
                        ),
                    ));
                }
                continue;
            }
            Some(needs) => (
                needs.max_cells,
                format!(
                    "{:.1} KiB of device memory per cell; up to {} cells per pack ({})",
                    needs.bytes_per_cell as f64 / 1024.0,
                    needs.max_cells,
                    needs.bound
                ),
            ),
        };
        for part in members.chunks(max) {
            units.push((
                part[0],
                Unit {
                    kind,
                    cells: part.to_vec(),
                    note: note.clone(),
                },
            ));
        }
    }
    units.sort_by_key(|u| u.0);
    Ok(units.into_iter().map(|u| u.1).collect())
}

/// The rows of a run (a whole sweep, or one shard's cells) as they finish: the CSV prefix in
/// the run's order, the finished rows ahead of it, the files that hold them.
struct Ledger<'a> {
    order: &'a [usize],
    rows: &'a mut Vec<String>,
    ahead: BTreeMap<usize, String>,
    dir: PathBuf,
    write: &'a mut dyn FnMut(&[String]) -> Result<()>,
}

impl Ledger<'_> {
    fn row_file(&self, k: usize) -> PathBuf {
        self.dir.join(format!("{}.row", self.order[k]))
    }

    fn checkpoint(&self, k: usize) -> PathBuf {
        self.dir.join(format!("{}.npz", self.order[k]))
    }

    /// How many cells are done (in the CSV and ahead of it).
    fn done(&self) -> usize {
        self.rows.len() + self.ahead.len()
    }

    /// Cell `k` finished with `row`: into the CSV if every cell before it is done, else into
    /// its `.row` file; then every row the prefix now reaches.
    fn finish(&mut self, k: usize, row: String) -> Result<()> {
        if k != self.rows.len() {
            npy::write_text(&self.row_file(k), &format!("{row}\n"))?;
            self.ahead.insert(k, row);
            return Ok(());
        }
        self.rows.push(row);
        let mut moved = vec![k];
        while let Some(r) = self.ahead.remove(&self.rows.len()) {
            moved.push(self.rows.len());
            self.rows.push(r);
        }
        (self.write)(self.rows)?;
        for m in moved {
            let _ = std::fs::remove_file(self.row_file(m));
        }
        Ok(())
    }
}

/// Run the cells `order[rows.len()..]` (grid indices into `cells`) in packs (or one by one),
/// resuming from the state in `dir`; `rows` holds the rows of `order[..rows.len()]` and grows
/// in order, `write(rows)` called each time it does. Prints the plan and one line per cell as
/// it ends. An interrupt checkpoints every running cell and returns `Kind::Interrupted`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    c: &SweepConfig,
    cells: &[Cell],
    order: &[usize],
    rows: &mut Vec<String>,
    dir: &Path,
    mode: PackMode,
    log: &mut dyn Write,
    write: &mut dyn FnMut(&[String]) -> Result<()>,
) -> Result<()> {
    let start = rows.len();
    let mut ledger = Ledger {
        order,
        rows,
        ahead: BTreeMap::new(),
        dir: dir.to_path_buf(),
        write,
    };
    // rows finished ahead of the CSV by an earlier, interrupted run
    for k in start..order.len() {
        if let Ok(text) = std::fs::read_to_string(ledger.row_file(k)) {
            let row = text.trim_end().to_string();
            if row.starts_with(&format!("{},", cells[order[k]].key())) {
                ledger.ahead.insert(k, row);
            }
        }
    }
    let todo: Vec<usize> = (start..order.len()).filter(|k| !ledger.ahead.contains_key(k)).collect();
    let held = todo.iter().filter(|&&k| ledger.checkpoint(k).exists()).count();
    if !ledger.ahead.is_empty() || held > 0 {
        writeln!(
            log,
            "[sweep] resuming: {} of {} cells done ({} ahead of the CSV), {held} continuing from their checkpoints in {}",
            ledger.done(),
            order.len(),
            ledger.ahead.len(),
            dir.display()
        )?;
    }
    let sub: Vec<usize> = todo.iter().map(|&k| order[k]).collect();
    let units = plan(cells, &sub, mode)?;
    let total = order.len();
    let mut interrupted = false;
    for (u, unit) in units.iter().enumerate() {
        let ks: Vec<usize> = unit.cells.iter().map(|&j| todo[j]).collect();
        if unit.kind != How::Alone || !unit.note.is_empty() {
            let first = &cells[order[ks[0]]];
            writeln!(
                log,
                "[sweep] {} {}/{}: {} cell(s), N = {}, {}{}",
                if unit.kind == How::Alone { "run" } else { "pack" },
                u + 1,
                units.len(),
                ks.len(),
                first.n,
                match unit.kind {
                    How::Cpu => "CPU f64".to_string(),
                    How::GpuAdam => format!("f32 adam on the device, batch {}", first.batch),
                    How::GpuHost => format!(
                        "f32 {} ({} data) updated on the host, batch {}",
                        first.optimizer, first.data, first.batch
                    ),
                    How::Alone => format!("{} {}", first.optimizer, precision_name(first.precision)),
                },
                if unit.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", unit.note)
                }
            )?;
        }
        let r = if unit.kind == How::Alone {
            run_alone(c, cells, &ks, &mut ledger, total, log)
        } else {
            run_pack(c, cells, unit.kind, &ks, &mut ledger, total, log)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == Kind::Interrupted => {
                interrupted = true;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if interrupted {
        return Err(Error::interrupted(format!(
            "interrupted; the running cells are checkpointed in {}",
            dir.display()
        )));
    }
    if ledger.rows.len() != order.len() {
        return Err(Error::runtime(format!(
            "{} of {} cells have rows after the run",
            ledger.rows.len(),
            order.len()
        )));
    }
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// One cell alone: the lone run ([`cell::run_cell`]) with its checkpoint in the running
/// directory.
fn run_alone(
    c: &SweepConfig,
    cells: &[Cell],
    ks: &[usize],
    ledger: &mut Ledger,
    total: usize,
    log: &mut dyn Write,
) -> Result<()> {
    let mut gpu = None;
    for &k in ks {
        let cell = &cells[ledger.order[k]];
        std::fs::create_dir_all(&ledger.dir)
            .map_err(|e| Error::input(format!("cannot create {}: {e}", ledger.dir.display())))?;
        let o = cell::run_cell(cell, c, &mut gpu, &ledger.checkpoint(k)).map_err(|e| match e.kind() {
            Kind::Interrupted => e,
            _ => e.context(format!("sweep cell {} ({})", ledger.order[k], cell.label())),
        })?;
        writeln!(log, "{}", cell::progress(ledger.done(), total, cell, &o))?;
        ledger.finish(k, cell::row(cell, &o))?;
    }
    Ok(())
}

/// The cells `ks` as one pack of `kind`.
fn run_pack(
    c: &SweepConfig,
    cells: &[Cell],
    kind: How,
    ks: &[usize],
    ledger: &mut Ledger,
    total: usize,
    log: &mut dyn Write,
) -> Result<()> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&ledger.dir)
        .map_err(|e| Error::input(format!("cannot create {}: {e}", ledger.dir.display())))?;
    let mut jobs = Vec::with_capacity(ks.len());
    let mut starts = Vec::with_capacity(ks.len());
    for &k in ks {
        let cell = &cells[ledger.order[k]];
        let job = CellJob::new(cell, c, &ledger.checkpoint(k))?;
        starts.push(cell.init.params(&job.tc.validate()?, cell.seed)?);
        jobs.push(job);
    }
    let configs: Vec<TrainConfig> = jobs.iter().map(|j| j.tc.clone()).collect();
    let mut backend: Box<dyn PackBackend> = match kind {
        How::Cpu => Box::new(CpuPack::new(
            configs.iter().cloned().zip(starts.iter().cloned()).collect(),
        )?),
        _ => {
            let g = Gpu::open(&adapter()?, false)?;
            let batch = cell::samples_per_step(&cells[ledger.order[ks[0]]]) as usize;
            let model = GpuModel::pack(g, &starts, ModelOptions::new(Precision::F32), batch)?;
            if kind == How::GpuAdam {
                Box::new(GpuAdamPack::new(model, &configs)?)
            } else {
                Box::new(GpuHostPack::new(
                    model,
                    configs.iter().cloned().zip(starts.iter().cloned()).collect(),
                )?)
            }
        }
    };
    let ran = cell::ran_on(backend.kind(), backend.describe());
    let mut runs = Vec::with_capacity(ks.len());
    for (j, job) in jobs.iter().enumerate() {
        let (span, obs) = job.start(|p, s| backend.restore(j, p, s))?;
        runs.push(CellRun::new(span, obs));
    }
    let mut stopped = false;
    drive_pack(backend.as_mut(), &mut runs, &mut |j, run, b| {
        let k = ks[j];
        let cell = &cells[ledger.order[k]];
        let update = b.update();
        let b = std::cell::RefCell::new(b);
        let end = run.end.as_ref().expect("an ended cell");
        let done = jobs[j].end(
            end,
            run.span.start,
            &run.obs,
            &mut || Ok(b.borrow_mut().params(&[j])?.remove(0)),
            &mut || b.borrow_mut().state(j),
            update,
        )?;
        let Some((status, final_rel_err, final_loss)) = done else {
            stopped = true;
            return Ok(());
        };
        let o = Outcome {
            status,
            steps_to_success: run.obs.reached,
            final_rel_err,
            final_loss,
            backend: ran.clone(),
            wall_s: t0.elapsed().as_secs_f64(),
        };
        writeln!(log, "{}", cell::progress(ledger.done(), total, cell, &o))?;
        ledger.finish(k, cell::row(cell, &o))
    })
    .map_err(|e| {
        e.context(format!(
            "sweep pack of {} cells at N = {}",
            ks.len(),
            cells[ledger.order[ks[0]]].n
        ))
    })?;
    if stopped {
        return Err(Error::interrupted("interrupted"));
    }
    Ok(())
}
