//! `mrl eval`: scores of an encoder at every Matryoshka dim — STS (Spearman/Pearson),
//! classification with a logistic-regression probe (accuracy, macro-F1), pair classification
//! (accuracy, F1, AP), or all three on the shared data — or instruction-following ROUGE-L of a
//! decoder (`--task instruct`, in `eval_instruct.rs`), as a table on stdout and optionally
//! JSON.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use models::SentenceEncoder;
use mrl_common::nested_dims;
use mrl_eval::{
    run_classification, run_pairs, run_sts, ClassificationDataset, ClassificationReport,
    PairDataset, PairReport, ProbeConfig, StsDataset, StsReport,
};
use serde::Serialize;

use crate::eval_instruct::InstructArgs;
use crate::model_args::ModelArgs;
use crate::numeric::DimList;
use mrl_eval::chart::Line;

/// Evaluation tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Semantic textual similarity of an encoder at every dim; data = TSV
    /// `score<TAB>sentence1<TAB>sentence2`.
    Sts,
    /// Classification with a logistic-regression probe per dim (accuracy, macro-F1); `--train`
    /// and `--data` (test) = TSV `label<TAB>text` (Banking77).
    Classification,
    /// Pair classification per dim (best-threshold accuracy and F1, average precision of the
    /// cosines); data = TSV `sentence1<TAB>sentence2<TAB>label` (0/1) or SNLI
    /// `premise<TAB>hypothesis<TAB>label` (entailment vs contradiction, neutral dropped).
    Pair,
    /// STS, classification and pair classification on the shared data:
    /// `$MRL_SHARED/data/{stsb_test,banking77_train,banking77_test,nli_pairs}.tsv`.
    All,
    /// Instruction following of a decoder: ROUGE-L ×100 of sampled answers against the
    /// references, per seed; data = JSON lines `{"instruction": .., "response": ..}`.
    Instruct,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Sts => "sts",
            Task::Classification => "classification",
            Task::Pair => "pair",
            Task::All => "all",
            Task::Instruct => "instruct",
        }
    }
}

/// Arguments of `mrl eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task.
    #[arg(long, value_enum)]
    pub task: Task,
    /// The task's data file (the test split for `--task classification`); not with
    /// `--task all`, which reads the shared data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The training split of `--task classification` (TSV `label<TAB>text`).
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Matryoshka dims, comma separated (default: the hidden size, then every power of two
    /// below it down to 8 — 384,256,128,64,32,16,8 for MiniLM); each in 1 ..= the hidden
    /// size, none twice. Embedding tasks only.
    #[arg(long, value_parser = crate::numeric::dims)]
    pub dims: Option<DimList>,
    /// Also write the scores as JSON to this file (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The probe's inverse L2 strength (scikit-learn's `C`), a finite number > 0 [default: 1].
    /// `--task classification` and `all` only.
    #[arg(long, value_parser = crate::numeric::positive_float)]
    pub probe_c: Option<f64>,
    /// The probe's stopping tolerance on `‖∇(J/(C·n))‖_∞` (scikit-learn's `tol`), ≥ 0
    /// [default: 1e-5].
    #[arg(long, value_parser = crate::numeric::non_negative_float)]
    pub probe_tol: Option<f64>,
    /// The probe's L-BFGS iteration limit, ≥ 1 [default: 1000]; a dim that reaches it is
    /// reported as not converged.
    #[arg(long, value_parser = crate::numeric::positive)]
    pub probe_max_iter: Option<usize>,
    /// Also draw the scores against the dim as an SVG line chart in this file: one line per
    /// metric (with `--task all`, one per task: STS Spearman, probe accuracy, pair AP).
    /// Embedding tasks only.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub instruct: InstructArgs,
}

/// The JSON written by `--json` for one task.
#[derive(Serialize)]
struct EvalJson<'a, R: Serialize> {
    model: &'a str,
    task: Task,
    #[serde(skip_serializing_if = "Option::is_none")]
    train: Option<String>,
    data: String,
    #[serde(flatten)]
    report: &'a R,
}

/// One task's part of the `--task all` JSON.
#[derive(Serialize)]
struct TaskJson<'a, R: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    train: Option<String>,
    data: String,
    #[serde(flatten)]
    report: &'a R,
}

/// The JSON written by `--task all --json`.
#[derive(Serialize)]
struct AllJson<'a> {
    model: &'a str,
    task: Task,
    sts: TaskJson<'a, StsReport>,
    classification: TaskJson<'a, ClassificationReport>,
    pair: TaskJson<'a, PairReport>,
}

