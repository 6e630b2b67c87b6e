//! Latency percentile plots: one panel per scenario, one line per server,
//! drawn as SVG from the reports' percentiles.
//!
//! The x axis counts nines (50%, 90%, 99%, 99.9%, ...) so the tail gets as
//! much room as the median; the y axis is logarithmic, since tails are often
//! orders of magnitude above the median.

use std::path::Path;

use plotters::backend::SVGBackend;
use plotters::prelude::*;

use crate::error::BenchError;
use crate::report::Report;

/// Where the maximum sits on the x axis, past 99.99% (which is at 4).
const MAX_X: f64 = 5.0;
/// Pixel size of one panel.
const PANEL: (u32, u32) = (560, 360);
/// Colours of the series, in order of first appearance.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// The x position of a percentile: how many nines it has (90% is 1, 99.9% is 3),
/// with 100% (the maximum) at [`MAX_X`].
pub fn nines(percentile: f64) -> f64 {
    if percentile >= 100.0 {
        MAX_X
    } else {
        (-(1.0 - percentile / 100.0).log10()).min(MAX_X)
    }
}

/// The label of an x position: the percentile it stands for.
fn nines_label(x: f64) -> String {
    if x >= MAX_X - 1e-9 {
        return "max".to_owned();
    }
    let percentile = 100.0 * (1.0 - 10f64.powf(-x));
    // 99% needs no decimal, 99.9% one, 99.99% two.
    let decimals = (x.round() as usize).saturating_sub(2);
    format!("{percentile:.decimals$}%")
}

/// Draws the latency percentiles of `reports` as an SVG at `path`: one panel
/// per distinct title (scenario and shape), one line per series name.
///
/// # Errors
/// [`BenchError::Plot`] when there is nothing to draw or the file cannot be written.
pub fn latency_svg(reports: &[Report], path: &Path) -> Result<(), BenchError> {
    let fail = |message: String| BenchError::Plot {
        path: path.to_owned(),
        message,
    };
    let svg = render(reports).map_err(fail)?;
    std::fs::write(path, svg).map_err(|err| fail(err.to_string()))
}

/// The SVG text of [`latency_svg`], for a caller that writes it itself (to stdout, say).
///
/// # Errors
/// [`BenchError::Plot`], its path `-`, when no report has latencies or
/// the drawing fails.
pub fn render_svg(reports: &[Report]) -> Result<String, BenchError> {
    render(reports).map_err(|message| BenchError::Plot {
        path: "-".into(),
        message,
    })
}

