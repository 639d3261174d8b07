//! Pair classification at every Matryoshka dim (MTEB's pair-classification protocol, e.g.
//! duplicate detection or SNLI entailment).
//!
//! For each dim `d`: truncate both sentences' embeddings to `d`, L2-normalise, take the cosine
//! `s_i` of each pair, and report against the 0/1 labels, ×100:
//!
//! - **accuracy** — the best accuracy of the rule `predict positive ⇔ s_i ≥ t` over every
//!   threshold `t`: the sweep visits every cut between distinct cosines, plus "all positive" and
//!   "all negative", so tied cosines always fall on the same side (MTEB's sweep walks the sorted
//!   pairs one at a time and can split a tie, which no threshold realises; without ties and
//!   away from the all-positive cut the two agree);
//! - **f1** — the best F1 = `2·TP / (2·TP + FP + FN)` of the same sweep (its own threshold);
//! - **ap** — average precision as `sklearn.metrics.average_precision_score` defines it:
//!   `AP = Σ_k (R_k − R_{k−1}) · P_k` over the distinct cosines in decreasing order, where
//!   `P_k`, `R_k` are the precision and recall of predicting positive every pair with cosine
//!   ≥ the k-th distinct value (a group of tied cosines enters as one step, as in
//!   `precision_recall_curve`).
//!
//! The reported thresholds ([`PairMetrics`]) are the lowest cosine predicted positive
//! (`+∞` when predicting all negative is best). Checked against scikit-learn 1.9.1 and a
//! brute-force threshold sweep (`crates/mrl-eval/scripts/make_probe_reference.py`,
//! `tests/probe_reference.rs`): equal within 1e-9, with and without ties.
//!
//! # Data
//! TSV with one of two headers:
//! - `sentence1<TAB>sentence2<TAB>label` with labels `0` / `1`;
//! - `premise<TAB>hypothesis<TAB>label` (SNLI, `nli_pairs.tsv`): `entailment` is positive,
//!   `contradiction` negative, `neutral` rows are dropped (counted in
//!   [`PairDataset::dropped`]).
//!
//! Reference: MTEB, Muennighoff et al. 2022, arXiv:2210.07316 (pair classification: cosine,
//! best-threshold accuracy and F1, average precision); SNLI, Bowman et al. 2015,
//! arXiv:1508.05326.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::sts::{truncate_normalize, unique_pair_sentences};

/// One labelled sentence pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledPair {
    /// First sentence (the premise for SNLI).
    pub sentence1: String,
    /// Second sentence (the hypothesis for SNLI).
    pub sentence2: String,
    /// Positive (paraphrase / entailment) or negative.
    pub label: bool,
}

/// A pair-classification dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairDataset {
    /// The file it was read from.
    pub path: PathBuf,
    /// The kept pairs, in file order.
    pub pairs: Vec<LabelledPair>,
    /// Rows dropped (SNLI `neutral`).
    pub dropped: usize,
}

impl PairDataset {
    /// Reads a TSV file in one of the two layouts of the module docs.
    ///
    /// # Errors
    /// [`EvalError::Io`] if unreadable; [`EvalError::Empty`] without kept pairs;
    /// [`EvalError::MalformedRow`] (1-based line) for an unknown header, a row without exactly
    /// three fields or a label outside the layout's set; [`EvalError::SingleClass`] if every
    /// kept pair has the same label.
    pub fn from_tsv(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_tsv(&text, path)
    }

