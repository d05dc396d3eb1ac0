//! Levenberg-Marquardt on the population loss: the dense Gauss-Newton matrix from
//! [`crate::objective::hessian`], damped, solved by faer's Cholesky.

use crate::error::{Error, Result};
use crate::model::params::Params;
use crate::objective::hessian;
use crate::objective::problem::{loss, Problem};
use num_complex::Complex64 as C64;

/// Levenberg-Marquardt on the population loss: state is the damping lambda.
#[derive(Clone, Debug)]
pub struct Lm {
    /// Damping (added to the diagonal of the Gauss-Newton matrix).
    pub lambda: f64,
}

/// Largest N for LM (the dense 2 (N + 3) square Gauss-Newton matrix is rebuilt every step).
pub const LM_MAX_N: usize = 1024;

impl Lm {
    /// Initial damping 1e-3 x the largest GN diagonal entry, set at the first step.
    pub fn new() -> Self {
        Lm { lambda: 0.0 }
    }

    /// One LM step on the population loss: solve (GN + lambda I) delta = -grad, accept if the
    /// loss falls (lambda / 3), else lambda x 4 and retry (up to 20 times). Returns the loss
    /// before the step.
    pub fn step(&mut self, p: &mut Params) -> Result<f64> {
        let net = p.net.clone();
        if net.n() > LM_MAX_N {
            return Err(Error::input(format!(
                "optimizer lm at N = {}: the Gauss-Newton matrix is dense, offered up to N = {LM_MAX_N}",
                net.n()
            )));
        }
        let prob = Problem::population(&net);
        let (f0, g) = hessian::population_grad(p);
        let (gn, _) = hessian::gauss_newton(p);
        let nr = g.len();
        if self.lambda == 0.0 {
            let dmax = (0..nr).map(|j| gn[j * nr + j]).fold(0.0, f64::max);
            self.lambda = 1e-3 * dmax.max(f64::MIN_POSITIVE);
        }
        for _ in 0..20 {
            let mut a = gn.clone();
            for j in 0..nr {
                a[j * nr + j] += self.lambda;
            }
            let rhs: Vec<f64> = g.iter().map(|v| -v).collect();
            if let Some(delta) = cholesky_solve(nr, &a, &rhs) {
                let mut q = p.clone();
                let mut f = q.flat();
                for (c, z) in f.iter_mut().enumerate() {
                    *z += C64::new(delta[2 * c], delta[2 * c + 1]);
                }
                q.set_flat(&f);
                let f1 = loss(&q, &prob);
                if f1 <= f0 {
                    *p = q;
                    self.lambda = (self.lambda / 3.0).max(1e-300);
                    return Ok(f0);
                }
            }
            self.lambda *= 4.0;
        }
        Ok(f0)
    }
}

impl Default for Lm {
    fn default() -> Self {
        Self::new()
    }
}

/// Solve A x = b for symmetric positive definite A (row-major, lower triangle read) by faer's
/// Cholesky, run sequentially so the result is the same at any thread count; None if A is not
/// positive definite.
pub fn cholesky_solve(n: usize, a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::{cholesky::llt::factor, triangular_solve as tri};
    use faer::{Mat, Par};
    let mut l = Mat::<f64>::from_fn(n, n, |i, j| if j <= i { a[i * n + j] } else { 0.0 });
    let mut mem = MemBuffer::new(factor::cholesky_in_place_scratch::<f64>(
        n,
        Par::Seq,
        Default::default(),
    ));
    factor::cholesky_in_place(
        l.as_mut(),
        Default::default(),
        Par::Seq,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .ok()?;
    let mut x = Mat::<f64>::from_fn(n, 1, |i, _| b[i]);
    tri::solve_lower_triangular_in_place(l.as_ref(), x.as_mut(), Par::Seq);
    tri::solve_upper_triangular_in_place(l.as_ref().transpose(), x.as_mut(), Par::Seq);
    let y: Vec<f64> = (0..n).map(|i| x[(i, 0)]).collect();
    y.iter().all(|v| v.is_finite()).then_some(y)
}
