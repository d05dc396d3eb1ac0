//! One step's batch over several adapters (`--adapters`): the batch is cut into at most
//! [`PARTS`] contiguous parts, a function of the batch size alone; part j goes to adapter
//! j mod A; each adapter computes its parts' contributions to the batch-mean loss and gradient
//! (on-device data from the same Philox counters), and the host adds them in part order in
//! f64. The result does not depend on how many adapters ran it: bit-identical to one adapter
//! of the same kind taking every part.

use super::model::{GpuBatch, GpuModel};
use super::target::Precision;
use crate::backend::cpu::Grad;
use crate::error::{Error, Result};
use crate::model::params::Params;
use crate::model::rng::Stream;
use num_complex::Complex64 as C64;

/// The most parts a batch is cut into.
pub const PARTS: usize = 8;

/// The parts of a batch of `b` samples: (first sample, samples), at most [`PARTS`], in order.
pub fn parts(b: usize) -> Vec<(usize, usize)> {
    let p = b.clamp(1, PARTS);
    (0..p).map(|j| (j * b / p, (j + 1) * b / p - j * b / p)).collect()
}

/// Models of the same network on several adapters, the same kind and precision.
pub struct MultiGpu {
    models: Vec<GpuModel>,
}

impl MultiGpu {
    /// Several models; they must share a precision (the parts' sums mix otherwise).
    pub fn new(models: Vec<GpuModel>) -> Result<Self> {
        let first = models
            .first()
            .ok_or_else(|| Error::input("--adapters: no adapter given"))?;
        let prec = first.precision();
        if models.iter().any(|m| m.precision() != prec) {
            return Err(Error::input("--adapters: every adapter must run the same precision"));
        }
        Ok(MultiGpu { models })
    }

    /// The adapters' count.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether there is none (never, once built).
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The precision they run.
    pub fn precision(&self) -> Precision {
        self.models[0].precision()
    }

    /// The adapters' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.gpu().name()).collect()
    }

    /// Which adapter takes each part of a batch of `b`, in words.
    pub fn assignment(&self, b: usize) -> String {
        parts(b)
            .iter()
            .enumerate()
            .map(|(j, (f, s))| format!("part {j} (samples {f}..{}) -> adapter {}", f + s, j % self.len()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Upload parameters to every adapter.
    pub fn set_params(&mut self, p: &Params) {
        for m in &mut self.models {
            m.set_params(p);
        }
    }

    /// The batch-mean loss and gradient of host rows `x` (B x N) with targets `t` (B x K),
    /// cut into parts as a Gaussian batch is.
    pub fn loss_grad_host(&self, x: &[f64], t: &[C64]) -> Result<Grad> {
        let net = self.models[0].net().clone();
        let (n, k) = (net.n(), net.bins());
        let b = x.len() / n;
        self.sum_parts(b, |first, size| GpuBatch::HostPart {
            x: &x[first * n..(first + size) * n],
            target: Some(&t[first * k..(first + size) * k]),
            total: b,
        })
    }

    /// The batch-mean loss and gradient of the Gaussian batch (seed, stream, step, `b`
    /// samples): the adapters work on their parts at once, the host adds the parts in order.
    pub fn loss_grad(&self, seed: u64, stream: Stream, step: u32, b: usize) -> Result<Grad> {
        self.sum_parts(b, |first, size| GpuBatch::GaussianPart {
            seed,
            stream,
            step,
            first,
            size,
            total: b,
        })
    }

    /// Every part's contribution (`part(first, size)` names its data) computed on its
    /// adapter, all adapters at once, then added on the host in part order.
    fn sum_parts<'a>(&self, b: usize, part: impl Fn(usize, usize) -> GpuBatch<'a> + Sync) -> Result<Grad> {
        let parts = parts(b);
        let a = self.models.len();
        let mut results: Vec<Option<Result<Grad>>> = (0..parts.len()).map(|_| None).collect();
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..a)
                .map(|i| {
                    let m = &self.models[i];
                    let part = &part;
                    let mine: Vec<(usize, (usize, usize))> =
                        parts.iter().copied().enumerate().filter(|(j, _)| j % a == i).collect();
                    sc.spawn(move || {
                        mine.into_iter()
                            .map(|(j, (first, size))| (j, m.loss_grad(&part(first, size))))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (j, r) in h.join().unwrap_or_else(|_| vec![]) {
                    results[j] = Some(r);
                }
            }
        });
        let mut total: Option<Grad> = None;
        for (j, r) in results.into_iter().enumerate() {
            let g =
                r.ok_or_else(|| Error::runtime(format!("adapter thread for part {j} ended without a result")))??;
            total = Some(match total {
                None => g,
                Some(mut t) => {
                    t.loss += g.loss;
                    for (x, y) in t.m.iter_mut().zip(&g.m) {
                        *x += y;
                    }
                    for (x, y) in t.tw.iter_mut().zip(&g.tw) {
                        *x += y;
                    }
                    t
                }
            });
        }
        total.ok_or_else(|| Error::runtime("an empty batch"))
    }
}
