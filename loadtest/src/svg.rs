//! The latency-percentile plot, and the CPU-per-upload bar chart, as hand-written SVG documents.
//!
//! Owns: layout, axes and one polyline per system; for the bars one horizontal bar per system
//! with its parts (user, kernel) stacked, each labelled with its value. The x axis is the classic HdrHistogram
//! percentile axis, `log10(1 / (1 - p))`, so p50, p90, p99, p99.9 and p99.99 are evenly spaced
//! and the tail gets the room it deserves; the maximum sits one step further. The y axis is
//! logarithmic latency, decades labelled. Does not own the data (see `stats::Latencies::curve`).
//! Pure: values in, a `String` out. Cold path.

use std::fmt::Write as _;

/// One line of the plot: `(percentile 0..=100, latency µs)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, u64)>,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// Where the maximum is drawn: `1 - p` = 10^-5, one step past p99.99.
const X_MAX: f64 = 5.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// `s` with XML's special characters escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Position on the percentile axis (0 at p0, 5 at the maximum).
fn x_of(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(10f64.powf(-X_MAX));
    (1.0 / tail).log10().clamp(0.0, X_MAX)
}

/// The whole SVG document.
pub fn percentile_plot(title: &str, series: &[Series]) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let all: Vec<u64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.max(1)))
        .collect();
    let lo = all.iter().copied().min().unwrap_or(100) as f64;
    let hi = all.iter().copied().max().unwrap_or(100_000) as f64;
    let (dec_lo, dec_hi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let px = |x: f64| LEFT + x / X_MAX * plot_w;
    let py = |us: f64| TOP + plot_h - (us.max(1.0).log10() - dec_lo) / (dec_hi - dec_lo) * plot_h;

    let mut out = head(WIDTH, HEIGHT, title, 24.0, 16);
    // Horizontal grid: decades of latency.
    let mut d = dec_lo;
    while d <= dec_hi + 1e-9 {
        let y = py(10f64.powf(d));
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            decade_label(d as i32)
        );
        d += 1.0;
    }
    // Vertical grid: the percentiles.
    for (p, label) in [
        (0.0, "0%"),
        (90.0, "90%"),
        (99.0, "99%"),
        (99.9, "99.9%"),
        (99.99, "99.99%"),
        (100.0, "max"),
    ] {
        let x = px(x_of(p));
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(p, us)| format!("{:.1},{:.1}", px(x_of(p)), py(us as f64)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = TOP + 16.0 + 18.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/>"#,
            LEFT + 12.0,
            LEFT + 36.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 42.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// One bar of [`stacked_bars`]: a system and its stacked parts (same unit, e.g. µs).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub name: String,
    pub parts: Vec<f64>,
}

/// Horizontal stacked bars on a linear axis from 0; `legend` names the parts in order.
pub fn stacked_bars(title: &str, legend: &[&str], bars: &[Bar]) -> String {
    const ROW: f64 = 34.0;
    const NAME_W: f64 = 230.0;
    let height = TOP + BOTTOM + ROW * bars.len().max(1) as f64;
    let plot_w = WIDTH - NAME_W - RIGHT - 60.0;
    let max = bars
        .iter()
        .map(|b| b.parts.iter().sum::<f64>())
        .fold(0.0, f64::max)
        .max(1e-9);
    let px = |v: f64| NAME_W + v / max * plot_w;
    let mut out = head(WIDTH, height, title, 24.0, 16);
    for (k, name) in legend.iter().enumerate() {
        let x = NAME_W + 120.0 * k as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="34" width="14" height="10" fill="{}"/><text x="{:.1}" y="43">{}</text>"#,
            PALETTE[k % PALETTE.len()],
            x + 18.0,
            escape(name)
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64 + 6.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            NAME_W - 8.0,
            y + 15.0,
            escape(&b.name)
        );
        let mut at = 0.0;
        for (k, &v) in b.parts.iter().enumerate() {
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="22" fill="{}"><title>{} {v:.1}</title></rect>"#,
                px(at),
                (px(at + v) - px(at)).max(0.0),
                PALETTE[k % PALETTE.len()],
                escape(legend.get(k).copied().unwrap_or("")),
            );
            at += v;
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{at:.1}</text>"#,
            px(at) + 6.0,
            y + 15.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// `1µs`, `10µs`, `100µs`, `1ms`, ... for a power of ten of microseconds.
fn decade_label(decade: i32) -> String {
    match decade {
        i32::MIN..=2 => format!("{}µs", 10u64.pow(decade.max(0) as u32)),
        3..=5 => format!("{}ms", 10u64.pow((decade - 3) as u32)),
        _ => format!("{}s", 10u64.pow((decade - 6).clamp(0, 9) as u32)),
    }
}

/// The start of an SVG document `width` × `height` pixels on white, with `title` centred at
/// `title_y` in `title_size` px (the plots of this crate share it).
pub fn head(width: f64, height: f64, title: &str, title_y: f64, title_size: u32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{title_y}" font-size="{title_size}" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_one_polyline_per_system_with_every_point() {
        let series = vec![
            Series {
                name: "pyrogate <fan-out 2>".into(),
                points: vec![(0.0, 500), (50.0, 900), (99.0, 4_000), (100.0, 20_000)],
            },
            Series {
                name: "nginx".into(),
                points: vec![(0.0, 700), (100.0, 90_000)],
            },
        ];
        let svg = percentile_plot("latency & percentiles", &series);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("latency &amp; percentiles"));
        assert!(svg.contains(">pyrogate &lt;fan-out 2&gt;</text>"));
        let first = svg.lines().find(|l| l.starts_with("<polyline")).unwrap();
        assert_eq!(first.matches(',').count(), 4);
        // 100µs .. 100ms decades are labelled.
        for label in [">100µs<", ">1ms<", ">10ms<", ">100ms<"] {
            assert!(svg.contains(label), "{label}");
        }
    }

    #[test]
    fn percentiles_map_to_evenly_spaced_positions() {
        assert_eq!(x_of(0.0), 0.0);
        assert!((x_of(90.0) - 1.0).abs() < 1e-9);
        assert!((x_of(99.0) - 2.0).abs() < 1e-9);
        assert!((x_of(99.9) - 3.0).abs() < 1e-6);
        assert_eq!(x_of(100.0), X_MAX);
    }

    #[test]
    fn decade_labels() {
        assert_eq!(decade_label(0), "1µs");
        assert_eq!(decade_label(2), "100µs");
        assert_eq!(decade_label(4), "10ms");
        assert_eq!(decade_label(6), "1s");
    }

    #[test]
    fn bars_stack_their_parts_and_show_the_total() {
        let bars = vec![
            Bar {
                name: "pyrogate".into(),
                parts: vec![60.0, 40.0],
            },
            Bar {
                name: "nginx <mirror>".into(),
                parts: vec![20.0, 30.0],
            },
        ];
        let svg = stacked_bars("CPU", &["user", "kernel"], &bars);
        assert!(svg.ends_with("</svg>\n"));
        // Two legend swatches and two parts per bar.
        assert_eq!(svg.matches("<rect x=").count(), 2 + 4);
        assert!(svg.contains("<title>user 60.0</title>"));
        assert!(svg.contains("<title>kernel 30.0</title>"));
        assert!(svg.contains(">100.0</text>") && svg.contains(">50.0</text>"));
        assert!(svg.contains(">nginx &lt;mirror&gt;</text>"));
        // The longest bar spans the plot; the other is half as long.
        let widths: Vec<f64> = svg
            .lines()
            .filter(|l| l.contains("<title>"))
            .map(|l| {
                l.split("width=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(
            ((widths[0] + widths[1]) / (widths[2] + widths[3]) - 2.0).abs() < 0.01,
            "{widths:?}"
        );
    }

    #[test]
    fn an_empty_plot_is_still_a_document() {
        let svg = percentile_plot("none", &[]);
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 0);
    }
}
