//! Batch sources (seeded Gaussian minibatches, the identity basis, a user's arrays) and the
//! exact targets: rustfft's real FFT for data, exact roots of unity for the identity basis.

use crate::model::network::Network;
use crate::model::params::root_of_unity;
use crate::model::rng::{self, Stream};
use num_complex::Complex64 as C64;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Where a batch's inputs and targets come from.
#[derive(Clone, Copy, Debug)]
pub enum Batch<'a> {
    /// `size` standard Gaussian samples keyed by (seed, stream, step, sample); target = rfft(x).
    Gaussian {
        /// Data seed.
        seed: u64,
        /// Stream.
        stream: Stream,
        /// Step number (the generator position).
        step: u32,
        /// Samples.
        size: usize,
    },
    /// The N identity vectors e_0..e_{N-1}; target = the exact DFT columns. The loss on this
    /// batch is ||W-F||_F^2 / (N (N/2+1)) = (relative operator error)^2, and N times it is the
    /// population loss E_x\[L\] for x ~ N(0, I).
    Identity,
    /// A user's inputs (B x N, C order) and optional targets (B x (N/2+1)); default rfft(x).
    Given {
        /// Inputs.
        x: &'a [f64],
        /// Targets.
        target: Option<&'a [C64]>,
    },
}

impl Batch<'_> {
    /// Number of samples.
    pub fn len(&self, net: &Network) -> usize {
        match self {
            Batch::Gaussian { size, .. } => *size,
            Batch::Identity => net.n(),
            Batch::Given { x, .. } => x.len() / net.n(),
        }
    }
}

/// Fills samples and their targets; one per thread (holds FFT scratch).
pub struct Source {
    n: usize,
    fft: Arc<dyn Fft<f64>>,
    buf: Vec<C64>,
    scratch: Vec<C64>,
}

impl Source {
    /// A source for size N.
    pub fn new(net: &Network) -> Self {
        let fft = FftPlanner::new().plan_fft_forward(net.n());
        let scratch = vec![C64::default(); fft.get_inplace_scratch_len()];
        Source {
            n: net.n(),
            fft,
            buf: vec![C64::default(); net.n()],
            scratch,
        }
    }

    /// Write sample `b`'s input into `x` (length N) and its target into `t` (length N/2+1).
    pub fn fill(&mut self, batch: &Batch, b: usize, x: &mut [f64], t: &mut [C64]) {
        let n = self.n;
        match batch {
            Batch::Gaussian { seed, stream, step, .. } => {
                rng::normals(*seed, *stream, *step, b as u32, x);
                self.rfft(x, t);
            }
            Batch::Identity => {
                x.fill(0.0);
                x[b] = 1.0;
                for (k, tk) in t.iter_mut().enumerate() {
                    *tk = root_of_unity((b * k) as u64, n as u64);
                }
            }
            Batch::Given { x: xs, target } => {
                x.copy_from_slice(&xs[b * n..(b + 1) * n]);
                match target {
                    Some(ts) => t.copy_from_slice(&ts[b * t.len()..(b + 1) * t.len()]),
                    None => self.rfft(x, t),
                }
            }
        }
    }

    /// The real FFT of `x` (bins 0..=N/2) by rustfft.
    pub fn rfft(&mut self, x: &[f64], t: &mut [C64]) {
        for (b, &v) in self.buf.iter_mut().zip(x) {
            *b = C64::new(v, 0.0);
        }
        self.fft.process_with_scratch(&mut self.buf, &mut self.scratch);
        t.copy_from_slice(&self.buf[..t.len()]);
    }
}

/// Real FFT of each row of `x` (B x N) by rustfft: B x (N/2+1).
pub fn rfft_rows(net: &Network, x: &[f64]) -> Vec<C64> {
    let mut src = Source::new(net);
    let k = net.bins();
    let mut out = vec![C64::default(); x.len() / net.n() * k];
    for (row, t) in x.chunks(net.n()).zip(out.chunks_mut(k)) {
        src.rfft(row, t);
    }
    out
}
