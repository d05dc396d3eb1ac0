//! The lane-blocked f64 butterfly kernels: forward with stored activations, the loss
//! adjoint, and the reverse pass accumulating per-lane gradient partials.

use crate::model::data::{Batch, Source};
use crate::model::network::{Network, Stage, M_ENTRIES};
use crate::model::params::Params;
use num_complex::Complex64 as C64;

/// Samples per block (structure-of-arrays lanes).
pub const LANES: usize = 8;
type Lane = [f64; LANES];
const ZERO: Lane = [0.0; LANES];

/// Per-thread scratch for one N.
pub struct Work {
    net: Network,
    src: Source,
    /// Activations: `act[s]` (s = 0..n-1) is the output of stage s (stage 0 = the split).
    re: Vec<Lane>,
    im: Vec<Lane>,
    x: Vec<Lane>,
    tre: Vec<Lane>,
    tim: Vec<Lane>,
    g0re: Vec<Lane>,
    g0im: Vec<Lane>,
    g1re: Vec<Lane>,
    g1im: Vec<Lane>,
    /// Per-lane gradient accumulators: M (4) then twiddles (N-1).
    gre: Vec<Lane>,
    gim: Vec<Lane>,
    xs: Vec<f64>,
    ts: Vec<C64>,
}

impl Work {
    pub fn new(net: &Network) -> Self {
        let (n, k) = (net.n(), net.bins());
        let layers = net.stages().len() + 1;
        Work {
            net: net.clone(),
            src: Source::new(net),
            re: vec![ZERO; layers * n],
            im: vec![ZERO; layers * n],
            x: vec![ZERO; n],
            tre: vec![ZERO; k],
            tim: vec![ZERO; k],
            g0re: vec![ZERO; n],
            g0im: vec![ZERO; n],
            g1re: vec![ZERO; n],
            g1im: vec![ZERO; n],
            gre: vec![ZERO; net.n_params()],
            gim: vec![ZERO; net.n_params()],
            xs: vec![0.0; n],
            ts: vec![C64::default(); k],
        }
    }

    pub fn n(&self) -> usize {
        self.net.n()
    }

    /// Load samples lo..hi (at most LANES) of `batch` into the lanes; unused lanes are zero
    /// with zero target, so they add nothing to the loss or the gradient.
    fn load(&mut self, batch: &Batch, lo: usize, hi: usize) {
        for l in 0..LANES {
            let b = lo + l;
            if b < hi {
                self.src.fill(batch, b, &mut self.xs, &mut self.ts);
            } else {
                self.xs.fill(0.0);
                self.ts.fill(C64::default());
            }
            for (xv, &v) in self.x.iter_mut().zip(&self.xs) {
                xv[l] = v;
            }
            for ((r, i), t) in self.tre.iter_mut().zip(self.tim.iter_mut()).zip(&self.ts) {
                r[l] = t.re;
                i[l] = t.im;
            }
        }
    }

    fn load_x(&mut self, x: &[f64]) {
        let n = self.n();
        for l in 0..LANES {
            let row = x.get(l * n..(l + 1) * n);
            for (i, xv) in self.x.iter_mut().enumerate() {
                xv[l] = row.map_or(0.0, |r| r[i]);
            }
        }
    }

    /// Forward through all layers, storing every layer's output.
    fn forward(&mut self, p: &Params) {
        let n = self.n();
        let h = n / 2;
        let m = p.m;
        {
            let (a0r, a0i) = (&mut self.re[..n], &mut self.im[..n]);
            for i in 0..h {
                let (a, b) = (self.x[i], self.x[i + h]);
                for l in 0..LANES {
                    a0r[i][l] = m[0].re * a[l] + m[1].re * b[l];
                    a0i[i][l] = m[0].im * a[l] + m[1].im * b[l];
                    a0r[h + i][l] = m[2].re * a[l] + m[3].re * b[l];
                    a0i[h + i][l] = m[2].im * a[l] + m[3].im * b[l];
                }
            }
        }
        for (li, st) in self.net.stages().iter().enumerate() {
            let (pre, post) = self.re.split_at_mut((li + 1) * n);
            let (pim, qim) = self.im.split_at_mut((li + 1) * n);
            stage_forward(st, &p.tw, &pre[li * n..], &pim[li * n..], &mut post[..n], &mut qim[..n]);
        }
    }

