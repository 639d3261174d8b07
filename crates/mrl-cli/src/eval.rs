//! `mrl eval`: STS scores of an encoder at every Matryoshka dim, or instruction-following
//! ROUGE-L of a decoder (`--task instruct`, in `eval_instruct.rs`), as a table on stdout and
//! optionally JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use mrl_common::nested_dims;
use mrl_eval::{run_sts, StsDataset, StsReport};
use serde::Serialize;

use crate::eval_instruct::InstructArgs;
use crate::model_args::ModelArgs;

/// Evaluation tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Semantic textual similarity of an encoder at every dim; data = TSV
    /// `score<TAB>sentence1<TAB>sentence2`.
    Sts,
    /// Instruction following of a decoder: ROUGE-L ×100 of sampled answers against the
    /// references, per seed; data = JSON lines `{"instruction": .., "response": ..}`.
    Instruct,
}

/// Arguments of `mrl eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task.
    #[arg(long, value_enum)]
    pub task: Task,
    /// The task's data file.
    #[arg(long)]
    pub data: PathBuf,
    /// Matryoshka dims, comma separated (default: the hidden size, then every power of two
    /// below it down to 8 — 384,256,128,64,32,16,8 for MiniLM). `--task sts` only.
    #[arg(long, value_delimiter = ',')]
    pub dims: Option<Vec<usize>>,
    /// Also write the scores as JSON to this file (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub instruct: InstructArgs,
}

/// The JSON written by `--json`.
#[derive(Serialize)]
struct EvalJson<'a> {
    model: &'a str,
    task: Task,
    data: String,
    #[serde(flatten)]
    report: &'a StsReport,
}

/// Runs `mrl eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    match args.task {
        Task::Sts => run_sts_task(args),
        Task::Instruct => crate::eval_instruct::run(args),
    }
}

/// `mrl eval --task sts`.
fn run_sts_task(args: EvalArgs) -> anyhow::Result<()> {
    if let Some(flag) = args.instruct.flags_given().first() {
        anyhow::bail!(
            "{flag} applies to --task instruct only (generation with a decoder), not to --task sts"
        );
    }
    let dataset = StsDataset::from_tsv(&args.data)?;
    let (encoder, dir) = args.model.load()?;
    let hidden = encoder.hidden_size();
    // Default: the model's Matryoshka ladder, largest dim first.
    let dims = args
        .dims
        .clone()
        .unwrap_or_else(|| nested_dims(hidden).into_iter().rev().collect());
    for &dim in &dims {
        mrl_common::check_dim(dim, hidden).context("--dims")?;
    }
    eprintln!(
        "model {} ({}, {} layers, hidden {}, pooling {}, max length {}) on {:?}; {} pairs from {}",
        dir.display(),
        encoder.backbone().architecture(),
        encoder.num_layers(),
        hidden,
        encoder.pooling(),
        encoder.max_length(),
        args.model.device,
        dataset.pairs.len(),
        args.data.display()
    );
    let report = run_sts(&dataset, &dims, |sentences: &[&str]| {
        args.model
            .encode_with_progress(&encoder, sentences, "encoding")
    })?;

    println!("{:>6}  {:>9}  {:>9}", "dim", "Spearman", "Pearson");
    for (dim, scores) in &report.dims {
        println!(
            "{dim:>6}  {:>9.2}  {:>9.2}",
            scores.spearman, scores.pearson
        );
    }
    if let Some(path) = &args.json {
        let json = EvalJson {
            model: &args.model.model,
            task: args.task,
            data: args.data.display().to_string(),
            report: &report,
        };
        let text = serde_json::to_string_pretty(&json)?;
        models::error::write_atomic(path, (text + "\n").as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_shape() {
        let report = StsReport {
            n_pairs: 3,
            dims: vec![(
                384,
                mrl_eval::DimScores {
                    spearman: 82.0,
                    pearson: 81.0,
                },
            )],
        };
        let json = EvalJson {
            model: "m",
            task: Task::Sts,
            data: "d.tsv".to_string(),
            report: &report,
        };
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"{"model":"m","task":"sts","data":"d.tsv","n_pairs":3,"dims":{"384":{"spearman":82.0,"pearson":81.0}}}"#
        );
    }
}
