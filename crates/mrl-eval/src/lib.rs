//! Matryoshka evaluation: metrics and task runners, in plain Rust (no tensors).
//!
//! - [`correlation`] — Pearson, Spearman (average ranks for ties);
//! - [`sts`] — semantic textual similarity: for each dim, truncate → L2-normalise → cosine →
//!   Spearman/Pearson ×100 against the gold scores;
//! - [`classification`] — a logistic-regression probe per dim (scikit-learn's default
//!   `LogisticRegression` objective, L-BFGS): accuracy and macro-F1 ×100 (Banking77);
//! - [`pair`] — pair classification per dim: best-threshold accuracy and F1, average
//!   precision ×100 of the cosines (SNLI entailment vs contradiction);
//! - [`rouge`] — ROUGE-L exactly as Python's `rouge_score` (with its Porter stemmer, [`porter`]);
//! - [`instruct`] — instruction following (Dolly): the prompt template, the JSONL records, and
//!   ROUGE-L ×100 of generated answers per seed, mean ± std.
//!
//! The runners take embeddings or generated text (or a closure that produces them), never a
//! model type, so any encoder or generator can be evaluated.
//!
//! ```
//! use mrl_eval::sts::{run_sts, StsDataset};
//! use std::path::Path;
//!
//! let data = StsDataset::parse_tsv(
//!     "score\tsentence1\tsentence2\n0.5\ta\tb\n4.5\ta\tc\n2.0\tb\tc\n",
//!     Path::new("inline.tsv"),
//! )?;
//! let report = run_sts(&data, &[2], |sentences: &[&str]| {
//!     // a toy encoder: "a" → (1, 1), "b" → (1, 2), "c" → (1, 3)
//!     Ok::<_, String>(sentences.iter().map(|s| vec![1.0, (s.as_bytes()[0] - b'a' + 1) as f32]).collect())
//! })?;
//! assert_eq!(report.n_pairs, 3);
//! # Ok::<(), mrl_eval::EvalError>(())
//! ```

pub mod chart;
pub mod classification;
pub mod correlation;
mod dims;
pub mod error;
pub mod instruct;
pub mod pair;
pub mod porter;
pub mod rouge;
pub mod sts;

pub use classification::{
    fit_logistic_regression, run_classification, score_classification, ClassificationDataset,
    ClassificationReport, ClassificationScores, LogisticRegression, ProbeConfig,
};
pub use correlation::{average_ranks, pearson, spearman};
pub use error::{EvalError, Result};
pub use instruct::{
    read_instruct_jsonl, render_prompt, run_instruct, InstructPrediction, InstructRecord,
    InstructReport, SeedScore, PROMPT_TEMPLATE,
};
pub use pair::{
    pair_metrics, run_pairs, score_pairs, PairDataset, PairMetrics, PairReport, PairScores,
};
pub use rouge::{rouge_l, rouge_l_multi, RougeScore};
pub use sts::{run_sts, score_sts, DimScores, StsDataset, StsPair, StsReport};