/// The SVG text of [`latency_svg`].
fn render(reports: &[Report]) -> Result<String, String> {
    let mut titles: Vec<&str> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for report in reports.iter().filter(|r| !r.percentiles.is_empty()) {
        if !titles.contains(&report.title.as_str()) {
            titles.push(&report.title);
        }
        if !names.contains(&report.series_name()) {
            names.push(report.series_name());
        }
    }
    if titles.is_empty() {
        return Err("no report with latencies to plot".to_owned());
    }
    let columns = titles.len().min(2);
    let rows = titles.len().div_ceil(columns);
    let size = (PANEL.0 * columns as u32, PANEL.1 * rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((rows, columns));
        for (title, area) in titles.iter().zip(panels.iter()) {
            let series: Vec<&Report> = reports.iter().filter(|r| r.title == *title).collect();
            draw_panel(area, title, &series, &names)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    series: &[&Report],
    names: &[&str],
) -> Result<(), String> {
    let values = series
        .iter()
        .flat_map(|r| r.percentiles.iter().map(|p| p[1]))
        .filter(|v| *v > 0.0);
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = if low > high {
        (1.0, 10.0)
    } else {
        (low / 1.5, high * 1.5)
    };
    // Both axes are in thousandths: of nines across, of log10(µs) up, with
    // ticks at the listed percentiles and at 1, 2 and 5 of each decade.
    let (y_low, y_high) = (milli(low.log10()), milli(high.log10()));
    let x_ticks: Vec<i32> = [nines(50.0), 1.0, 2.0, 3.0, 4.0, MAX_X]
        .into_iter()
        .map(milli)
        .collect();
    let y_ticks: Vec<i32> = log_ticks(low, high).into_iter().map(milli).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (milli(0.2)..milli(MAX_X + 0.1)).with_key_points(x_ticks),
            (y_low..y_high).with_key_points(y_ticks),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|x| nines_label(unmilli(*x)))
        .y_label_formatter(&|y| format_micros(two_figures(10f64.powf(unmilli(*y)))))
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .draw()
        .map_err(|e| e.to_string())?;
    for report in series {
        let index = names
            .iter()
            .position(|n| *n == report.series_name())
            .unwrap_or(0);
        let colour = COLOURS[index % COLOURS.len()];
        let points = report
            .percentiles
            .iter()
            .map(|p| (milli(nines(p[0])), milli(p[1].max(low).log10())));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)).point_size(3))
            .map_err(|e| e.to_string())?
            .label(report.series_name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// A plot coordinate in thousandths, as the integer axes take it.
fn milli(value: f64) -> i32 {
    // Plot coordinates are small (below 10 for both axes), so this never saturates.
    (value * 1_000.0).round() as i32
}

fn unmilli(value: i32) -> f64 {
    f64::from(value) / 1_000.0
}

/// The log10 positions of 1, 2 and 5 times each power of ten between `low`
/// and `high`, or of 1, 1.5, 2, 3, 5 and 7 times when that gives too few ticks.
fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    let ticks_at = |steps: &[f64]| {
        let mut ticks = Vec::new();
        let mut decade = 10f64.powf(low.log10().floor());
        while decade <= high {
            for step in steps {
                let value = decade * step;
                if value >= low && value <= high {
                    ticks.push(value.log10());
                }
            }
            decade *= 10.0;
        }
        ticks
    };
    let ticks = ticks_at(&[1.0, 2.0, 5.0]);
    if ticks.len() >= 4 {
        ticks
    } else {
        ticks_at(&[1.0, 1.5, 2.0, 3.0, 5.0, 7.0])
    }
}

/// `value` rounded to two significant figures, as every tick is, undoing the
/// rounding of its position to thousandths.
fn two_figures(value: f64) -> f64 {
    if value <= 0.0 {
        return value;
    }
    let scale = 10f64.powf(value.log10().floor() - 1.0);
    (value / scale).round() * scale
}

/// A latency in microseconds with as many decimals as its size needs.
fn format_micros(micros: f64) -> String {
    if micros >= 10.0 {
        format!("{micros:.0}")
    } else if micros >= 1.0 {
        format!("{micros:.1}")
    } else {
        format!("{micros:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_map_to_nines_and_back() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!(nines(50.0) > 0.0 && nines(50.0) < 1.0);
        assert_eq!(nines(100.0), MAX_X);
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(4.0), "99.99%");
        assert_eq!(nines_label(MAX_X), "max");
        assert_eq!(nines_label(nines(50.0)), "50%");
    }

    #[test]
    fn latency_ticks_fall_on_round_values() {
        let labels = |low, high| -> Vec<String> {
            log_ticks(low, high)
                .iter()
                .map(|t| format_micros(two_figures(10f64.powf(unmilli(milli(*t))))))
                .collect()
        };
        assert_eq!(
            labels(15.0, 1_200.0),
            ["20", "50", "100", "200", "500", "1000"]
        );
        assert_eq!(
            labels(3_500.0, 16_000.0),
            ["5000", "7000", "10000", "15000"]
        );
        assert_eq!(labels(1.5, 25_000.0)[..3], ["2.0", "5.0", "10"]);
    }

    #[test]
    fn nothing_to_plot_is_an_error() {
        assert!(render(&[]).is_err());
    }
}