    /// Parses TSV text; `path` names the source in errors.
    ///
    /// # Errors
    /// As [`PairDataset::from_tsv`].
    pub fn parse_tsv(text: &str, path: &Path) -> Result<Self> {
        let malformed = |line: usize, message: String| EvalError::MalformedRow {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = text.lines().enumerate();
        let Some((_, header)) = lines.next() else {
            return Err(EvalError::Empty(path.to_path_buf()));
        };
        let snli = match header.trim_start_matches('\u{feff}').trim_end() {
            "sentence1\tsentence2\tlabel" => false,
            "premise\thypothesis\tlabel" => true,
            other => {
                return Err(malformed(
                    1,
                    format!(
                        "expected the header `sentence1<TAB>sentence2<TAB>label` (labels 0/1) or \
                         `premise<TAB>hypothesis<TAB>label` (SNLI labels), found `{other}`"
                    ),
                ))
            }
        };
        let mut pairs = Vec::new();
        let mut dropped = 0;
        for (index, line) in lines {
            let number = index + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [sentence1, sentence2, label] = fields.as_slice() else {
                return Err(malformed(
                    number,
                    format!("expected 3 tab-separated fields, found {}", fields.len()),
                ));
            };
            let label = match (snli, label.trim()) {
                (false, "1") | (true, "entailment") => true,
                (false, "0") | (true, "contradiction") => false,
                (true, "neutral") => {
                    dropped += 1;
                    continue;
                }
                (false, other) => {
                    return Err(malformed(number, format!("label `{other}` is not 0 or 1")))
                }
                (true, other) => {
                    return Err(malformed(
                        number,
                        format!("label `{other}` is not entailment, neutral or contradiction"),
                    ))
                }
            };
            pairs.push(LabelledPair {
                sentence1: sentence1.to_string(),
                sentence2: sentence2.to_string(),
                label,
            });
        }
        let Some(first) = pairs.first() else {
            return Err(EvalError::Empty(path.to_path_buf()));
        };
        if pairs.iter().all(|p| p.label == first.label) {
            let label = match (snli, first.label) {
                (false, l) => u8::from(l).to_string(),
                (true, true) => "entailment".to_string(),
                (true, false) => "contradiction".to_string(),
            };
            return Err(EvalError::SingleClass {
                path: path.to_path_buf(),
                label,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            pairs,
            dropped,
        })
    }

    /// The distinct sentences of both sides (first-seen order) and each pair's two indices.
    pub fn unique_sentences(&self) -> (Vec<&str>, Vec<(usize, usize)>) {
        unique_pair_sentences(
            self.pairs
                .iter()
                .map(|p| (p.sentence1.as_str(), p.sentence2.as_str())),
        )
    }
}

/// The metrics of one score list, ×100, with the thresholds that reach them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairMetrics {
    /// Best accuracy ×100.
    pub accuracy: f64,
    /// Its threshold (`s ≥ t` is positive; `+∞`: all negative).
    pub accuracy_threshold: f64,
    /// Best F1 ×100.
    pub f1: f64,
    /// Its threshold.
    pub f1_threshold: f64,
    /// Average precision ×100.
    pub ap: f64,
}

/// Best-threshold accuracy and F1 and average precision of `scores` against `labels`.
///
/// Among equally good thresholds the highest is reported.
///
/// # Errors
/// [`EvalError::InvalidArgument`] if the lengths differ, the lists are empty, a score is not
/// finite, or the labels are all positive or all negative.
pub fn pair_metrics(scores: &[f64], labels: &[bool]) -> Result<PairMetrics> {
    let invalid = |message: String| EvalError::InvalidArgument {
        name: "pair scores",
        message,
    };
    if scores.len() != labels.len() || scores.is_empty() {
        return Err(invalid(format!(
            "{} scores for {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(invalid(format!("non-finite score {s}")));
    }
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(invalid(format!(
            "{positives} positive and {negatives} negative labels: both classes are needed"
        )));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n = scores.len() as f64;
    // The all-negative cut.
    let mut best_accuracy = (negatives as f64 / n, f64::INFINITY);
    let mut best_f1 = (0.0, f64::INFINITY);
    let mut ap = 0.0;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut start = 0;
    while start < order.len() {
        let value = scores[order[start]];
        let mut end = start;
        while end < order.len() && scores[order[end]] == value {
            if labels[order[end]] {
                tp += 1;
            } else {
                fp += 1;
            }
            end += 1;
        }
        // Cut: every pair with score ≥ value is positive.
        let fn_ = positives - tp;
        let tn = negatives - fp;
        let accuracy = (tp + tn) as f64 / n;
        if accuracy > best_accuracy.0 {
            best_accuracy = (accuracy, value);
        }
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64;
        if f1 > best_f1.0 {
            best_f1 = (f1, value);
        }
        let precision = tp as f64 / (tp + fp) as f64;
        // Recall rises by (this group's positives) / P.
        let group_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        ap += group_positives as f64 / positives as f64 * precision;
        start = end;
    }
    Ok(PairMetrics {
        accuracy: 100.0 * best_accuracy.0,
        accuracy_threshold: best_accuracy.1,
        f1: 100.0 * best_f1.0,
        f1_threshold: best_f1.1,
        ap: 100.0 * ap,
    })
}

/// Accuracy, F1 and AP ×100 at one dim.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairScores {
    /// Best-threshold accuracy ×100.
    pub accuracy: f64,
    /// Best-threshold F1 ×100.
    pub f1: f64,
    /// Average precision ×100.
    pub ap: f64,
}

/// The result of a pair-classification run: scores per dim, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairReport {
    /// Pairs scored.
    pub n_pairs: usize,
    /// Positive pairs among them.
    pub n_positive: usize,
    /// `(dim, scores)`; serialises as `{"384": {"accuracy": .., "f1": .., "ap": ..}, ...}`.
    #[serde(
        serialize_with = "crate::dims::serialize",
        deserialize_with = "crate::dims::deserialize"
    )]
    pub dims: Vec<(usize, PairScores)>,
}

