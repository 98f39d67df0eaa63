//! A time-series plot as a hand-written SVG document: stacked panels sharing one time axis.
//!
//! Owns: layout, one linear y axis per panel (from 0 to a rounded maximum), one polyline per
//! series, shaded time bands (fault phases) and vertical markers (end of load). Does not own the
//! data (the soak's samples). Pure: values in, a `String` out. Cold path.

use std::fmt::Write as _;

use crate::svg::{self, escape};

/// One line: `(seconds, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel: its y-axis label and its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub y_label: String,
    pub lines: Vec<Line>,
}

/// A shaded interval of the time axis, drawn across every panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub start_s: f64,
    pub end_s: f64,
    pub label: String,
    pub color: &'static str,
}

const WIDTH: f64 = 960.0;
const PANEL_H: f64 = 190.0;
const GAP: f64 = 34.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 50.0;
const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// A "nice" axis maximum at or above `v`: 1, 2 or 5 times a power of ten (1 for nothing).
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v > 0.0 && v.is_finite()) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v - 1e-9 {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt_tick(v: f64) -> String {
    if v >= 1000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The whole SVG document: `panels` stacked top to bottom over `[0, t_max]` seconds.
pub fn time_plot(
    title: &str,
    t_max: f64,
    panels: &[Panel],
    bands: &[Band],
    markers: &[(f64, String)],
) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let n = panels.len().max(1) as f64;
    let height = TOP + n * PANEL_H + (n - 1.0) * GAP + BOTTOM;
    let t_max = if t_max > 0.0 { t_max } else { 1.0 };
    let px = |t: f64| LEFT + (t / t_max).clamp(0.0, 1.0) * plot_w;
    let mut out = svg::head(WIDTH, height, title, 22.0, 15);
    // Band legend on the title's second line.
    let mut lx = LEFT;
    let mut seen: Vec<&str> = Vec::new();
    for b in bands {
        if seen.contains(&b.label.as_str()) {
            continue;
        }
        seen.push(&b.label);
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="32" width="14" height="10" fill="{}" fill-opacity="0.25"/><text x="{:.1}" y="41">{}</text>"#,
            b.color,
            lx + 18.0,
            escape(&b.label)
        );
        lx += 26.0 + 7.0 * b.label.chars().count() as f64;
    }
    for (pi, panel) in panels.iter().enumerate() {
        let top = TOP + pi as f64 * (PANEL_H + GAP);
        let bottom = top + PANEL_H;
        let y_max = nice_ceiling(
            panel
                .lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.1))
                .fold(0.0, f64::max),
        );
        let py = |v: f64| bottom - (v / y_max).clamp(0.0, 1.0) * PANEL_H;
        for b in bands {
            let (x0, x1) = (px(b.start_s), px(b.end_s));
            let _ = writeln!(
                out,
                r#"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{PANEL_H}" fill="{}" fill-opacity="0.18"/>"#,
                (x1 - x0).max(0.5),
                b.color
            );
        }
        for k in 0..=4 {
            let v = y_max * f64::from(k) / 4.0;
            let y = py(v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                fmt_tick(v)
            );
        }
        let mid = top + PANEL_H / 2.0;
        let _ = writeln!(
            out,
            r#"<text x="16" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 16 {mid:.1})">{}</text>"#,
            escape(&panel.y_label)
        );
        for (t, label) in markers {
            let x = px(*t);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#555" stroke-dasharray="4 3"/>"##
            );
            if pi == 0 {
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                    x + 4.0,
                    top + 12.0,
                    escape(label)
                );
            }
        }
        for (i, line) in panel.lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<String> = line
                .points
                .iter()
                .map(|&(t, v)| format!("{:.1},{:.1}", px(t), py(v)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                pts.join(" ")
            );
            let ly = top + 14.0 + 16.0 * i as f64;
            let lx = LEFT + plot_w - 230.0;
            let _ = writeln!(
                out,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 20.0,
                lx + 26.0,
                ly + 4.0,
                escape(&line.name)
            );
        }
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top:.1}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#444"/>"##
        );
        // Time ticks under every panel.
        let step = nice_ceiling(t_max / 10.0);
        let mut t = 0.0;
        while t <= t_max + 1e-9 {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                px(t),
                bottom + 15.0,
                fmt_tick(t)
            );
            t += step;
        }
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since start</text>"#,
        LEFT + plot_w / 2.0,
        height - 12.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(420.0), 500.0);
    }

    #[test]
    fn the_plot_has_one_polyline_per_line_and_every_band_in_every_panel() {
        let panels = vec![
            Panel {
                y_label: "RSS MiB".into(),
                lines: vec![Line {
                    name: "pyrogate <rss>".into(),
                    points: vec![(0.0, 10.0), (1.0, 12.0), (2.0, 11.0)],
                }],
            },
            Panel {
                y_label: "fds".into(),
                lines: vec![
                    Line {
                        name: "fds".into(),
                        points: vec![(0.0, 20.0), (2.0, 30.0)],
                    },
                    Line {
                        name: "in flight".into(),
                        points: vec![(0.0, 0.0)],
                    },
                ],
            },
        ];
        let bands = vec![Band {
            start_s: 0.5,
            end_s: 1.0,
            label: "outage".into(),
            color: "#d62728",
        }];
        let svg = time_plot("soak & co", 2.0, &panels, &bands, &[(1.5, "end".into())]);
        assert!(svg.starts_with("<svg xmlns="));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches(r#"fill-opacity="0.18""#).count(), 2);
        assert!(svg.contains("soak &amp; co"));
        assert!(svg.contains("pyrogate &lt;rss&gt;"));
    }
}
