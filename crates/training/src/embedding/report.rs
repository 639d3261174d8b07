//! Before/after reports of a run: Spearman ×100 at every dim as JSON, a Markdown table and an
//! SVG line plot (hand-written; no plotting dependency).

use std::fmt::Write as _;
use std::path::Path;

use mrl_eval::StsReport;
use serde::Serialize;

use crate::checkpoint::write_atomic;
use crate::error::Result;

/// One evaluated model state: a label (`before`, `after`) and its scores.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The STS scores.
    pub report: StsReport,
}

/// The report of one run on one STS set.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// What was evaluated, e.g. `stsb_dev.tsv`.
    pub dataset: String,
    /// The states compared (before training, after training, …).
    pub series: Vec<Series>,
}

impl RunReport {
    /// The dims present in every series, descending.
    pub fn dims(&self) -> Vec<usize> {
        let mut dims: Vec<usize> = self
            .series
            .first()
            .map(|s| s.report.dims.iter().map(|(d, _)| *d).collect())
            .unwrap_or_default();
        dims.retain(|d| self.series.iter().all(|s| s.report.get(*d).is_some()));
        dims.sort_unstable_by(|a, b| b.cmp(a));
        dims
    }

    /// A Markdown table: one row per dim, one Spearman column per series, and the change of
    /// the last series over the first.
    pub fn markdown(&self) -> String {
        let mut out = format!("Spearman ×100 on {}\n\n| dim |", self.dataset);
        for s in &self.series {
            let _ = write!(out, " {} |", s.label);
        }
        let delta = self.series.len() >= 2;
        if delta {
            out.push_str(" Δ |");
        }
        out.push_str("\n|---:|");
        for _ in &self.series {
            out.push_str("---:|");
        }
        if delta {
            out.push_str("---:|");
        }
        out.push('\n');
        for d in self.dims() {
            let _ = write!(out, "| {d} |");
            let vals: Vec<f64> = self
                .series
                .iter()
                .map(|s| s.report.get(d).expect("dim present").spearman)
                .collect();
            for v in &vals {
                let _ = write!(out, " {v:.2} |");
            }
            if delta {
                let _ = write!(out, " {:+.2} |", vals[vals.len() - 1] - vals[0]);
            }
            out.push('\n');
        }
        out
    }

    /// An SVG plot of Spearman against dim (log₂ x axis), one line per series.
    pub fn svg(&self) -> String {
        let dims = self.dims();
        let (w, h, left, right, top, bottom) = (640.0, 400.0, 60.0, 150.0, 30.0, 50.0);
        let values: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| dims.iter().map(|d| s.report.get(*d).expect("dim").spearman))
            .collect();
        let lo = values.iter().cloned().fold(f64::INFINITY, f64::min).floor() - 1.0;
        let hi = values
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max)
            .ceil()
            + 1.0;
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
             <text x=\"{}\" y=\"18\" text-anchor=\"middle\">Spearman ×100 vs dim — {}</text>\n",
            (w - right + left) / 2.0,
            xml_escape(&self.dataset)
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
        for (i, series) in self.series.iter().enumerate() {
            let color = colors[i % colors.len()];
            let points: Vec<String> = dims
                .iter()
                .map(|&d| {
                    format!(
                        "{:.1},{:.1}",
                        x(d),
                        y(series.report.get(d).expect("dim").spearman)
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
            for p in &points {
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
                xml_escape(&series.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Writes `<stem>.json`, `<stem>.md` and `<stem>.svg` in `dir`.
    ///
    /// # Errors
    /// [`crate::TrainError::Io`] naming the file.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
        let json = serde_json::to_vec_pretty(self).expect("report serialises");
        write_atomic(&dir.join(format!("{stem}.json")), &json)?;
        write_atomic(&dir.join(format!("{stem}.md")), self.markdown().as_bytes())?;
        write_atomic(&dir.join(format!("{stem}.svg")), self.svg().as_bytes())?;
        Ok(())
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
