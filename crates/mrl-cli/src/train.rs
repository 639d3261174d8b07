//! `mrl train`: fine-tune an encoder with a Matryoshka objective from a TOML config, with a
//! progress bar showing the loss breakdown, checkpoints, `--resume`, a sentence-transformers
//! export and a before/after table of Spearman at every dim.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use mrl_eval::{StsDataset, StsReport};
use training::embedding::report::{RunReport, Series};
use training::embedding::{EmbeddingConfig, EmbeddingTask};
use training::StepReport;

use crate::progress::TrainProgress;

/// Arguments of `mrl train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The TOML config (see `configs/`; `configs/mipic-minilm.toml` is the default job).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue from the newest checkpoint in `<output_dir>/checkpoints` (same data order,
    /// optimizer state and step).
    #[arg(long)]
    pub resume: bool,
    /// Override a config key, e.g. `--set training.steps=50` (repeatable; TOML values);
    /// `--set key=` (no value) removes the key, e.g. `--set training.epochs= --set training.steps=10`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Stop after this many steps, at least 1 (a checkpoint is written; continue with
    /// `--resume`).
    #[arg(long, value_parser = crate::numeric::positive_u64)]
    pub stop_after: Option<u64>,
    /// Extra STS sets (TSV `score, sentence1, sentence2`) evaluated before and after training,
    /// e.g. `../shared/data/stsb_test.tsv` (repeatable).
    #[arg(long = "eval", value_name = "TSV")]
    pub extra_eval: Vec<PathBuf>,
    /// Do not export the model at the end.
    #[arg(long)]
    pub no_export: bool,
}

/// The total and the top-level terms of a breakdown, e.g.
/// `loss 3.412 | mrl 5.1 sia 1.9 pic 2.7 | dim8 0.98`.
fn summarize(report: &StepReport) -> String {
    let mut parts = vec![format!("loss {:.4}", report.loss())];
    for (name, v) in report.terms.iter().skip(1) {
        let segments: Vec<&str> = name.split('/').collect();
        let top_level = segments.len() == 2 && segments[1] == "total";
        let narrowest =
            segments.len() == 2 && segments[0] == "mrl" && segments[1].starts_with("dim_");
        if top_level {
            parts.push(format!("{} {v:.3}", segments[0]));
        } else if narrowest && !parts.iter().any(|p| p.starts_with("dim")) {
            parts.push(format!("{} {v:.3}", segments[1].replace('_', "")));
        }
    }
    parts.join(" ")
}

/// The dev line of an STS evaluation.
fn describe_sts(step: usize, report: &StsReport) -> String {
    let scores: Vec<String> = report
        .dims
        .iter()
        .map(|(d, s)| format!("{d}:{:.2}", s.spearman))
        .collect();
    format!("dev Spearman after {step} steps: {}", scores.join(" "))
}

/// Runs `mrl train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let wall = Instant::now();
    let config = EmbeddingConfig::from_file(&args.config, &args.overrides)?;
    let device = config.device.device()?;
    let mut trainer = if args.resume {
        EmbeddingTask::resume(config, &device)?
    } else {
        EmbeddingTask::trainer(config, &device)?
    };
    let config = trainer.task().config().clone();
    let out_dir = config.output_dir();
    {
        let (task, model) = (trainer.task(), trainer.model());
        eprintln!(
            "model {} ({}, {} layers, hidden {}, pooling {}); {} objective; {} examples from {}; \
             {} steps of batch {} (starting at {}); device {:?}; output {}",
            task.model_dir().display(),
            model.backbone.architecture(),
            model.backbone.num_layers(),
            model.backbone.hidden_size(),
            task.pooling(),
            config.objective.kind(),
            task.corpus_len(),
            config
                .data
                .path
                .clone()
                .unwrap_or_else(|| format!("{} pooled sources", config.data.sources.len())),
            trainer.total_steps(),
            config.training.batch_size,
            trainer.step(),
            config.device,
            out_dir.display()
        );
    }

    let extra: Vec<(String, StsDataset)> = args
        .extra_eval
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string());
            StsDataset::from_tsv(p)
                .with_context(|| format!("--eval {}", p.display()))
                .map(|d| (name, d))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut extra_before = Vec::new();
    if trainer.step() == 0 {
        for (name, data) in &extra {
            eprintln!("evaluating {name} before training");
            extra_before.push(trainer.task().evaluate_on(trainer.model(), data)?);
        }
    }

    let mut progress = TrainProgress::new(summarize, describe_sts, None);
    let until = args.stop_after.map(|n| trainer.step() + n as usize);
    let summary = trainer.run(&mut progress, until)?;
    progress.finish();
    let steps_per_s = summary.steps_run as f64 / summary.train_seconds.max(1e-9);
    eprintln!(
        "{} steps in {:.1} s of training ({steps_per_s:.3} steps/s); step {}/{}",
        summary.steps_run,
        summary.train_seconds,
        trainer.step(),
        trainer.total_steps()
    );
    if trainer.step() < trainer.total_steps() {
        let overrides: String = args
            .overrides
            .iter()
            .map(|o| format!(" --set {}", shell_quote(o)))
            .collect();
        eprintln!(
            "stopped early; continue with `mrl train --config {}{overrides} --resume`",
            shell_quote(&args.config.display().to_string())
        );
        return Ok(());
    }

    if !args.no_export {
        let dir = out_dir.join("model");
        trainer.task().export(trainer.model(), &dir)?;
        eprintln!(
            "exported {} (sentence-transformers layout; `mrl eval --model {}`)",
            dir.display(),
            dir.display()
        );
    }

    let mut reports = Vec::new();
    if let (Some(eval), Some((_, after))) = (&config.eval, summary.evals.last()) {
        let name = training::config::expand_path(&eval.dev)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        reports.push((name, summary.before.clone(), after.clone()));
    }
    for (i, (name, data)) in extra.iter().enumerate() {
        eprintln!("evaluating {name} after training");
        let after = trainer.task().evaluate_on(trainer.model(), data)?;
        reports.push((name.clone(), extra_before.get(i).cloned(), after));
    }
    let report_dir = out_dir.join("report");
    for (name, before, after) in reports {
        let mut series = Vec::new();
        if let Some(b) = before {
            series.push(Series {
                label: "before".into(),
                report: b,
            });
        }
        series.push(Series {
            label: format!("after {} steps", trainer.step()),
            report: after,
        });
        let report = RunReport {
            dataset: name.clone(),
            series,
        };
        println!("\n{}", report.markdown());
        let stem = name.trim_end_matches(".tsv").to_string();
        report.write(&report_dir, &stem)?;
    }
    eprintln!(
        "reports in {}; wall time {:.1} s",
        report_dir.display(),
        wall.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `s` as one shell word (single-quoted when it holds anything but safe characters).
pub(crate) fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("training.steps=5"), "training.steps=5");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn the_summary_shows_the_top_level_terms_and_the_narrowest_dim() {
        let report = StepReport {
            step: 1,
            total_steps: 2,
            lr: 1e-5,
            grad_norm: 1.0,
            items: 0,
            terms: vec![
                ("total".into(), 3.0),
                ("mrl/total".into(), 5.0),
                ("mrl/dim_8".into(), 1.0),
                ("mrl/dim_16".into(), 0.5),
                ("sia/total".into(), 2.0),
                ("sia/layer_1/dim_8/cka".into(), 0.1),
                ("pic/total".into(), 4.0),
            ],
        };
        assert_eq!(
            summarize(&report),
            "loss 3.0000 mrl 5.000 dim8 1.000 sia 2.000 pic 4.000"
        );
    }
}
