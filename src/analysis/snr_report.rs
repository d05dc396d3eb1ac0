//! What an `snr` measurement reports beyond its rows: the scaling fits (per-stage noise
//! against the seed's sqrt(2^(L - s)) claim, SNR against batch size) and its files, snr.csv and
//! snr.png. The CLI prints the fits and writes the files through here; the Python module
//! returns the rows.

use super::snr::{self, Row};
use crate::error::Result;
use crate::io::npy;
use crate::io::plot::{charts, Chart, Series};
use crate::model::network::Network;
use std::path::Path;

/// The scaling fits of an `snr` measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Fits {
    /// Per batch size B: the slope of ln std(g_s) on (L - s) ln 2 over the stages, measured
    /// and closed form (the seed claims 0.5).
    pub stage: Vec<(usize, f64, f64)>,
    /// Per group, with at least two batch sizes: the slope of ln(median SNR) on ln B, measured
    /// and closed form (independent minibatches give 0.5).
    pub batch: Vec<(String, f64, f64)>,
}

impl Fits {
    /// The fits of `rows` (all batch sizes of one measurement at `net`).
    pub fn of(net: &Network, batches: &[usize], rows: &[Row]) -> Fits {
        let stage = batches
            .iter()
            .map(|&b| {
                (
                    b,
                    snr::stage_slope(rows, b, |r| r.std),
                    snr::stage_slope(rows, b, |r| r.std_exact),
                )
            })
            .collect();
        let batch = if batches.len() >= 2 {
            snr::groups(net)
                .into_iter()
                .map(|(g, _)| {
                    let m = snr::batch_slope(rows, &g, |r| r.snr_median);
                    let e = snr::batch_slope(rows, &g, |r| r.snr_exact_median);
                    (g, m, e)
                })
                .collect()
        } else {
            Vec::new()
        };
        Fits { stage, batch }
    }
}

/// Write `dir/snr.csv` (every row) and `dir/snr.png` (std and median SNR against B per group;
/// the per-sample std by stage at the largest B, with the closed form if `with_exact`, and
/// the seed's sqrt(2^(L - s)) line through the last stage).
pub fn write(dir: &Path, net: &Network, batches: &[usize], rows: &[Row], with_exact: bool) -> Result<()> {
    let all_rows = rows;
    let l = net.stages().len();
    npy::write_text(&dir.join("snr.csv"), &snr::table(rows).csv())?;
    let groups: Vec<String> = snr::groups(net)
        .into_iter()
        .map(|g| g.0)
        .filter(|g| g != "all")
        .collect();
    let per_group = |pick: &dyn Fn(&snr::Row) -> f64| -> Vec<Series> {
        groups
            .iter()
            .map(|g| Series {
                label: g.clone(),
                points: all_rows
                    .iter()
                    .filter(|r| &r.group == g)
                    .map(|r| (r.batch as f64, pick(r)))
                    .collect(),
                markers: false,
            })
            .collect()
    };
    let bmax = *batches.iter().max().expect("non-empty");
    let per_sample_std =
        |r: &snr::Row, exact: bool| (if exact { r.std_exact } else { r.std }) * (r.batch as f64).sqrt();
    let stage_series = |exact: bool, label: &str| Series {
        label: label.into(),
        points: all_rows
            .iter()
            .filter(|r| r.batch == bmax && r.group.starts_with("stage"))
            .enumerate()
            .map(|(i, r)| ((i + 1) as f64, per_sample_std(r, exact)))
            .collect(),
        markers: true,
    };
    let mut stage_panel = vec![stage_series(false, &format!("measured, B = {bmax}"))];
    if with_exact {
        stage_panel.push(stage_series(true, "closed form"));
    }
    if let Some(last) = stage_panel[0].points.last().copied() {
        stage_panel.push(Series {
            label: format!("seed: sqrt(2^({l} - s)), through stage {l}"),
            points: (1..=l)
                .map(|s| (s as f64, last.1 * 2f64.powf((l - s) as f64 / 2.0)))
                .collect(),
            markers: false,
        });
    }
    charts(
        &dir.join("snr.png"),
        &[
            Chart {
                title: "std of the minibatch gradient".into(),
                x_label: "batch size B".into(),
                y_label: "sqrt(mean var g)".into(),
                log_x: true,
                log_y: true,
                series: per_group(&|r| r.std),
            },
            Chart {
                title: "median SNR |E g| / std(g)".into(),
                x_label: "batch size B".into(),
                y_label: "SNR".into(),
                log_x: true,
                log_y: true,
                series: per_group(&|r| r.snr_median),
            },
            Chart {
                title: "per-sample std by stage".into(),
                x_label: "stage s".into(),
                y_label: "sqrt(B mean var g)".into(),
                log_x: false,
                log_y: true,
                series: stage_panel,
            },
        ],
        560,
        480,
    )?;
    Ok(())
}
