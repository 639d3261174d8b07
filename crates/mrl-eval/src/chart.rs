//! A line chart of scores against Matryoshka dim as a standalone SVG (hand-written; no plotting
//! dependency): x is the dim on a log₂ scale, y the score, one polyline per line, a legend.

use std::fmt::Write as _;

/// One line of the chart: a legend label and `(dim, score)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend label.
    pub label: String,
    /// `(dim, score)`, in any order (drawn by dim).
    pub points: Vec<(usize, f64)>,
}

/// The chart of `lines` under `title`, 640 × 400 px. Dims are the union of every line's; the
/// y range covers every score with a margin of 1.
///
/// # Panics
/// When a score is not finite or a dim is 0 (callers check their scores first).
pub fn line_chart_svg(title: &str, lines: &[Line]) -> String {
    let mut dims: Vec<usize> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    dims.sort_unstable();
    dims.dedup();
    assert!(!dims.contains(&0), "line_chart_svg: dim 0 in {dims:?}");
    let values: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .collect();
    assert!(
        values.iter().all(|v| v.is_finite()),
        "line_chart_svg: non-finite score"
    );
    let (w, h, left, right, top, bottom) = (640.0, 400.0, 60.0, 190.0, 30.0, 50.0);
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min).floor() - 1.0;
    let hi = values
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil()
        + 1.0;
    let (lo, hi) = if values.is_empty() {
        (0.0, 1.0)
    } else {
        (lo, hi)
    };
    let (xmin, xmax) = dims
        .iter()
        .map(|&d| (d as f64).log2())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    let xspan = (xmax - xmin).max(1.0);
    let x = |d: usize| left + ((d as f64).log2() - xmin) / xspan * (w - left - right);
    let y = |v: f64| top + (hi - v) / (hi - lo).max(1e-9) * (h - top - bottom);
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\">{}</text>\n",
        (w - right + left) / 2.0,
        xml_escape(title)
    );
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for &d in &dims {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{d}</text>",
            x(d),
            h - bottom + 18.0
        );
    }
    let step = ((hi - lo) / 6.0).ceil().max(1.0);
    let mut v = lo.ceil();
    while v <= hi {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>\n<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            left - 6.0,
            y(v) + 4.0,
            y(v),
            w - right,
            y(v)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">dim (log scale)</text>",
        (w - right + left) / 2.0,
        h - 10.0
    );
    for (i, line) in lines.iter().enumerate() {
        let color = colors[i % colors.len()];
        let mut points = line.points.clone();
        points.sort_by_key(|p| p.0);
        let coords: Vec<String> = points
            .iter()
            .map(|&(d, v)| format!("{:.1},{:.1}", x(d), y(v)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            coords.join(" ")
        );
        for p in &coords {
            let (px, py) = p.split_once(',').expect("x,y");
            let _ = writeln!(
                s,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{color}\"/>"
            );
        }
        let ly = top + 20.0 * i as f64 + 10.0;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>\n<text x=\"{}\" y=\"{}\">{}</text>",
            w - right + 10.0,
            w - right + 30.0,
            w - right + 36.0,
            ly + 4.0,
            xml_escape(&line.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_and_dim_is_drawn_and_labels_are_escaped() {
        let lines = vec![
            Line {
                label: "STS <test>".into(),
                points: vec![(384, 82.0), (8, 62.5), (64, 79.2)],
            },
            Line {
                label: "pairs".into(),
                points: vec![(384, 87.4), (8, 76.5)],
            },
        ];
        let svg = line_chart_svg("score & dim", &lines);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("STS &lt;test&gt;") && svg.contains("score &amp; dim"));
        for d in ["384", "64", "8"] {
            assert!(svg.contains(&format!(">{d}</text>")), "{d}");
        }
        // The first line's points run left to right by dim: 8 at the left edge (x = 60).
        let first = svg.lines().find(|l| l.starts_with("<polyline")).unwrap();
        assert!(first.contains("points=\"60.0,"), "{first}");
    }

    #[test]
    #[should_panic(expected = "non-finite")]
    fn a_non_finite_score_is_refused() {
        line_chart_svg(
            "t",
            &[Line {
                label: "x".into(),
                points: vec![(8, f64::NAN)],
            }],
        );
    }
}
