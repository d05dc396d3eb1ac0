//! What is minimised, as exact f64 mathematics: the population problem, its loss and the
//! exact Gauss-Newton diagonal ([`problem`]); the exact Hessian and Gauss-Newton operators and
//! their spectra ([`hessian`]).

pub mod hessian;
pub mod problem;
