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
        let series: Vec<mrl_eval::chart::Line> = self
            .series
            .iter()
            .map(|s| mrl_eval::chart::Line {
                label: s.label.clone(),
                points: dims
                    .iter()
                    .map(|&d| (d, s.report.get(d).expect("dim").spearman))
                    .collect(),
            })
            .collect();
        mrl_eval::chart::line_chart_svg(
            &format!("Spearman ×100 vs dim — {}", self.dataset),
            &series,
        )
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
