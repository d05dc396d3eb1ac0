//! The exact f64 CPU path: batched forward, the seed's loss, and a hand-written reverse pass
//! returning gradients in PyTorch's convention (dL/dRe + i dL/dIm).
//!
//! Samples are processed in blocks of [`LANES`] with structure-of-arrays lanes so the
//! butterflies vectorise. A batch is cut into tasks whose size depends on the batch size
//! only; each task reduces its lanes in a fixed order and the task partials are summed in
//! index order, so results are bit-identical at any `RAYON_NUM_THREADS`.

mod kernel;

use crate::model::data::Batch;
use crate::model::network::Network;
use crate::model::params::Params;
use kernel::Work;
use num_complex::Complex64 as C64;
use rayon::prelude::*;
use std::cell::RefCell;

pub use kernel::LANES;

/// Loss and gradient of one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Grad {
    /// The seed's loss: mean over batch x bins of squared real error + the same for imaginary.
    pub loss: f64,
    /// dL/dM (row-major), PyTorch convention.
    pub m: [C64; 4],
    /// dL/dtwiddles, PyTorch convention; the unused last entry is exactly 0.
    pub tw: Vec<C64>,
}

impl Grad {
    /// All gradients as one vector: M then twiddles (matches [`Params::flat`]).
    pub fn flat(&self) -> Vec<C64> {
        self.m.iter().chain(self.tw.iter()).copied().collect()
    }
}

thread_local! {
    static WORK: RefCell<Option<Work>> = const { RefCell::new(None) };
}

fn with_work<R>(net: &Network, f: impl FnOnce(&mut Work) -> R) -> R {
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        if w.as_ref().is_none_or(|w| w.n() != net.n()) {
            *w = Some(Work::new(net));
        }
        f(w.as_mut().expect("set above"))
    })
}

/// Samples per task for a batch of `b`: a function of `b` alone (never of the thread count),
/// a multiple of LANES, and at most 64 tasks.
pub fn task_size(b: usize) -> usize {
    let t = b.div_ceil(64).max(1);
    t.div_ceil(LANES) * LANES
}

/// [`loss_grad`] for a front end: a loss or gradient that overflowed f64 is an error.
pub fn loss_grad_finite(p: &Params, batch: &Batch) -> crate::Result<Grad> {
    let g = loss_grad(p, batch);
    if !(g.loss.is_finite() && g.m.iter().chain(&g.tw).all(|z| z.is_finite())) {
        return Err(crate::Error::runtime(format!(
            "grad: the loss or gradient is NaN or infinite (loss {:e}: the parameters or inputs overflow f64)",
            g.loss
        )));
    }
    Ok(g)
}

/// [`forward`] for a front end: an output that overflowed f64 is an error.
pub fn forward_finite(p: &Params, x: &[f64]) -> crate::Result<Vec<C64>> {
    let y = forward(p, x);
    if !y.iter().all(|z| z.is_finite()) {
        return Err(crate::Error::runtime(
            "forward: the output holds NaN or infinity (the parameters overflow f64 on these inputs)",
        ));
    }
    Ok(y)
}

/// Loss and gradient of `batch` at `p`.
pub fn loss_grad(p: &Params, batch: &Batch) -> Grad {
    reduce(p, batch, true, &|| false).expect("never stopped")
}

/// [`loss_grad`], abandoned (`None`) when `stop` turns true: it is polled before each of the
/// batch's tasks (at most 64), so a huge batch answers an interrupt within a task's time. A
/// completed result is bit-identical to [`loss_grad`]'s.
pub fn loss_grad_until(p: &Params, batch: &Batch, stop: &(dyn Fn() -> bool + Sync)) -> Option<Grad> {
    reduce(p, batch, true, stop)
}

/// Loss only (forward pass) of `batch` at `p`.
pub fn loss(p: &Params, batch: &Batch) -> f64 {
    reduce(p, batch, false, &|| false).expect("never stopped").loss
}

