//! GPU timestamps of a fused training step (adapters with TIMESTAMP_QUERY, lavapipe among
//! them): when the first training dispatch began and the last one ended (the samples' data,
//! target, forward and backward passes, all in the fused kernel, over every slice of the
//! step's grid), the combine dispatch (the partials' reduction), and the Adam update. `bench`
//! reports them beside the host's wall time of the step, which shows the host's share.

use super::context::Gpu;
use crate::error::Result;

/// The timed parts, in query order: each has a beginning and an end timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The fused kernel's dispatches (first beginning to last end).
    Train = 0,
    /// The reduction of the partials.
    Combine = 1,
    /// The Adam update.
    Adam = 2,
}

const QUERIES: u32 = 6;

/// One step's GPU times, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepTiming {
    /// The training dispatches, from the first one's beginning to the last one's end.
    pub train: f64,
    /// The combine dispatch.
    pub combine: f64,
    /// The Adam dispatch (0 for a step without an update).
    pub adam: f64,
    /// From the training dispatches' beginning to the end of the step's last dispatch.
    pub span: f64,
}

/// The query set and the buffer its timestamps resolve into.
pub struct Timer {
    set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    period_ns: f64,
}

impl Timer {
    /// A timer on `gpu`, if its device has TIMESTAMP_QUERY.
    pub fn new(gpu: &Gpu) -> Option<Timer> {
        if !gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("step timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: QUERIES,
        });
        let resolved = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resolved timestamps"),
            size: QUERIES as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some(Timer {
            set,
            resolved,
            period_ns: gpu.queue.get_timestamp_period() as f64,
        })
    }

    /// The timestamp writes of a pass of `part`: its beginning if `begin`, its end if `end`.
    pub fn writes(&self, part: Part, begin: bool, end: bool) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        (begin || end).then(|| wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: begin.then_some(2 * part as u32),
            end_of_pass_write_index: end.then_some(2 * part as u32 + 1),
        })
    }

    /// The times of the step just run (whose passes wrote every part's pair; a step without
    /// an update writes the Adam pair around an empty pass).
    pub fn read(&self, gpu: &Gpu) -> Result<StepTiming> {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        enc.resolve_query_set(&self.set, 0..QUERIES, &self.resolved, 0);
        gpu.queue.submit([enc.finish()]);
        let bytes = gpu.read(&self.resolved, 0, QUERIES as u64 * 8)?;
        let t: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 * self.period_ns * 1e-9;
        Ok(StepTiming {
            train: secs(t[0], t[1]),
            combine: secs(t[2], t[3]),
            adam: secs(t[4], t[5]),
            span: secs(t[0], t[5].max(t[3])),
        })
    }
}