    fn out_offset(&self) -> usize {
        self.net.stages().len() * self.n()
    }

    /// Process samples lo..hi: returns (sum of squared errors, gradient partial if backward).
    pub fn task(&mut self, p: &Params, batch: &Batch, lo: usize, hi: usize, backward: bool) -> (f64, Vec<C64>) {
        let b = batch.len(&self.net);
        let scale = 2.0 / (b * self.net.bins()) as f64;
        let mut sq = ZERO;
        self.gre.fill(ZERO);
        self.gim.fill(ZERO);
        let mut s = lo;
        while s < hi {
            let e = (s + LANES).min(hi);
            self.load(batch, s, e);
            self.forward(p);
            let block = self.residual(scale);
            for l in 0..LANES {
                sq[l] += block[l];
            }
            if backward {
                self.backward(p);
            }
            s = e;
        }
        let loss: f64 = sq.iter().sum();
        let g = if backward {
            self.gre
                .iter()
                .zip(&self.gim)
                .map(|(r, i)| C64::new(r.iter().sum(), i.iter().sum()))
                .collect()
        } else {
            Vec::new()
        };
        (loss, g)
    }

    /// Residual of the forward pass just done: the squared error per lane, and the output
    /// adjoint g0 = dL/dRe y + i dL/dIm y = scale (y - t), with scale = 2 / (B K).
    fn residual(&mut self, scale: f64) -> Lane {
        let o = self.out_offset();
        let mut sq = ZERO;
        self.g0re.fill(ZERO);
        self.g0im.fill(ZERO);
        for r in 0..self.net.bins() {
            let (yr, yi) = (self.re[o + r], self.im[o + r]);
            for l in 0..LANES {
                let dr = yr[l] - self.tre[r][l];
                let di = yi[l] - self.tim[r][l];
                sq[l] += dr * dr + di * di;
                self.g0re[r][l] = scale * dr;
                self.g0im[r][l] = scale * di;
            }
        }
        sq
    }

    /// Per-sample gradients of samples lo..hi (at most LANES) of `batch`: each as if it were a
    /// batch of one (scale 2 / K), written to `out` as (hi - lo) rows of real parameters
    /// (re, im per complex parameter, M first).
    pub fn per_sample(&mut self, p: &Params, batch: &Batch, lo: usize, hi: usize, out: &mut [f64]) {
        debug_assert!(hi - lo <= LANES);
        let np = self.gre.len();
        self.gre.fill(ZERO);
        self.gim.fill(ZERO);
        self.load(batch, lo, hi);
        self.forward(p);
        self.residual(2.0 / self.net.bins() as f64);
        self.backward(p);
        for (l, row) in out.chunks_mut(2 * np).take(hi - lo).enumerate() {
            for (j, v) in row.chunks_mut(2).enumerate() {
                v[0] = self.gre[j][l];
                v[1] = self.gim[j][l];
            }
        }
    }

    /// Reverse pass from the output adjoint in g0, accumulating into gre/gim.
    fn backward(&mut self, p: &Params) {
        let n = self.n();
        let h = n / 2;
        for (li, st) in self.net.stages().iter().enumerate().rev() {
            let (inr, ini) = (&self.re[li * n..(li + 1) * n], &self.im[li * n..(li + 1) * n]);
            stage_backward(
                st,
                &p.tw,
                inr,
                ini,
                (&self.g0re, &self.g0im),
                (&mut self.g1re, &mut self.g1im),
                (&mut self.gre[M_ENTRIES..], &mut self.gim[M_ENTRIES..]),
            );
            std::mem::swap(&mut self.g0re, &mut self.g1re);
            std::mem::swap(&mut self.g0im, &mut self.g1im);
        }
        // split: y0[r][i] = M[r][0] x[i] + M[r][1] x[i+h]  =>  dM[r][c] += sum_i g0[r][i] x[i + c h]
        for r in 0..2 {
            for c in 0..2 {
                let (mut ar, mut ai) = (ZERO, ZERO);
                for i in 0..h {
                    let (gr, gi, xv) = (self.g0re[r * h + i], self.g0im[r * h + i], self.x[i + c * h]);
                    for l in 0..LANES {
                        ar[l] += gr[l] * xv[l];
                        ai[l] += gi[l] * xv[l];
                    }
                }
                for l in 0..LANES {
                    self.gre[2 * r + c][l] += ar[l];
                    self.gim[2 * r + c][l] += ai[l];
                }
            }
        }
    }

