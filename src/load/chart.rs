//! The SVG chart of a run (plotters, SVG backend only): latency percentiles per interval
//! for arrival → offer and for the full lifecycle, and throughput, over time.

use std::path::Path;

use plotters::prelude::*;

use super::report::Report;
use super::stats::Metric;

const P50: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const P90: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const P99: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const MAX: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// Writes the chart of `report` to `path`.
pub fn write(report: &Report, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1000, 1050)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let title = format!(
        "switchboard-load ({}): {:.0} lifecycles/s, {} agents",
        report.mode, report.lifecycles_per_s, report.options.agents
    );
    let root = root.titled(&title, ("sans-serif", 22)).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((3, 1));
    latency_panel(report, &panels[0], Metric::ArrivalToOffer)?;
    latency_panel(report, &panels[1], Metric::Lifecycle)?;
    throughput_panel(report, &panels[2])?;
    root.present().map_err(|e| e.to_string())
}

fn latency_panel<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    m: Metric,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let x_max = report.series.last().map_or(1.0, |i| i.t_s).max(1.0);
    let points = |f: &dyn Fn(&super::stats::Summary) -> u64| -> Vec<(f64, f64)> {
        report
            .series
            .iter()
            .filter_map(|i| {
                let s = i.latencies.get(&m)?;
                (s.count > 0).then(|| (i.t_s, f(s) as f64 / 1000.0))
            })
            .collect()
    };
    let p50 = points(&|s| s.p50_us);
    let p90 = points(&|s| s.p90_us);
    let p99 = points(&|s| s.p99_us);
    let max = points(&|s| s.max_us);
    let y_max = max.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{} (ms), per interval", m.label()), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, color, data) in [
        ("p50", P50, p50),
        ("p90", P90, p90),
        ("p99", P99, p99),
        ("max", MAX, max),
    ] {
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

fn throughput_panel<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let x_max = report.series.last().map_or(1.0, |i| i.t_s).max(1.0);
    let data: Vec<(f64, f64)> = report.series.iter().map(|i| (i.t_s, i.lifecycles_per_s)).collect();
    let y_max = data.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("lifecycles completed per second", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("lifecycles/s")
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(data, P50.stroke_width(2)))
        .map_err(|e| e.to_string())?;
    Ok(())
}
