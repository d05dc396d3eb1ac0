//! Cells as a dimension of the GPU step. A [`GpuModel`] holds `cap` cells of one N: cell
//! slot i keeps its parameters, Adam moments and step accumulator at its own offset in the
//! model's buffers, and a step runs the rows of a cell table (slot, data seed, step; see
//! `abi::CellRow`) in one command buffer: the fused kernel over rows x workgroups (the y
//! dispatch dimension is the row), each row's partials combined by the same fixed tree as a
//! lone cell's, each row's Adam, and every row's loss in one buffer read back in one copy.
//!
//! The invariant: a cell in a pack is the cell alone. A single model is a pack of one (slot
//! 0, one row), and the kernel source does not depend on the cell count, so a cell's
//! arithmetic is the same instructions on the same values whatever else runs beside it: its
//! samples (its own Philox key and step), its workgroups and samples per team (from the batch
//! alone), its reduction tree and its update. Only the addresses differ. Cells that are done
//! simply leave the table; their slots keep their state for a final read.
//!
//! This module owns the per-cell host interface (reads and writes of one slot or several),
//! the single-cell calls every other caller uses, and what a pack needs of an adapter
//! ([`PackNeeds`]).

use super::abi::CellStep;
use super::fused::fused_max_groups;
use super::model::{complexes, from_reals, GpuBatch, GpuModel, ModelOptions, Shape};
use super::target::Precision;
use super::{AdamHyper, Gpu, Kernel};
use crate::backend::cpu::Grad;
use crate::error::{Error, Result};
use crate::model::network::Network;
use crate::model::params::Params;
use num_complex::Complex64 as C64;

/// The one cell of a single model's step on `batch`.
fn single_cell(batch: &GpuBatch) -> CellStep {
    match *batch {
        GpuBatch::Gaussian { seed, step, .. } | GpuBatch::GaussianPart { seed, step, .. } => {
            CellStep { slot: 0, seed, step }
        }
        GpuBatch::Host { .. } | GpuBatch::HostPart { .. } => CellStep {
            slot: 0,
            seed: 0,
            step: 0,
        },
    }
}

/// What one cell of a pack needs on the device at N, precision and batch, and the most cells
/// one pack holds on an adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct PackNeeds {
    /// Device bytes per cell (parameters, moments, accumulator, partials, hyper-parameters,
    /// cell table, loss).
    pub bytes_per_cell: u64,
    /// The most cells one pack holds.
    pub max_cells: usize,
    /// What bounds `max_cells`, in words (a limit's name and value).
    pub bound: String,
}

impl PackNeeds {
    /// The needs of a pack at `net`, `prec` and `batch` samples per step on an adapter with
    /// `limits` (fused plan `plan`): every per-cell buffer within one storage binding, the
    /// rows within one dispatch dimension.
    pub fn of(limits: &wgpu::Limits, net: &Network, prec: Precision, plan: &super::fused::Plan, batch: usize) -> Self {
        let np = (net.n_params()) as u64;
        let (cb, rb) = (2 * prec.bytes() as u64, prec.bytes() as u64);
        let groups = plan.shape(batch.max(1), fused_max_groups(limits, net, prec)).1 as u64;
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let per: [(&str, u64); 7] = [
            ("parameters", np * cb),
            ("moments", 2 * np * cb),
            ("accumulators", 2 * (np + 1) * cb),
            ("partials", (np + 1) * groups * cb),
            ("hyper-parameters", super::abi::Hyper::LEN as u64 * rb),
            ("cell table", std::mem::size_of::<super::abi::CellRow>() as u64),
            ("losses", rb),
        ];
        let bytes_per_cell = per.iter().map(|p| p.1).sum();
        let dims = limits.max_compute_workgroups_per_dimension as u64;
        let (mut max, mut bound) = (
            dims,
            format!("{dims} rows per dispatch (max_compute_workgroups_per_dimension)"),
        );
        for (what, b) in per {
            if binding / b < max {
                max = binding / b;
                bound = format!(
                    "{what} of {b} bytes per cell within one binding of {binding} bytes (max_storage_buffer_binding_size)"
                );
            }
        }
        PackNeeds {
            bytes_per_cell,
            max_cells: max as usize,
            bound,
        }
    }
}

