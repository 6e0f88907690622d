//! Grouped bar charts as standalone SVG: enough for the main job's figures,
//! readable in any browser, and diffable as text.

use std::fmt::Write;

/// One chart: groups along the x axis, one bar per series in each group.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Title, first line of the figure.
    pub title: String,
    /// Second line: what the numbers are (and how they were measured).
    pub subtitle: String,
    /// The y axis label.
    pub y_label: String,
    /// Series names, one colour each (e.g. the mechanisms).
    pub series: Vec<String>,
    /// Groups: a label and one value per series (NaN: missing).
    pub groups: Vec<(String, Vec<f64>)>,
    /// A horizontal reference line (e.g. 1.0 for ratios), if any.
    pub reference: Option<f64>,
}

const COLOURS: [&str; 4] = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum at or above `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

impl BarChart {
    /// Renders the chart as an SVG document.
    pub fn svg(&self) -> String {
        let (left, right, top, bottom) = (80.0, 20.0, 70.0, 90.0);
        let group_w = 30.0 * self.series.len() as f64 + 30.0;
        // Wide enough for the bars, the title and subtitle (about 8.5 and 7
        // px a character) and the legend, so nothing is clipped.
        let width = (left + right + group_w * self.groups.len().max(1) as f64)
            .max(left + right + 8.5 * self.title.chars().count() as f64)
            .max(left + right + 7.0 * self.subtitle.chars().count() as f64)
            .max(left + right + 110.0 * self.series.len() as f64)
            .ceil();
        let height = 420.0;
        let plot_h = height - top - bottom;
        let max = self
            .groups
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .chain(self.reference)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let max = nice_max(max * 1.05);
        let y = |v: f64| top + plot_h * (1.0 - v / max);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="22" font-size="15" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="40" fill="#555">{}</text>"##,
            escape(&self.subtitle)
        );
        for i in 0..=5 {
            let v = max * i as f64 / 5.0;
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{x2}" y1="{yv}" y2="{yv}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{label}</text>"##,
                x2 = width - right,
                yv = y(v),
                tx = left - 6.0,
                ty = y(v) + 4.0,
                label = if max >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            );
        }
        let _ = writeln!(
            s,
            r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            top + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (g, (label, values)) in self.groups.iter().enumerate() {
            let x0 = left + g as f64 * group_w + 15.0;
            for (i, v) in values.iter().enumerate() {
                if !v.is_finite() {
                    continue;
                }
                let x = x0 + 30.0 * i as f64;
                let _ = writeln!(
                    s,
                    r#"<rect x="{x}" y="{}" width="26" height="{}" fill="{}"><title>{}: {v:.3}</title></rect>"#,
                    y(*v),
                    (top + plot_h - y(*v)).max(0.0),
                    COLOURS[i % COLOURS.len()],
                    escape(&self.series[i.min(self.series.len() - 1)])
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x0 + 15.0 * values.len() as f64,
                top + plot_h + 18.0,
                escape(label)
            );
        }
        if let Some(r) = self.reference {
            let _ = writeln!(
                s,
                r#"<line x1="{left}" x2="{x2}" y1="{yr}" y2="{yr}" stroke="black" stroke-dasharray="4 3"/>"#,
                x2 = width - right,
                yr = y(r)
            );
        }
        for (i, name) in self.series.iter().enumerate() {
            let x = left + 110.0 * i as f64;
            let yy = height - 30.0;
            let _ = writeln!(
                s,
                r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                yy - 10.0,
                COLOURS[i % COLOURS.len()],
                x + 16.0,
                yy,
                escape(name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_bar_and_label() {
        let c = BarChart {
            title: "t <1>".into(),
            subtitle: "s".into(),
            y_label: "y".into(),
            series: vec!["none".into(), "mmu".into()],
            groups: vec![
                ("a".into(), vec![1.0, 2.0]),
                ("b".into(), vec![3.0, f64::NAN]),
            ],
            reference: Some(1.0),
        };
        let svg = c.svg();
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 2,
            "3 bars + 2 legend boxes"
        );
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn long_titles_widen_the_figure() {
        let c = BarChart {
            title: "a title much longer than the three bars below it could ever span".into(),
            subtitle: "and a subtitle longer still, saying how the numbers were measured and why"
                .into(),
            y_label: "y".into(),
            series: vec!["x".into()],
            groups: vec![("a".into(), vec![1.0])],
            reference: None,
        };
        let svg = c.svg();
        let width: f64 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .unwrap();
        assert!(width >= 100.0 + 7.0 * c.subtitle.len() as f64, "{width}");
    }

    #[test]
    fn axis_maximum_is_round() {
        assert_eq!(nice_max(0.93), 1.0);
        assert_eq!(nice_max(3.7), 5.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
