//! One row per logged step (`metrics.csv`): the step, its loss, the seed's eval and the
//! relative operator error; written by the loop, read back by `plot`.

use crate::error::{Error, Result};
use std::path::Path;

/// The header of metrics.csv.
pub const HEADER: &str = "step,loss,eval_mse,rel_op_err";

/// One row of metrics.csv.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Step.
    pub step: u32,
    /// Training minibatch loss at this step (before the update).
    pub loss: f64,
    /// The seed's eval: mean per-example loss over fresh random examples.
    pub eval: f64,
    /// ||W-F||_F / ||F||_F after the update.
    pub rel_op_err: f64,
}

/// The text of metrics.csv for these rows.
pub fn csv_of(metrics: &[Metric]) -> String {
    let mut csv = format!("{HEADER}\n");
    for m in metrics {
        csv.push_str(&format!("{},{:e},{:e},{:e}\n", m.step, m.loss, m.eval, m.rel_op_err));
    }
    csv
}

/// Read a metrics.csv written by a run, naming the file and line of anything malformed.
pub fn read_metrics(path: &Path) -> Result<Vec<Metric>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))?;
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    if head != HEADER {
        return Err(Error::input(format!(
            "{}: header '{head}' is not fftlearn's metrics.csv header '{HEADER}'",
            path.display()
        )));
    }
    lines
        .enumerate()
        .map(|(i, l)| {
            let bad = || Error::input(format!("{} line {}: '{l}' is not '{HEADER}'", path.display(), i + 2));
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != 4 {
                return Err(bad());
            }
            Ok(Metric {
                step: f[0].parse().map_err(|_| bad())?,
                loss: f[1].parse().map_err(|_| bad())?,
                eval: f[2].parse().map_err(|_| bad())?,
                rel_op_err: f[3].parse().map_err(|_| bad())?,
            })
        })
        .collect()
}
