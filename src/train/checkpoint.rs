//! Training checkpoints: one `.npz` that numpy opens, holding the parameters, the optimizer
//! state, the generator position (the step: the data generator is counter-based), the metric
//! rows so far, the full config as text, and a format version. Written atomically.

use super::config::{TrainConfig, UpdateSite};
use super::metrics::Metric;
use crate::error::{Context, Error, Result};
use crate::io::npy::{self, Npz, Out};
use crate::model::params::Params;
use crate::optim::OptState;
use std::path::{Path, PathBuf};

/// Version of the checkpoint layout; bumped on any change.
pub const FORMAT: u32 = 1;

/// The file name inside a run directory.
pub const FILE: &str = "checkpoint.npz";

/// Everything needed to continue a run exactly.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The run's configuration.
    pub config: TrainConfig,
    /// Steps completed.
    pub step: u32,
    /// Parameters after `step`.
    pub params: Params,
    /// Optimizer state after `step`.
    pub opt: OptState,
    /// The step-1 loss (the divergence test's reference).
    pub first_loss: f64,
    /// metrics.csv rows up to `step`.
    pub metrics: Vec<Metric>,
    /// Where the optimizer's update ran (None in checkpoints written before it was recorded).
    pub update: Option<UpdateSite>,
}

/// The checkpoint path of a run directory.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

impl Checkpoint {
    /// Write atomically to `path` (temp file in the same directory, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = format!("format = {FORMAT}\n{}", self.config.to_text());
        let rows: Vec<f64> = self
            .metrics
            .iter()
            .flat_map(|m| [m.step as f64, m.loss, m.eval, m.rel_op_err])
            .collect();
        let shape = [self.metrics.len(), 4];
        let tw_len = [self.params.tw.len()];
        let mut arrays: Vec<(String, Out)> = vec![
            ("format_version".into(), Out::Scalar(FORMAT as f64)),
            ("config".into(), Out::U8(text.as_bytes())),
            ("step".into(), Out::Scalar(self.step as f64)),
            ("first_loss".into(), Out::Scalar(self.first_loss)),
            ("M".into(), Out::C128(&[2, 2], &self.params.m)),
            ("twiddles".into(), Out::C128(&tw_len, &self.params.tw)),
            ("opt_step".into(), Out::Scalar(self.opt.step as f64)),
            ("metrics".into(), Out::F64(&shape, &rows)),
        ];
        let lens: Vec<usize> = self.opt.slots.iter().map(|(_, v)| v.len()).collect();
        for ((name, v), len) in self.opt.slots.iter().zip(&lens) {
            arrays.push((format!("opt_{name}"), Out::C128(std::slice::from_ref(len), v)));
        }
        if let Some(u) = self.update {
            arrays.push(("update".into(), Out::U8(u.name().as_bytes())));
        }
        let named: Vec<(&str, Out)> = arrays.iter().map(|(n, o)| (n.as_str(), *o)).collect();
        npy::write_npz(path, &named)
    }

    /// Read and check a checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        Npz::open(path)
            .and_then(|mut z| Self::from_npz(&mut z))
            .with_context(|| format!("checkpoint {}", path.display()))
    }

    /// Read and check a checkpoint from an open archive.
    pub fn from_npz(z: &mut Npz) -> Result<Self> {
        let version = scalar(z, "format_version")?;
        if version != FORMAT as f64 {
            return Err(Error::input(format!(
                "format_version {version}: this fftlearn reads format {FORMAT}"
            )));
        }
        let text = z.read_u8("config", 1 << 16)?;
        let text = String::from_utf8(text).map_err(|_| Error::input("config is not UTF-8 text"))?;
        let config = TrainConfig::from_text(&text)?;
        let step = whole(scalar(z, "step")?, "step", u32::MAX as f64)? as u32;
        let first_loss = scalar(z, "first_loss")?;
        let params = Params::from_npz(z)?;
        if params.net.n() != config.n {
            return Err(Error::input(format!(
                "twiddles are for N = {} but the config says n = {}",
                params.net.n(),
                config.n
            )));
        }
        let opt_step = whole(scalar(z, "opt_step")?, "opt_step", 2f64.powi(53))? as u64;
        let mut names: Vec<String> = z
            .names()
            .into_iter()
            .filter(|n| n.starts_with("opt_") && n != "opt_step")
            .collect();
        names.sort();
        let mut slots = Vec::new();
        for name in names {
            let (_, v) = z.read_c128(&name, &[None], params.len())?;
            if v.is_empty() {
                return Err(Error::input(format!("optimizer slot '{name}' is empty")));
            }
            slots.push((name["opt_".len()..].to_string(), v));
        }
        for need in config.optimizer.slots(config.momentum) {
            if !slots.iter().any(|(n, _)| n == need) {
                let who = match config.optimizer {
                    crate::optim::Optimizer::Adam | crate::optim::Optimizer::Phase => "Adam".to_string(),
                    o => o.to_string(),
                };
                return Err(Error::input(format!(
                    "optimizer state has no {who} slot '{need}' (array 'opt_{need}')"
                )));
            }
        }
        let (_, rows) = z.read_f64("metrics", &[None, Some(4)], 4 << 24)?;
        let metrics = rows
            .chunks_exact(4)
            .map(|r| {
                Ok(Metric {
                    step: whole(r[0], "metrics step", u32::MAX as f64)? as u32,
                    loss: r[1],
                    eval: r[2],
                    rel_op_err: r[3],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if metrics.last().is_some_and(|m| m.step > step) {
            return Err(Error::input("metrics rows run past the checkpoint's step"));
        }
        let update = if z.has("update") {
            let t = z.read_u8("update", 64)?;
            let t = String::from_utf8(t).map_err(|_| Error::input("update is not UTF-8 text"))?;
            Some(t.parse::<UpdateSite>()?)
        } else {
            None
        };
        Ok(Checkpoint {
            config,
            step,
            params,
            opt: OptState { step: opt_step, slots },
            first_loss,
            metrics,
            update,
        })
    }
}

fn scalar(z: &mut Npz, name: &str) -> Result<f64> {
    let (_, v) = z.read_f64(name, &[], 1)?;
    Ok(v[0])
}

fn whole(v: f64, what: &str, max: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 && v <= max && v.fract() == 0.0 {
        Ok(v)
    } else {
        Err(Error::input(format!(
            "{what} = {v}: expected a whole number in 0..={max}"
        )))
    }
}
