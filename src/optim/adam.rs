//! Adam exactly as `torch.optim.Adam` (single-tensor path, no weight decay, no amsgrad) on
//! complex parameters: torch views a complex tensor as real pairs, so the moments are kept
//! per real and per imaginary part.

use num_complex::Complex64 as C64;

/// torch's default beta2: the second moments average the squared gradients of about the last
/// 1 / (1 - beta2) = 1,000 steps.
pub const BETA2: f64 = 0.999;

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// beta1.
    pub beta1: f64,
    /// beta2.
    pub beta2: f64,
    /// eps.
    pub eps: f64,
}

impl From<&Adam> for crate::backend::gpu::AdamHyper {
    fn from(a: &Adam) -> Self {
        crate::backend::gpu::AdamHyper {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
        }
    }
}

impl Adam {
    /// The hyper-parameters as the GPU's on-device update takes them.
    pub fn hyper(&self) -> crate::backend::gpu::AdamHyper {
        self.into()
    }

    /// torch's defaults with the given learning rate: betas (0.9, 0.999), eps 1e-8.
    pub fn new(lr: f64) -> Self {
        Self::with_beta2(lr, BETA2)
    }

    /// torch's defaults but for beta2 (`--beta2`): betas (0.9, beta2), eps 1e-8.
    pub fn with_beta2(lr: f64, beta2: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2,
            eps: 1e-8,
        }
    }
}

/// Adam's state: the step count and both moments, per real component.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    /// Steps taken.
    pub step: u64,
    /// First moments (re, im per complex parameter).
    pub m: Vec<C64>,
    /// Second moments (re, im per complex parameter).
    pub v: Vec<C64>,
}

impl AdamState {
    /// Zero state for `len` complex parameters.
    pub fn new(len: usize) -> Self {
        AdamState {
            step: 0,
            m: vec![C64::default(); len],
            v: vec![C64::default(); len],
        }
    }
}

#[inline(always)]
fn update(h: &Adam, p: &mut f64, g: f64, m: &mut f64, v: &mut f64, step_size: f64, bc2_sqrt: f64) {
    // exp_avg.lerp_(grad, 1 - beta1): weight < 0.5 so lerp = self + w * (end - self)
    *m += (1.0 - h.beta1) * (g - *m);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value = 1 - beta2)
    *v = *v * h.beta2 + (1.0 - h.beta2) * (g * g);
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    let denom = v.sqrt() / bc2_sqrt + h.eps;
    // param.addcdiv_(exp_avg, denom, value = -step_size)
    *p += -step_size * *m / denom;
}

impl Adam {
    /// One step: updates `params` in place from `grad` (PyTorch convention dL/dRe + i dL/dIm).
    pub fn step(&self, state: &mut AdamState, params: &mut [C64], grad: &[C64]) {
        state.step += 1;
        let t = state.step as f64;
        let bc1 = 1.0 - self.beta1.powf(t);
        let bc2 = 1.0 - self.beta2.powf(t);
        let step_size = self.lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(state.m.iter_mut())
            .zip(state.v.iter_mut())
        {
            update(self, &mut p.re, g.re, &mut m.re, &mut v.re, step_size, bc2_sqrt);
            update(self, &mut p.im, g.im, &mut m.im, &mut v.im, step_size, bc2_sqrt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_component_by_lr() {
        // at step 1 the bias-corrected update is g/|g| * lr (up to eps)
        let h = Adam::new(0.01);
        let mut st = AdamState::new(2);
        let mut p = vec![C64::new(1.0, 2.0), C64::new(0.0, 0.0)];
        h.step(&mut st, &mut p, &[C64::new(3.0, -0.5), C64::new(0.0, 1e-3)]);
        assert!(
            (p[0].re - 0.99).abs() < 1e-9 && (p[0].im - 2.01).abs() < 1e-9,
            "{:?}",
            p[0]
        );
        assert_eq!(p[1].re, 0.0); // zero gradient: no move
        assert!((p[1].im + 0.01).abs() < 1e-6);
    }

    #[test]
    fn matches_hand_computed_second_step() {
        let h = Adam::new(0.1);
        let mut st = AdamState::new(1);
        let mut p = vec![C64::new(0.0, 0.0)];
        h.step(&mut st, &mut p, &[C64::new(1.0, 0.0)]);
        h.step(&mut st, &mut p, &[C64::new(-2.0, 0.0)]);
        let m = 0.9 * 0.1 * 1.0 + 0.1 * -2.0;
        let v = 0.999 * 0.001 * 1.0 + 0.001 * 4.0;
        let p1 = -0.1 / (1.0 + 1e-8);
        let want = p1 - 0.1 / (1.0 - 0.81) * m / ((v / (1.0f64 - 0.999 * 0.999)).sqrt() + 1e-8);
        assert!((p[0].re - want).abs() < 1e-12, "{} vs {want}", p[0].re);
    }
}