/// Scores precomputed embeddings: `embeddings[pair_index[i].0]` and `[.1]` are the two sides
/// of `pairs[i]`.
///
/// # Errors
/// [`EvalError::DimTooLarge`] for a dim of 0 or wider than the embeddings; as
/// [`pair_metrics`].
pub fn score_pairs(
    pairs: &[LabelledPair],
    embeddings: &[Vec<f32>],
    pair_index: &[(usize, usize)],
    dims: &[usize],
) -> Result<PairReport> {
    let width = embeddings.iter().map(Vec::len).min().unwrap_or(0);
    if let Some(&dim) = dims.iter().find(|&&d| d == 0 || d > width) {
        return Err(EvalError::DimTooLarge { dim, width });
    }
    let labels: Vec<bool> = pairs.iter().map(|p| p.label).collect();
    let mut report = PairReport {
        n_pairs: pairs.len(),
        n_positive: labels.iter().filter(|&&l| l).count(),
        dims: Vec::with_capacity(dims.len()),
    };
    for &dim in dims {
        let unit: Vec<Vec<f64>> = embeddings
            .iter()
            .map(|e| truncate_normalize(e, dim))
            .collect();
        let cosines: Vec<f64> = pair_index
            .iter()
            .map(|&(a, b)| unit[a].iter().zip(&unit[b]).map(|(x, y)| x * y).sum())
            .collect();
        let m = pair_metrics(&cosines, &labels)?;
        report.dims.push((
            dim,
            PairScores {
                accuracy: m.accuracy,
                f1: m.f1,
                ap: m.ap,
            },
        ));
    }
    Ok(report)
}