    /// Forward only for up to LANES rows of `x`, writing their N/2+1 outputs to `out`.
    pub fn forward_block(&mut self, p: &Params, x: &[f64], out: &mut [C64]) {
        let k = self.net.bins();
        self.load_x(x);
        self.forward(p);
        let o = self.out_offset();
        for (l, row) in out.chunks_mut(k).enumerate() {
            for (r, v) in row.iter_mut().enumerate() {
                *v = C64::new(self.re[o + r][l], self.im[o + r][l]);
            }
        }
    }
}

/// One twiddle stage forward: input (e, 2q) -> output (2e, q).
#[inline(always)]
fn stage_forward(st: &Stage, tw: &[C64], inr: &[Lane], ini: &[Lane], outr: &mut [Lane], outi: &mut [Lane]) {
    for i in 0..st.e {
        let w = tw[st.tw(i)];
        for j in 0..st.q {
            let (t, b) = st.inputs(i, j);
            let (o1, o2) = st.outputs(i, j);
            let (tr, ti, br, bi) = (inr[t], ini[t], inr[b], ini[b]);
            let (mut r1, mut i1, mut r2, mut i2) = (ZERO, ZERO, ZERO, ZERO);
            for l in 0..LANES {
                let pr = w.re * br[l] - w.im * bi[l];
                let pi = w.re * bi[l] + w.im * br[l];
                r1[l] = tr[l] + pr;
                i1[l] = ti[l] + pi;
                r2[l] = tr[l] - pr;
                i2[l] = ti[l] - pi;
            }
            outr[o1] = r1;
            outi[o1] = i1;
            outr[o2] = r2;
            outi[o2] = i2;
        }
    }
}

/// One twiddle stage backward. With p = w * bot, out_top = top + p, out_bot = top - p:
/// d top = g_t + g_b; d p = g_t - g_b; d bot = conj(w) d p; d w += conj(bot) d p.
#[inline(always)]
fn stage_backward(
    st: &Stage,
    tw: &[C64],
    inr: &[Lane],
    ini: &[Lane],
    gout: (&[Lane], &[Lane]),
    gin: (&mut [Lane], &mut [Lane]),
    gw: (&mut [Lane], &mut [Lane]),
) {
    let (gor, goi) = gout;
    let (gir, gii) = gin;
    let (gwr, gwi) = gw;
    for i in 0..st.e {
        let k = st.tw(i);
        let w = tw[k];
        let (mut awr, mut awi) = (gwr[k], gwi[k]);
        for j in 0..st.q {
            let (t, b) = st.inputs(i, j);
            let (o1, o2) = st.outputs(i, j);
            let (g1r, g1i, g2r, g2i) = (gor[o1], goi[o1], gor[o2], goi[o2]);
            let (br, bi) = (inr[b], ini[b]);
            let (mut tr, mut ti, mut bgr, mut bgi) = (ZERO, ZERO, ZERO, ZERO);
            for l in 0..LANES {
                tr[l] = g1r[l] + g2r[l];
                ti[l] = g1i[l] + g2i[l];
                let pr = g1r[l] - g2r[l];
                let pi = g1i[l] - g2i[l];
                bgr[l] = w.re * pr + w.im * pi;
                bgi[l] = w.re * pi - w.im * pr;
                awr[l] += br[l] * pr + bi[l] * pi;
                awi[l] += br[l] * pi - bi[l] * pr;
            }
            gir[t] = tr;
            gii[t] = ti;
            gir[b] = bgr;
            gii[b] = bgi;
        }
        gwr[k] = awr;
        gwi[k] = awi;
    }
}