impl GpuModel {
    /// A pack: the cells `ps` (one N) at slots 0..ps.len(), on the fused kernel, for steps of
    /// `batch` samples. Refused before allocating when the adapter cannot hold that many
    /// ([`PackNeeds`]).
    pub fn pack(gpu: Gpu, ps: &[Params], opts: ModelOptions, batch: usize) -> Result<GpuModel> {
        if opts.kernel.is_some_and(|k| k != Kernel::Fused) {
            return Err(Error::input("a pack runs on the fused kernel"));
        }
        if let Some(p) = ps.first() {
            let plan = super::model::fused_plan(
                &gpu.info,
                &gpu.limits,
                gpu.features,
                &p.net,
                opts.prec,
                opts.int64,
                opts.fused_pick(),
            )
            .map_err(|why| {
                Error::input(format!(
                    "a pack runs on the fused kernel: {why} on adapter {}",
                    gpu.name()
                ))
            })?;
            let needs = PackNeeds::of(&gpu.limits, &p.net, opts.prec, &plan, batch);
            if ps.len() > needs.max_cells {
                return Err(Error::input(format!(
                    "a pack of {} cells at N = {}, batch {batch} does not fit adapter {}: at most {} ({})",
                    ps.len(),
                    p.net.n(),
                    gpu.name(),
                    needs.max_cells,
                    needs.bound
                )));
            }
        }
        GpuModel::build(gpu, ps, opts, Some(batch))
    }