/// The shared data files of `--task all`, relative to `$MRL_SHARED/data`.
const ALL_STS: &str = "stsb_test.tsv";
const ALL_TRAIN: &str = "banking77_train.tsv";
const ALL_TEST: &str = "banking77_test.tsv";
const ALL_PAIRS: &str = "nli_pairs.tsv";

/// Runs `mrl eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if args.task != Task::Instruct {
        if let Some(flag) = args.instruct.flags_given().first() {
            anyhow::bail!(
                "{flag} applies to --task instruct only (generation with a decoder), not to \
                 --task {}",
                args.task.name()
            );
        }
    }
    if args.plot.is_some() && args.task == Task::Instruct {
        anyhow::bail!("--plot applies to the embedding tasks, not to --task instruct");
    }
    let probe_flags = [
        ("--probe-c", args.probe_c.is_some()),
        ("--probe-tol", args.probe_tol.is_some()),
        ("--probe-max-iter", args.probe_max_iter.is_some()),
    ];
    if let Some((flag, _)) = probe_flags.iter().find(|(_, given)| *given) {
        if !matches!(args.task, Task::Classification | Task::All) {
            anyhow::bail!(
                "{flag} applies to --task classification and all only, not to --task {}",
                args.task.name()
            );
        }
    }
    if args.train.is_some() && args.task != Task::Classification {
        anyhow::bail!(
            "--train applies to --task classification only, not to --task {}",
            args.task.name()
        );
    }
    if args.task == Task::All {
        if args.data.is_some() {
            anyhow::bail!(
                "--data does not apply to --task all: it reads {ALL_STS}, {ALL_TRAIN}, \
                 {ALL_TEST} and {ALL_PAIRS} from $MRL_SHARED/data"
            );
        }
        return run_all(args);
    }
    let Some(data) = args.data.clone() else {
        anyhow::bail!("--task {} needs --data FILE", args.task.name());
    };
    match args.task {
        Task::Sts => run_sts_task(args, data),
        Task::Classification => run_classification_task(args, data),
        Task::Pair => run_pair_task(args, data),
        Task::Instruct => crate::eval_instruct::run(args, data),
        Task::All => unreachable!("handled above"),
    }
}

/// Loads the encoder, prints its description and resolves `--dims`.
fn load_encoder(args: &EvalArgs, what: &str) -> anyhow::Result<(SentenceEncoder, Vec<usize>)> {
    let (encoder, dir) = args.model.load()?;
    let hidden = encoder.hidden_size();
    // Default: the model's Matryoshka ladder, largest dim first.
    let dims = args
        .dims
        .clone()
        .map_or_else(|| nested_dims(hidden).into_iter().rev().collect(), |d| d.0);
    for &dim in &dims {
        mrl_common::check_dim(dim, hidden).context("--dims")?;
    }
    eprintln!(
        "model {} ({}, {} layers, hidden {}, pooling {}, max length {}) on {:?}; {what}",
        dir.display(),
        encoder.backbone().architecture(),
        encoder.num_layers(),
        hidden,
        encoder.pooling(),
        encoder.max_length(),
        args.model.device,
    );
    Ok((encoder, dims))
}

/// The probe settings: the defaults, overridden by `--probe-*`.
fn probe_config(args: &EvalArgs) -> ProbeConfig {
    let default = ProbeConfig::default();
    ProbeConfig {
        c: args.probe_c.unwrap_or(default.c),
        tol: args.probe_tol.unwrap_or(default.tol),
        max_iter: args.probe_max_iter.unwrap_or(default.max_iter),
    }
}

/// One chart line: `metric` of every dim's scores.
fn line<S>(label: &str, dims: &[(usize, S)], metric: impl Fn(&S) -> f64) -> Line {
    Line {
        label: label.to_string(),
        points: dims.iter().map(|(d, s)| (*d, metric(s))).collect(),
    }
}

