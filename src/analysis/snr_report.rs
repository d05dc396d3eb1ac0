//! The `snr` procedure ([`run`]): a front end's request ([`SnrRun`]) checked, the device
//! opened, the rows of every batch size measured and reported to a log, the scaling fits
//! (per-stage noise against the seed's sqrt(2^(L - s)) claim, SNR against batch size), and
//! its files, snr.csv and snr.png. The CLI prints the log and keeps the files; the Python
//! module returns the rows.

use super::snr::{self, ExactMode, On, Row, SnrRequest};
use crate::backend::{self, Device, GpuChoice, Opened};
use crate::error::{Error, Result};
use crate::given::Given;
use crate::io::npy::{self, OutDir};
use crate::io::plot::{charts, Chart, Series};
use crate::model::network::Network;
use crate::model::params::Params;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An `snr` measurement as a front end asks for it.
#[derive(Clone, Debug)]
pub struct SnrRun {
    /// The point.
    pub params: Params,
    /// Where the point came from, for the report (`init seed`, a file's path).
    pub about: String,
    /// Seed of the Measure stream's minibatches.
    pub seed: u64,
    /// Batch sizes.
    pub batches: Vec<usize>,
    /// Minibatches per batch size.
    pub k: usize,
    /// Whether to compute the closed-form moments.
    pub exact: ExactMode,
    /// Where to measure.
    pub device: Device,
    /// The GPU path's settings.
    pub gpu: GpuChoice,
    /// Adapters to split each minibatch over (none: one device).
    pub adapters: Vec<String>,
    /// Where to write snr.csv and snr.png (None: nowhere).
    pub out: Option<PathBuf>,
    /// Which settings were given, for the refusals' wording.
    pub given: Given,
}

/// Run `snr`: the report to `log` (the device, the population side, each batch size's table,
/// the fits), the files where `r.out` says, and every row.
pub fn run(r: &SnrRun, log: &mut dyn Write) -> Result<Vec<Row>> {
    let (p, g) = (&r.params, &r.given);
    let net = &p.net;
    let req = SnrRequest::new(net.n(), r.batches.clone(), r.k, r.exact, g)?;
    if r.device == Device::Cpu {
        g.refuse_gpu_settings(
            &format!("{} measures on the CPU f64 path", g.with("device", "cpu")),
            true,
        )?;
    }
    if !p.is_finite() {
        return Err(Error::input("the point has non-finite parameters"));
    }
    // made now, so a bad --out is refused at once; removed again if nothing is written
    let _dir = r.out.as_deref().map(OutDir::create).transpose()?;
    let opened = backend::open_for(r.device, &r.gpu, &r.adapters, p, g, true, log)?;
    let on = match &opened {
        Opened::Gpu(m) => On::Gpu(m),
        Opened::Multi(m) => On::Multi(m),
        Opened::Cpu => On::Cpu,
    };
    let t0 = Instant::now();
    let base = req.baseline(p)?;
    let (pop, ex) = (&base.pop, base.exact.as_ref());
    match ex {
        Some(e) => writeln!(
            log,
            "closed form (N (N + 1) / 2 = {} per-sample gradients): {:.1} s; max |tr A_j - population gradient_j| = {:.2e}",
            net.n() * (net.n() + 1) / 2,
            base.exact_s,
            base.gap(e)
        )?,
        None => writeln!(log, "closed form: skipped ({}, N = {})", g.with("exact", format!("{:?}", r.exact).to_lowercase()), net.n())?,
    }
    writeln!(
        log,
        "snr: N = {}, {}, population loss {:.6e}, |G| = {:.6e}, K = {} minibatches per batch size (stream Measure, seed {})",
        net.n(),
        r.about,
        base.pop_loss,
        pop.iter().map(|v| v * v).sum::<f64>().sqrt(),
        r.k,
        r.seed
    )?;
    if pop.iter().all(|&v| v == 0.0) {
        writeln!(log, "note: the population gradient is exactly zero here (a stationary point): SNR, MeanGSNR, cosines and B_simple are undefined (NaN/inf)")?;
    }
    let rows = req.rows(p, on, r.seed, pop, ex, |b, rows, secs| {
        if let Opened::Multi(m) = &opened {
            writeln!(log, "[device] B = {b}: {}", m.assignment(b))?;
        }
        writeln!(
            log,
            "\nB = {b}: {} minibatches in {secs:.1} s ({:.0} samples/s)",
            r.k,
            (b * r.k) as f64 / secs
        )?;
        for l in snr::table(rows).console() {
            writeln!(log, "{l}")?;
        }
        Ok(())
    })?;
    Fits::of(net, &r.batches, &rows).report(net.stages().len(), log)?;
    if let Some(d) = &r.out {
        write(d, net, &r.batches, &rows, ex.is_some())?;
        writeln!(
            log,
            "total {:.1} s; wrote {} and {}",
            t0.elapsed().as_secs_f64(),
            d.join("snr.csv").display(),
            d.join("snr.png").display()
        )?;
    }
    Ok(rows)
}

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

    /// The fits as the report's lines, for `l` stages.
    pub fn report(&self, l: usize, log: &mut dyn Write) -> Result<()> {
        writeln!(
            log,
            "\nper-stage fit: slope of ln std(g_s) on ({l} - s) ln 2 over stages 1..{l} (the seed claims 0.5)"
        )?;
        for (b, measured, closed) in &self.stage {
            writeln!(log, "  B = {b:>8}: measured {measured:.4}, closed form {closed:.4}")?;
        }
        if !self.batch.is_empty() {
            writeln!(
                log,
                "batch fit: slope of ln(median SNR) on ln B per group (independent minibatches give 0.5)"
            )?;
            for (g, measured, closed) in &self.batch {
                writeln!(log, "  {g:<7} measured {measured:.4}, closed form {closed:.4}")?;
            }
        }
        Ok(())
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