    /// Cells the model holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn np(&self) -> usize {
        self.net.n_params()
    }

    /// One Adam step of every cell of `rows` on `batch` (per row: hyper-parameters and Adam's
    /// step count from 1); returns each row's loss before its update, read back in one copy.
    pub fn pack_adam_step(&self, batch: &GpuBatch, rows: &[CellStep], adam: &[(AdamHyper, u64)]) -> Result<Vec<f64>> {
        if adam.len() != rows.len() {
            return Err(Error::runtime("one Adam entry per row"));
        }
        self.accumulate(batch, rows, Some(adam))?;
        self.losses(batch, rows.len())
    }

    /// Each row's loss (from the last step's accumulators).
    fn losses(&self, batch: &GpuBatch, rows: usize) -> Result<Vec<f64>> {
        let rb = self.prec.bytes() as u64;
        let v = match &self.shape {
            Shape::Fused(_) => from_reals(self.prec, &self.gpu.read(&self.losses, 0, rows as u64 * rb)?),
            // lane/group: one cell, its loss total in the accumulator after the gradients
            Shape::Chunked(_) => {
                let at = 2 * self.np() as u64 * 2 * rb;
                from_reals(self.prec, &self.gpu.read(&self.acc, at, rb)?)
            }
        };
        let b = batch.mean_over(self.net.n());
        Ok(v.into_iter().map(|l| l / (b as f64 * self.net.bins() as f64)).collect())
    }

    /// Loss and gradient of `batch` for every cell of `rows` at its current parameters (the
    /// accumulators of the rows' slots, read back in one copy).
    pub fn pack_loss_grad(&self, batch: &GpuBatch, rows: &[CellStep]) -> Result<Vec<Grad>> {
        self.accumulate(batch, rows, None)?;
        let np = self.np();
        let per = 2 * (np + 1);
        let slots: Vec<usize> = rows.iter().map(|r| r.slot).collect();
        let (lo, v) = self.read_slots(&self.acc, per, &slots)?;
        let b = batch.mean_over(self.net.n());
        Ok(slots
            .iter()
            .map(|&s| {
                // (total, open block) pairs per parameter; the last chunk flushed the block
                let a = &v[(s - lo) * per * 2..];
                let sum = |p: usize| C64::new(a[4 * p], a[4 * p + 1]);
                let g: Vec<C64> = (0..np).map(sum).collect();
                Grad {
                    loss: sum(np).re / (b as f64 * self.net.bins() as f64),
                    m: [g[0], g[1], g[2], g[3]],
                    tw: g[4..].to_vec(),
                }
            })
            .collect())
    }

    /// The span of slots `min..=max` of `slots` in `buf` (`per` complex values per slot),
    /// read in one copy: (first slot, reals).
    fn read_slots(&self, buf: &wgpu::Buffer, per: usize, slots: &[usize]) -> Result<(usize, Vec<f64>)> {
        let (lo, hi) = (
            slots.iter().copied().min().unwrap_or(0),
            slots.iter().copied().max().unwrap_or(0),
        );
        if hi >= self.cap {
            return Err(Error::runtime(format!("slot {hi} of a model of {} cells", self.cap)));
        }
        let cb = 2 * self.prec.bytes();
        let bytes = self
            .gpu
            .read(buf, (lo * per * cb) as u64, ((hi + 1 - lo) * per * cb) as u64)?;
        Ok((lo, from_reals(self.prec, &bytes)))
    }

    /// The parameters of cells `slots`, read back in one copy.
    pub fn params_of(&self, slots: &[usize]) -> Result<Vec<Params>> {
        let np = self.np();
        let (lo, v) = self.read_slots(&self.params, np, slots)?;
        Ok(slots
            .iter()
            .map(|&s| {
                let a = &v[(s - lo) * np * 2..(s - lo + 1) * np * 2];
                let flat: Vec<C64> = a.chunks_exact(2).map(|c| C64::new(c[0], c[1])).collect();
                let mut p = Params {
                    net: self.net.clone(),
                    m: [C64::default(); 4],
                    tw: vec![C64::default(); np - 4],
                };
                p.set_flat(&flat);
                p
            })
            .collect())
    }

    /// Replace cell `slot`'s parameters (and reset nothing else).
    pub fn set_params_of(&self, slot: usize, p: &Params) {
        let at = (slot * self.np() * 2 * self.prec.bytes()) as u64;
        self.gpu
            .queue
            .write_buffer(&self.params, at, &complexes(self.prec, &p.flat()));
    }

    /// Cell `slot`'s Adam moments (re/im per parameter): (m, v).
    pub fn moments_of(&self, slot: usize) -> Result<(Vec<C64>, Vec<C64>)> {
        let (_, v) = self.read_slots(&self.moments, 2 * self.np(), &[slot])?;
        let c: Vec<C64> = v.chunks_exact(2).map(|c| C64::new(c[0], c[1])).collect();
        Ok((
            c.iter().step_by(2).copied().collect(),
            c.iter().skip(1).step_by(2).copied().collect(),
        ))
    }

    /// Replace cell `slot`'s Adam moments (the layout [`GpuModel::moments_of`] reads).
    pub fn set_moments_of(&self, slot: usize, m: &[C64], v: &[C64]) {
        let inter: Vec<C64> = m.iter().zip(v).flat_map(|(a, b)| [*a, *b]).collect();
        let at = (slot * 2 * self.np() * 2 * self.prec.bytes()) as u64;
        self.gpu
            .queue
            .write_buffer(&self.moments, at, &complexes(self.prec, &inter));
    }

    // The single-cell calls: slot 0, one row.

    /// Replace the parameters (and reset nothing else).
    pub fn set_params(&self, p: &Params) {
        self.set_params_of(0, p)
    }

    /// Read the parameters back.
    pub fn params(&self) -> Result<Params> {
        Ok(self.params_of(&[0])?.remove(0))
    }

    /// Loss and gradient of `batch` at the current parameters (read back in full).
    pub fn loss_grad(&self, batch: &GpuBatch) -> Result<Grad> {
        Ok(self.pack_loss_grad(batch, &[single_cell(batch)])?.remove(0))
    }

    /// One Adam step on `batch` (step count `t`, from 1); returns the loss before the update.
    pub fn adam_step(&self, batch: &GpuBatch, adam: &AdamHyper, t: u64) -> Result<f64> {
        Ok(self
            .pack_adam_step(batch, &[single_cell(batch)], &[(*adam, t)])?
            .remove(0))
    }

    /// Adam moments (re/im per parameter) back on the host: (m, v).
    pub fn moments(&self) -> Result<(Vec<C64>, Vec<C64>)> {
        self.moments_of(0)
    }

    /// Replace the Adam moments (the layout [`GpuModel::moments`] reads).
    pub fn set_moments(&self, m: &[C64], v: &[C64]) {
        self.set_moments_of(0, m, v)
    }
}