fn reduce(p: &Params, batch: &Batch, backward: bool, stop: &(dyn Fn() -> bool + Sync)) -> Option<Grad> {
    let net = &p.net;
    let b = batch.len(net);
    let ts = task_size(b);
    let ntask = b.div_ceil(ts);
    let partials: Vec<Option<(f64, Vec<C64>)>> = (0..ntask)
        .into_par_iter()
        .map(|t| {
            if stop() {
                return None;
            }
            let lo = t * ts;
            let hi = (lo + ts).min(b);
            Some(with_work(net, |w| w.task(p, batch, lo, hi, backward)))
        })
        .collect();
    let partials: Vec<(f64, Vec<C64>)> = partials.into_iter().collect::<Option<_>>()?;
    let mut sum = 0.0;
    let mut g = vec![C64::default(); p.len()];
    for (l, gp) in &partials {
        sum += l;
        if backward {
            for (a, v) in g.iter_mut().zip(gp) {
                *a += v;
            }
        }
    }
    let denom = (b * net.bins()) as f64;
    Some(Grad {
        loss: sum / denom,
        m: [g[0], g[1], g[2], g[3]],
        tw: g[4..].to_vec(),
    })
}

/// Per-sample gradients: for every sample of `batch`, the gradient of its own loss (as a batch
/// of one), as B rows of 2 (N + 3) reals (re, im per complex parameter, M first).
pub fn per_sample_grads(p: &Params, batch: &Batch) -> Vec<f64> {
    let net = &p.net;
    let b = batch.len(net);
    let nr = 2 * p.len();
    let mut out = vec![0.0; b * nr];
    out.par_chunks_mut(LANES * nr).enumerate().for_each(|(blk, o)| {
        let lo = blk * LANES;
        let hi = (lo + LANES).min(b);
        with_work(net, |w| w.per_sample(p, batch, lo, hi, o));
    });
    out
}

/// Forward pass of each row of `x` (B x N): B x (N/2+1) outputs.
pub fn forward(p: &Params, x: &[f64]) -> Vec<C64> {
    let net = &p.net;
    let (n, k) = (net.n(), net.bins());
    let b = x.len() / n;
    let mut out = vec![C64::default(); b * k];
    out.par_chunks_mut(LANES * k).enumerate().for_each(|(blk, o)| {
        let lo = blk * LANES;
        let hi = (lo + LANES).min(b);
        with_work(net, |w| w.forward_block(p, &x[lo * n..hi * n], o));
    });
    out
}

/// The model's linear map W as a (N/2+1) x N complex matrix (row k = bin k).
pub fn operator(p: &Params) -> Vec<C64> {
    let net = &p.net;
    let n = net.n();
    let mut eye = vec![0.0; n * n];
    for j in 0..n {
        eye[j * n + j] = 1.0;
    }
    let wt = forward(p, &eye); // N x K: column j of W is row j here
    let k = net.bins();
    let mut w = vec![C64::default(); k * n];
    for j in 0..n {
        for r in 0..k {
            w[r * n + j] = wt[j * k + r];
        }
    }
    w
}

/// Relative operator error ||W - F||_F / ||F||_F, from the identity basis with exact targets.
pub fn rel_operator_error(p: &Params) -> f64 {
    loss(p, &Batch::Identity).sqrt()
}

/// [`rel_operator_error`] of a point that can be measured: finite parameters, and an error
/// that does not overflow the network's f64 range (a point that does has every figure NaN).
/// The refusal names `what` the command does ("inspect", "measure").
pub fn measurable_error(p: &Params, what: &str) -> crate::error::Result<f64> {
    if !p.is_finite() {
        return Err(crate::error::Error::input("the point has non-finite parameters"));
    }
    let err = rel_operator_error(p);
    if !err.is_finite() {
        return Err(crate::error::Error::input(format!(
            "the point's relative operator error is {err} (its parameters overflow the network's f64 range); {what} a point of finite error"
        )));
    }
    Ok(err)
}

/// [`rel_operator_error`], abandoned (`None`) when `stop` turns true (polled before each of
/// its at most 64 tasks); a completed result is bit-identical.
pub fn rel_operator_error_until(p: &Params, stop: &(dyn Fn() -> bool + Sync)) -> Option<f64> {
    reduce(p, &Batch::Identity, false, stop).map(|g| g.loss.sqrt())
}