/// Runs the pair task: embeds every distinct sentence once through `encode`, then
/// [`score_pairs`].
///
/// # Errors
/// [`EvalError::Encode`] wrapping the encoder's error or a wrong number of vectors; otherwise
/// as [`score_pairs`].
pub fn run_pairs<E: std::fmt::Display>(
    dataset: &PairDataset,
    dims: &[usize],
    encode: impl FnOnce(&[&str]) -> std::result::Result<Vec<Vec<f32>>, E>,
) -> Result<PairReport> {
    let (sentences, pair_index) = dataset.unique_sentences();
    let embeddings = crate::sts::encode_all(&sentences, encode)?;
    score_pairs(&dataset.pairs, &embeddings, &pair_index, dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PairDataset> {
        PairDataset::parse_tsv(text, Path::new("mem.tsv"))
    }

    #[test]
    fn parses_both_layouts_and_drops_neutral() {
        let data = parse("sentence1\tsentence2\tlabel\na\tb\t1\nc\td\t0\n").unwrap();
        assert_eq!(data.pairs.len(), 2);
        assert!(data.pairs[0].label && !data.pairs[1].label);
        let snli = parse(
            "premise\thypothesis\tlabel\np\th1\tneutral\np\th2\tentailment\np\th3\tcontradiction\n",
        )
        .unwrap();
        assert_eq!(snli.pairs.len(), 2);
        assert_eq!(snli.dropped, 1);
        assert!(snli.pairs[0].label && !snli.pairs[1].label);
        assert_eq!(snli.unique_sentences().0, ["p", "h2", "h3"]);
    }

    #[test]
    fn bad_rows_and_single_classes_are_errors() {
        for (text, line, needle) in [
            ("s1\ts2\tlabel\na\tb\t1\n", 1, "expected the header"),
            (
                "sentence1\tsentence2\tlabel\na\tb\t1\nc\td\t2\n",
                3,
                "not 0 or 1",
            ),
            ("sentence1\tsentence2\tlabel\na\tb\n", 2, "expected 3"),
            ("premise\thypothesis\tlabel\na\tb\t1\n", 2, "not entailment"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(err, EvalError::MalformedRow { line: l, .. } if l == line),
                "{text:?}: {err}"
            );
            assert!(err.to_string().contains(needle), "{err}");
        }
        let err = parse("sentence1\tsentence2\tlabel\na\tb\t1\nc\td\t1\n").unwrap_err();
        assert!(matches!(err, EvalError::SingleClass { .. }), "{err}");
        let err = parse("premise\thypothesis\tlabel\na\tb\tneutral\n").unwrap_err();
        assert!(matches!(err, EvalError::Empty(_)), "{err}");
    }

    #[test]
    fn metrics_match_a_hand_computation_with_ties() {
        // Sorted: 0.9 (+), 0.5 (+, −) tied, 0.1 (−). P = 2, N = 2.
        let m = pair_metrics(&[0.5, 0.9, 0.1, 0.5], &[true, true, false, false]).unwrap();
        // Cuts: ≥0.9 → acc 3/4, F1 2/3; ≥0.5 → acc 3/4, F1 4/5; ≥0.1 → acc 1/2, F1 2/3.
        assert!((m.accuracy - 75.0).abs() < 1e-12);
        assert_eq!(m.accuracy_threshold, 0.9);
        assert!((m.f1 - 80.0).abs() < 1e-12);
        assert_eq!(m.f1_threshold, 0.5);
        // AP = ½·1 + ½·(2/3).
        assert!((m.ap - 100.0 * (0.5 + 1.0 / 3.0)).abs() < 1e-12, "{}", m.ap);
    }

    #[test]
    fn perfect_and_inverted_scores() {
        let m = pair_metrics(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]).unwrap();
        assert_eq!((m.accuracy, m.f1, m.ap), (100.0, 100.0, 100.0));
        let m = pair_metrics(&[0.1, 0.2, 0.8, 0.9], &[true, true, false, false]).unwrap();
        // All negative gives 50 %; all positive gives F1 2/3.
        assert_eq!(m.accuracy, 50.0);
        assert_eq!(m.accuracy_threshold, f64::INFINITY);
        assert!((m.f1 - 200.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn metrics_are_invariant_under_increasing_maps_and_bounded() {
        // A deterministic pseudo-random sample with ties.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for _ in 0..20 {
            let n = 5 + (next() * 40.0) as usize;
            let scores: Vec<f64> = (0..n).map(|_| (next() * 8.0).floor() / 8.0).collect();
            let mut labels: Vec<bool> = (0..n).map(|_| next() < 0.5).collect();
            labels[0] = true;
            labels[1] = false;
            let m = pair_metrics(&scores, &labels).unwrap();
            let mapped: Vec<f64> = scores.iter().map(|s| (3.0 * s).exp() - 2.0).collect();
            let m2 = pair_metrics(&mapped, &labels).unwrap();
            assert!((m.accuracy - m2.accuracy).abs() < 1e-9);
            assert!((m.f1 - m2.f1).abs() < 1e-9);
            assert!((m.ap - m2.ap).abs() < 1e-9);
            let p = labels.iter().filter(|&&l| l).count() as f64 / n as f64;
            // Never below the better constant rule (all negative / all positive); AP in (0, 100].
            assert!(m.accuracy >= 100.0 * p.max(1.0 - p) - 1e-9);
            assert!(m.f1 >= 100.0 * 2.0 * p / (1.0 + p) - 1e-9);
            assert!(m.ap > 0.0 && m.ap <= 100.0 + 1e-9);
            // Negating the scores and flipping the labels gives the same partitions.
            let flipped: Vec<f64> = scores.iter().map(|s| -s).collect();
            let flipped_labels: Vec<bool> = labels.iter().map(|l| !l).collect();
            let m3 = pair_metrics(&flipped, &flipped_labels).unwrap();
            assert!((m.accuracy - m3.accuracy).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_metric_inputs_are_refused() {
        assert!(pair_metrics(&[0.1], &[true, false]).is_err());
        assert!(pair_metrics(&[], &[]).is_err());
        assert!(pair_metrics(&[0.1, 0.2], &[true, true]).is_err());
        let err = pair_metrics(&[f64::NAN, 0.2], &[true, false]).unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
    }

    #[test]
    fn scores_per_dim_and_json_shape() {
        let data = parse("sentence1\tsentence2\tlabel\na\tb\t1\na\tc\t0\n").unwrap();
        let (sentences, index) = data.unique_sentences();
        assert_eq!(sentences, ["a", "b", "c"]);
        // d=1: all cosines 1 (tie) → AP ½; d=2: b is close to a, c is not.
        let embeddings = vec![vec![1.0, 0.0], vec![1.0, 0.1], vec![1.0, -5.0]];
        let report = score_pairs(&data.pairs, &embeddings, &index, &[2, 1]).unwrap();
        assert_eq!(report.dims[0].1.ap, 100.0);
        assert_eq!(report.dims[1].1.ap, 50.0);
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"n_pairs":2,"n_positive":1,"dims":{"2":{"accuracy":100.0,"f1":100.0,"ap":100.0},"1":{"accuracy":50.0,"f1":66.66666666666666,"ap":50.0}}}"#
        );
        let err = score_pairs(&data.pairs, &embeddings, &index, &[3]).unwrap_err();
        assert!(
            matches!(err, EvalError::DimTooLarge { dim: 3, width: 2 }),
            "{err}"
        );
    }
}