/// Writes the `--plot` chart, if asked for.
fn write_plot(args: &EvalArgs, lines: &[Line]) -> anyhow::Result<()> {
    let Some(path) = &args.plot else {
        return Ok(());
    };
    let title = format!("score ×100 vs dim — {}", args.model.model);
    crate::output::write_svg(path, "--plot", &title, lines)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn write_json(path: &Path, json: &impl Serialize) -> anyhow::Result<()> {
    crate::output::write_json(path, "--json", json)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Fits the probes, saying so first (they take a while on Banking77).
fn classify(
    args: &EvalArgs,
    encoder: &SentenceEncoder,
    train: &ClassificationDataset,
    test: &ClassificationDataset,
    dims: &[usize],
    label: &str,
) -> anyhow::Result<ClassificationReport> {
    let fit_start = std::cell::Cell::new(None);
    let report = run_classification(
        train,
        test,
        dims,
        &probe_config(args),
        |texts: &[&str]| {
            let out = args.model.encode_with_progress(encoder, texts, label);
            eprintln!("fitting a logistic-regression probe at {} dims", dims.len());
            fit_start.set(Some(std::time::Instant::now()));
            out
        },
    )?;
    let seconds = fit_start.get().map_or(0.0, |t| t.elapsed().as_secs_f64());
    let iterations: Vec<String> = report
        .dims
        .iter()
        .map(|(dim, s)| format!("{dim}: {}", s.iterations))
        .collect();
    eprintln!(
        "probes fitted in {seconds:.1} s (L-BFGS iterations per dim: {})",
        iterations.join(", ")
    );
    for (dim, scores) in &report.dims {
        if !scores.converged {
            eprintln!(
                "warning: the probe at dim {dim} did not converge in {} iterations",
                scores.iterations
            );
        }
    }
    Ok(report)
}

/// `mrl eval --task sts`.
fn run_sts_task(args: EvalArgs, data: PathBuf) -> anyhow::Result<()> {
    let dataset = StsDataset::from_tsv(&data)?;
    let (encoder, dims) = load_encoder(
        &args,
        &format!("{} pairs from {}", dataset.pairs.len(), data.display()),
    )?;
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
    write_plot(
        &args,
        &[
            line("Spearman", &report.dims, |s| s.spearman),
            line("Pearson", &report.dims, |s| s.pearson),
        ],
    )?;
    if let Some(path) = &args.json {
        write_json(
            path,
            &EvalJson {
                model: &args.model.model,
                task: args.task,
                train: None,
                data: data.display().to_string(),
                report: &report,
            },
        )?;
    }
    Ok(())
}

/// `mrl eval --task classification`.
fn run_classification_task(args: EvalArgs, data: PathBuf) -> anyhow::Result<()> {
    let Some(train_path) = args.train.clone() else {
        anyhow::bail!("--task classification needs --train FILE (and --data FILE, the test split)");
    };
    let train = ClassificationDataset::from_tsv(&train_path)?;
    let test = ClassificationDataset::from_tsv(&data)?;
    mrl_eval::classification::class_indices(&train, &test)?;
    let (encoder, dims) = load_encoder(
        &args,
        &format!(
            "{} training examples from {}, {} test examples from {}",
            train.examples.len(),
            train_path.display(),
            test.examples.len(),
            data.display()
        ),
    )?;
    let report = classify(&args, &encoder, &train, &test, &dims, "encoding")?;
    println!("{:>6}  {:>9}  {:>9}", "dim", "accuracy", "macro-F1");
    for (dim, scores) in &report.dims {
        println!(
            "{dim:>6}  {:>9.2}  {:>9.2}",
            scores.accuracy, scores.macro_f1
        );
    }
    write_plot(
        &args,
        &[
            line("accuracy", &report.dims, |s| s.accuracy),
            line("macro-F1", &report.dims, |s| s.macro_f1),
        ],
    )?;
    if let Some(path) = &args.json {
        write_json(
            path,
            &EvalJson {
                model: &args.model.model,
                task: args.task,
                train: Some(train_path.display().to_string()),
                data: data.display().to_string(),
                report: &report,
            },
        )?;
    }
    Ok(())
}

/// `mrl eval --task pair`.
fn run_pair_task(args: EvalArgs, data: PathBuf) -> anyhow::Result<()> {
    let dataset = PairDataset::from_tsv(&data)?;
    let (encoder, dims) = load_encoder(&args, &describe_pairs(&dataset))?;
    let report = run_pairs(&dataset, &dims, |sentences: &[&str]| {
        args.model
            .encode_with_progress(&encoder, sentences, "encoding")
    })?;
    println!("{:>6}  {:>9}  {:>9}  {:>9}", "dim", "accuracy", "F1", "AP");
    for (dim, scores) in &report.dims {
        println!(
            "{dim:>6}  {:>9.2}  {:>9.2}  {:>9.2}",
            scores.accuracy, scores.f1, scores.ap
        );
    }
    write_plot(
        &args,
        &[
            line("accuracy", &report.dims, |s| s.accuracy),
            line("F1", &report.dims, |s| s.f1),
            line("AP", &report.dims, |s| s.ap),
        ],
    )?;
    if let Some(path) = &args.json {
        write_json(
            path,
            &EvalJson {
                model: &args.model.model,
                task: args.task,
                train: None,
                data: data.display().to_string(),
                report: &report,
            },
        )?;
    }
    Ok(())
}

fn describe_pairs(dataset: &PairDataset) -> String {
    let positives = dataset.pairs.iter().filter(|p| p.label).count();
    let mut text = format!(
        "{} pairs ({positives} positive) from {}",
        dataset.pairs.len(),
        dataset.path.display()
    );
    if dataset.dropped > 0 {
        text.push_str(&format!(", {} neutral rows dropped", dataset.dropped));
    }
    text
}

/// `mrl eval --task all`: STS-B test, Banking77, SNLI pairs from `$MRL_SHARED/data`.
fn run_all(args: EvalArgs) -> anyhow::Result<()> {
    let shared = models::resolve::Resolver::from_env().shared;
    let path = |name: &str| shared.join("data").join(name);
    let missing: Vec<String> = [ALL_STS, ALL_TRAIN, ALL_TEST, ALL_PAIRS]
        .iter()
        .map(|name| path(name))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "--task all reads its data from $MRL_SHARED/data (MRL_SHARED = {}); missing: {}",
            shared.display(),
            missing.join(", ")
        );
    }
    let sts_path = path(ALL_STS);
    let (train_path, test_path, pairs_path) = (path(ALL_TRAIN), path(ALL_TEST), path(ALL_PAIRS));
    let sts_data = StsDataset::from_tsv(&sts_path)?;
    let train = ClassificationDataset::from_tsv(&train_path)?;
    let test = ClassificationDataset::from_tsv(&test_path)?;
    mrl_eval::classification::class_indices(&train, &test)?;
    let pairs = PairDataset::from_tsv(&pairs_path)?;
    let (encoder, dims) = load_encoder(
        &args,
        &format!(
            "STS: {} pairs from {}; classification: {} / {} examples from {} / {}; pairs: {}",
            sts_data.pairs.len(),
            sts_path.display(),
            train.examples.len(),
            test.examples.len(),
            train_path.display(),
            test_path.display(),
            describe_pairs(&pairs)
        ),
    )?;
    let sts = run_sts(&sts_data, &dims, |sentences: &[&str]| {
        args.model
            .encode_with_progress(&encoder, sentences, "encoding STS")
    })?;
    let classification = classify(
        &args,
        &encoder,
        &train,
        &test,
        &dims,
        "encoding classification",
    )?;
    let pair = run_pairs(&pairs, &dims, |sentences: &[&str]| {
        args.model
            .encode_with_progress(&encoder, sentences, "encoding pairs")
    })?;

    print!("{}", all_table(&sts, &classification, &pair));
    write_plot(
        &args,
        &[
            line("STS-B test Spearman", &sts.dims, |s| s.spearman),
            line("Banking77 probe accuracy", &classification.dims, |s| {
                s.accuracy
            }),
            line("SNLI pairs AP", &pair.dims, |s| s.ap),
        ],
    )?;
    if let Some(json) = &args.json {
        let file = |p: &Path| p.display().to_string();
        write_json(
            json,
            &AllJson {
                model: &args.model.model,
                task: Task::All,
                sts: TaskJson {
                    train: None,
                    data: file(&sts_path),
                    report: &sts,
                },
                classification: TaskJson {
                    train: Some(file(&train_path)),
                    data: file(&test_path),
                    report: &classification,
                },
                pair: TaskJson {
                    train: None,
                    data: file(&pairs_path),
                    report: &pair,
                },
            },
        )?;
    }
    Ok(())
}

/// The Markdown table of `--task all`: one row per dim, every task's scores ×100.
fn all_table(sts: &StsReport, classification: &ClassificationReport, pair: &PairReport) -> String {
    let mut out = String::from(
        "| dim | STS Spearman | STS Pearson | class. accuracy | class. macro-F1 | pair accuracy | pair F1 | pair AP |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (((dim, s), (_, c)), (_, p)) in sts.dims.iter().zip(&classification.dims).zip(&pair.dims) {
        out.push_str(&format!(
            "| {dim} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            s.spearman, s.pearson, c.accuracy, c.macro_f1, p.accuracy, p.f1, p.ap
        ));
    }
    out
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
            train: None,
            data: "d.tsv".to_string(),
            report: &report,
        };
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"{"model":"m","task":"sts","data":"d.tsv","n_pairs":3,"dims":{"384":{"spearman":82.0,"pearson":81.0}}}"#
        );
    }
}
