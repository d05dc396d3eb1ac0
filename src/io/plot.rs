//! PNG charts: line and scatter charts on linear or log axes, side by side, drawn with
//! plotters' bitmap backend and the bundled DejaVu Sans (no system fonts needed), written
//! atomically (a temporary file renamed over the target).

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // the bytes are a valid TTF compiled into the binary
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One named series of (x, y) points.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Draw markers only (no line).
    pub markers: bool,
}

/// One chart panel.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Title above the panel.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic x axis (non-positive x are dropped).
    pub log_x: bool,
    /// Logarithmic y axis (non-positive y are dropped).
    pub log_y: bool,
    /// The series.
    pub series: Vec<Series>,
}

fn range(v: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in v.filter(|x| x.is_finite() && (!log || *x > 0.0)) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return if log { (1e-1, 1e1) } else { (0.0, 1.0) };
    }
    if log {
        if hi <= lo * 1.0001 {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo / 1.5, hi * 1.5)
        }
    } else {
        let pad = if hi > lo {
            0.05 * (hi - lo)
        } else {
            lo.abs().max(1.0) * 0.5
        };
        (lo - pad, hi + pad)
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    c: &Chart,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let keep = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!c.log_x || x > 0.0) && (!c.log_y || y > 0.0);
    let (x0, x1) = range(
        c.series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| keep(p)).map(|p| p.0)),
        c.log_x,
    );
    let (y0, y1) = range(
        c.series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| keep(p)).map(|p| p.1)),
        c.log_y,
    );
    let mut b = ChartBuilder::on(area);
    b.caption(&c.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70);
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(c.x_label.as_str())
                .y_desc(c.y_label.as_str())
                .label_style(("sans-serif", 13))
                .y_label_formatter(&|v| fmt_tick(*v))
                .x_label_formatter(&|v| fmt_tick(*v))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, s) in c.series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| keep(p)).collect();
                // a lone point has no line to draw: mark it
                if s.markers || pts.len() == 1 {
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| e.to_string())?
                        .label(s.label.as_str())
                        .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
                } else {
                    chart
                        .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                        .map_err(|e| e.to_string())?
                        .label(s.label.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    match (c.log_x, c.log_y) {
        (false, false) => body!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(|e| e.to_string())?),
        (true, false) => body!(b
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(|e| e.to_string())?),
        (false, true) => body!(b
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
            .map_err(|e| e.to_string())?),
        (true, true) => body!(b
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(|e| e.to_string())?),
    }
    Ok(())
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e4).contains(&a) {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Draw `charts` side by side into a PNG at `path`, each panel `w` x `h` pixels.
pub fn charts(path: &Path, charts: &[Chart], w: u32, h: u32) -> Result<()> {
    render(path, charts.len(), w, h, |area, i| draw_panel(area, &charts[i]))
}

/// One heat-map panel: a value per (row, column) cell (None: no data, drawn grey).
#[derive(Clone, Debug)]
pub struct Heat {
    /// Title above the panel.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Column labels, left to right.
    pub cols: Vec<String>,
    /// Row labels, bottom to top.
    pub rows: Vec<String>,
    /// `values[row][col]`.
    pub values: Vec<Vec<Option<f64>>>,
    /// The text drawn in each cell, `labels[row][col]` (lines split at '\n'); empty: the
    /// value itself.
    pub labels: Vec<Vec<String>>,
    /// The value drawn red (low end of the colour scale).
    pub lo: f64,
    /// The value drawn green (high end).
    pub hi: f64,
    /// Colour on a log scale.
    pub log: bool,
    /// Reverse the colours (high = red), e.g. for steps where fewer is better.
    pub reverse: bool,
}

fn heat_color(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let (a, b, u) = if t < 0.5 {
        ((215.0, 48.0, 39.0), (254.0, 224.0, 139.0), t * 2.0)
    } else {
        ((254.0, 224.0, 139.0), (26.0, 152.0, 80.0), t * 2.0 - 1.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw_heat<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    hm: &Heat,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let (nc, nr) = (hm.cols.len().max(1), hm.rows.len().max(1));
    let mut chart = ChartBuilder::on(area)
        .caption(&hm.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..nc as f64, 0f64..nr as f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(nc * 2 + 1)
        .y_labels(nr * 2 + 1)
        .x_desc(hm.x_label.as_str())
        .y_desc(hm.y_label.as_str())
        .label_style(("sans-serif", 13))
        .x_label_formatter(&|v| {
            let i = (v - 0.5).round();
            if (v - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                hm.cols.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| {
            let i = (v - 0.5).round();
            if (v - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                hm.rows.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|e| e.to_string())?;
    let scale = |v: f64| {
        let t = if hm.log {
            (v.max(f64::MIN_POSITIVE).ln() - hm.lo.ln()) / (hm.hi.ln() - hm.lo.ln())
        } else {
            (v - hm.lo) / (hm.hi - hm.lo)
        };
        let t = if t.is_finite() { t } else { 1.0 };
        if hm.reverse {
            1.0 - t
        } else {
            t
        }
    };
    for (r, row) in hm.values.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let (x, y) = (c as f64, r as f64);
            let fill = match v {
                Some(v) if v.is_finite() => heat_color(scale(*v)),
                _ => RGBColor(200, 200, 200),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.02, y + 0.02), (x + 0.98, y + 0.98)],
                    fill.filled(),
                )))
                .map_err(|e| e.to_string())?;
            let text = match (hm.labels.get(r).and_then(|l| l.get(c)), v) {
                (Some(l), _) if !l.is_empty() => l.clone(),
                (_, Some(v)) if v.is_finite() => fmt_tick(*v),
                (_, Some(_)) => "-".to_string(),
                (_, None) => String::new(),
            };
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                // lines centred on the cell, top to bottom, 0.22 of a cell apart
                let dy = 0.6 + 0.22 * ((lines.len() as f64 - 1.0) / 2.0 - i as f64);
                chart
                    .draw_series(std::iter::once(Text::new(
                        line.to_string(),
                        (x + 0.08, y + dy),
                        ("sans-serif", 13).into_font().color(&BLACK),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Draw heat maps side by side into a PNG at `path`, each panel `w` x `h` pixels.
pub fn heatmaps(path: &Path, maps: &[Heat], w: u32, h: u32) -> Result<()> {
    render(path, maps.len(), w, h, |area, i| draw_heat(area, &maps[i]))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Write `n` panels side by side into a PNG atomically (a temporary .png renamed over `path`).
/// The words of a failed write of the image (a full disk, say), not the backend's debug dump.
fn present_error(e: plotters::drawing::DrawingAreaErrorKind<plotters_bitmap::BitMapBackendError>) -> String {
    use plotters::drawing::DrawingAreaErrorKind as A;
    use plotters_backend::DrawingErrorKind as D;
    use plotters_bitmap::BitMapBackendError as B;
    match e {
        A::BackendError(D::DrawingError(B::IOError(io))) => io.to_string(),
        A::BackendError(D::DrawingError(B::ImageError(i))) => i.to_string(),
        other => other.to_string(),
    }
}

fn render(
    path: &Path,
    n: usize,
    w: u32,
    h: u32,
    draw: impl Fn(&Area, usize) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    if n == 0 {
        return Err(Error::input("nothing to plot"));
    }
    crate::io::npy::check_out_file(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::runtime(format!("cannot create {}: {e}", dir.display())))?;
    // the image encoder picks the format from the extension, so the temporary name ends in .png
    let tmp = dir.join(format!(".plot-tmp{}-{n}.png", std::process::id()));
    let res = (|| -> std::result::Result<(), String> {
        let root = BitMapBackend::new(&tmp, (w * n as u32, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((1, n));
        for (i, p) in panels.iter().enumerate() {
            draw(p, i)?;
        }
        root.present().map_err(present_error)?;
        Ok(())
    })();
    match res.and_then(|_| std::fs::rename(&tmp, path).map_err(|e| e.to_string())) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::runtime(format!("cannot write plot {}: {e}", path.display())))
        }
    }
}
