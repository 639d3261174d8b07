//! Semantic textual similarity (STS) at every Matryoshka dim.
//!
//! Protocol (MIPIC spec §7, sentence-transformers' `EmbeddingSimilarityEvaluator`): embed both
//! sides, and for each dim `d` truncate to the first `d` coordinates, L2-normalise, take the
//! cosine of each pair, and report Spearman and Pearson against the gold scores, ×100.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::correlation::{pearson, spearman};
use crate::error::{EvalError, Result};

/// One scored sentence pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StsPair {
    /// Gold similarity (0–5 for STS-B, 1–5 for SICK-R).
    pub score: f64,
    /// First sentence.
    pub sentence1: String,
    /// Second sentence.
    pub sentence2: String,
}

/// An STS dataset read from a TSV file with header `score\tsentence1\tsentence2`.
#[derive(Debug, Clone, PartialEq)]
pub struct StsDataset {
    /// The pairs, in file order.
    pub pairs: Vec<StsPair>,
}

impl StsDataset {
    /// Reads a TSV file: a header `score\tsentence1\tsentence2`, then one pair per line.
    ///
    /// # Errors
    /// [`EvalError::Io`] if the file cannot be read; [`EvalError::Empty`] if it has no pairs;
    /// [`EvalError::MalformedRow`] with the 1-based line number for a wrong header, a row without
    /// exactly three fields, or a score that is not a finite number.
    pub fn from_tsv(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_tsv(&text, path)
    }

    /// Parses TSV text; `path` only names the source in errors.
    ///
    /// # Errors
    /// As [`StsDataset::from_tsv`].
    pub fn parse_tsv(text: &str, path: &Path) -> Result<Self> {
        let malformed = |line: usize, message: String| EvalError::MalformedRow {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            None => return Err(EvalError::Empty(path.to_path_buf())),
            Some((_, header)) => {
                let header = header.trim_start_matches('\u{feff}').trim_end();
                if header != "score\tsentence1\tsentence2" {
                    return Err(malformed(
                        1,
                        format!("expected the header `score<TAB>sentence1<TAB>sentence2`, found `{header}`"),
                    ));
                }
            }
        }
        let mut pairs = Vec::new();
        for (index, line) in lines {
            let number = index + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [score, sentence1, sentence2] = fields.as_slice() else {
                return Err(malformed(
                    number,
                    format!("expected 3 tab-separated fields, found {}", fields.len()),
                ));
            };
            let score: f64 = score
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite())
                .ok_or_else(|| malformed(number, format!("score `{score}` is not a number")))?;
            pairs.push(StsPair {
                score,
                sentence1: sentence1.to_string(),
                sentence2: sentence2.to_string(),
            });
        }
        if pairs.is_empty() {
            return Err(EvalError::Empty(path.to_path_buf()));
        }
        Ok(Self { pairs })
    }

    /// The distinct sentences of both sides (first-seen order), and for each pair the indices of
    /// its two sentences in that list: each sentence is embedded once.
    pub fn unique_sentences(&self) -> (Vec<&str>, Vec<(usize, usize)>) {
        unique_pair_sentences(
            self.pairs
                .iter()
                .map(|p| (p.sentence1.as_str(), p.sentence2.as_str())),
        )
    }
}

/// The distinct sentences of a list of pairs (first-seen order), and for each pair the indices
/// of its two sentences in that list.
pub fn unique_pair_sentences<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> (Vec<&'a str>, Vec<(usize, usize)>) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut sentences = Vec::new();
    let mut lookup = |s| {
        *index.entry(s).or_insert_with(|| {
            sentences.push(s);
            sentences.len() - 1
        })
    };
    let pairs = pairs.map(|(a, b)| (lookup(a), lookup(b))).collect();
    (sentences, pairs)
}

/// Spearman and Pearson ×100 at one dim.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DimScores {
    /// Spearman's ρ ×100.
    pub spearman: f64,
    /// Pearson's r ×100.
    pub pearson: f64,
}

/// The result of an STS run: scores per dim, in the order the dims were requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StsReport {
    /// Number of pairs scored.
    pub n_pairs: usize,
    /// `(dim, scores)` in request order; serialises as `{"384": {...}, "256": {...}}`.
    #[serde(
        serialize_with = "crate::dims::serialize",
        deserialize_with = "crate::dims::deserialize"
    )]
    pub dims: Vec<(usize, DimScores)>,
}

impl StsReport {
    /// The scores at `dim`, if it was evaluated.
    pub fn get(&self, dim: usize) -> Option<DimScores> {
        self.dims.iter().find(|(d, _)| *d == dim).map(|(_, s)| *s)
    }
}

/// Scores precomputed embeddings: `embeddings[pair_index[i].0]` and `embeddings[pair_index[i].1]`
/// are the two sides of `pairs[i]`.
///
/// # Errors
/// [`EvalError::DimTooLarge`] if a dim exceeds the embedding width (or is 0);
/// [`EvalError::Correlation`] if the cosines or gold scores are constant.
pub fn score_sts(
    pairs: &[StsPair],
    embeddings: &[Vec<f32>],
    pair_index: &[(usize, usize)],
    dims: &[usize],
) -> Result<StsReport> {
    let width = embeddings.iter().map(Vec::len).min().unwrap_or(0);
    if let Some(&dim) = dims.iter().find(|&&d| d == 0 || d > width) {
        return Err(EvalError::DimTooLarge { dim, width });
    }
    let gold: Vec<f64> = pairs.iter().map(|p| p.score).collect();
    let mut report = StsReport {
        n_pairs: pairs.len(),
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
        report.dims.push((
            dim,
            DimScores {
                spearman: 100.0 * spearman(&cosines, &gold)?,
                pearson: 100.0 * pearson(&cosines, &gold)?,
            },
        ));
    }
    Ok(report)
}

/// Runs the STS task: embeds every distinct sentence once through `encode` (which receives all
/// of them and is expected to batch), then scores each dim with [`score_sts`].
///
/// # Errors
/// [`EvalError::Encode`] wrapping the encoder's error, or [`EvalError::Encode`] if it returns the
/// wrong number of vectors; otherwise as [`score_sts`].
pub fn run_sts<E: std::fmt::Display>(
    dataset: &StsDataset,
    dims: &[usize],
    encode: impl FnOnce(&[&str]) -> std::result::Result<Vec<Vec<f32>>, E>,
) -> Result<StsReport> {
    let (sentences, pair_index) = dataset.unique_sentences();
    let embeddings = encode_all(&sentences, encode)?;
    score_sts(&dataset.pairs, &embeddings, &pair_index, dims)
}

/// `encode(texts)`, checked to return one vector per text: the embedding step of every task
/// runner.
///
/// # Errors
/// [`EvalError::Encode`] wrapping the encoder's error, or when it returns the wrong number of
/// vectors.
pub(crate) fn encode_all<E: std::fmt::Display>(
    texts: &[&str],
    encode: impl FnOnce(&[&str]) -> std::result::Result<Vec<Vec<f32>>, E>,
) -> Result<Vec<Vec<f32>>> {
    let embeddings = encode(texts).map_err(|e| EvalError::Encode(e.to_string()))?;
    if embeddings.len() != texts.len() {
        return Err(EvalError::Encode(format!(
            "the encoder returned {} vectors for {} texts",
            embeddings.len(),
            texts.len()
        )));
    }
    Ok(embeddings)
}

/// The first `dim` coordinates, scaled to unit L2 norm (norm clamped at 1e-12), in f64.
pub fn truncate_normalize(embedding: &[f32], dim: usize) -> Vec<f64> {
    let head: Vec<f64> = embedding[..dim].iter().map(|&v| v as f64).collect();
    let norm = head.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    head.into_iter().map(|v| v / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StsDataset> {
        StsDataset::parse_tsv(text, Path::new("mem.tsv"))
    }

    #[test]
    fn parses_pairs_and_skips_blank_lines() {
        let data = parse("score\tsentence1\tsentence2\n2.5\tA b.\tC d.\n\n4\tE\tF\r\n").unwrap();
        assert_eq!(data.pairs.len(), 2);
        assert_eq!(data.pairs[1].score, 4.0);
        assert_eq!(data.pairs[1].sentence2, "F");
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let err = parse("score\tsentence1\tsentence2\n1\ta\tb\n2\tonly two\n").unwrap_err();
        assert!(
            matches!(err, EvalError::MalformedRow { line: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("mem.tsv:3"), "{err}");
        let err = parse("score\tsentence1\tsentence2\nhigh\ta\tb\n").unwrap_err();
        assert!(
            matches!(err, EvalError::MalformedRow { line: 2, .. }),
            "{err}"
        );
        let err = parse("a\tb\tc\n1\ta\tb\n").unwrap_err();
        assert!(
            matches!(err, EvalError::MalformedRow { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn empty_files_are_rejected() {
        assert!(matches!(parse("").unwrap_err(), EvalError::Empty(_)));
        assert!(matches!(
            parse("score\tsentence1\tsentence2\n").unwrap_err(),
            EvalError::Empty(_)
        ));
    }

    #[test]
    fn sentences_are_deduplicated() {
        let data = parse("score\tsentence1\tsentence2\n1\ta\tb\n2\tb\tc\n3\ta\ta\n").unwrap();
        let (sentences, index) = data.unique_sentences();
        assert_eq!(sentences, ["a", "b", "c"]);
        assert_eq!(index, [(0, 1), (1, 2), (0, 0)]);
    }

    #[test]
    fn scores_depend_on_the_truncation_dim() {
        // Three pairs. At d=1 every vector is ±e1, at d=2 the second coordinate decides.
        let data = parse("score\tsentence1\tsentence2\n1\ta\tb\n3\ta\tc\n5\ta\td\n").unwrap();
        let embeddings = vec![
            vec![1.0, 0.0],  // a
            vec![1.0, -2.0], // b: cos(a,b) at d=2 = 1/sqrt(5) = 0.447
            vec![1.0, 1.0],  // c: 0.707
            vec![-1.0, 0.1], // d: -0.995
        ];
        let (_, index) = data.unique_sentences();
        let report = score_sts(&data.pairs, &embeddings, &index, &[2, 1]).unwrap();
        // d=2 cosines [0.447, 0.707, -0.995] vs gold [1, 3, 5]: ranks [2, 3, 1] vs [1, 2, 3]
        // → ρ = Pearson([2,3,1],[1,2,3]) = -0.5.
        assert!((report.dims[0].1.spearman - -50.0).abs() < 1e-9);
        assert_eq!(report.dims[0].0, 2);
        // d=1 cosines [1, 1, -1]: ranks [2.5, 2.5, 1] → ρ = Pearson([2.5,2.5,1],[1,2,3]) = -0.866.
        assert!((report.dims[1].1.spearman - -86.602_540_378_443_86).abs() < 1e-9);
        assert_eq!(report.n_pairs, 3);
        assert!(report.get(1).is_some() && report.get(3).is_none());
    }

    #[test]
    fn json_keeps_dims_in_request_order() {
        let report = StsReport {
            n_pairs: 2,
            dims: vec![
                (
                    384,
                    DimScores {
                        spearman: 82.0,
                        pearson: 80.0,
                    },
                ),
                (
                    8,
                    DimScores {
                        spearman: 62.5,
                        pearson: 60.0,
                    },
                ),
            ],
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"n_pairs":2,"dims":{"384":{"spearman":82.0,"pearson":80.0},"8":{"spearman":62.5,"pearson":60.0}}}"#
        );
    }

    #[test]
    fn a_dim_wider_than_the_embeddings_is_an_error() {
        let data = parse("score\tsentence1\tsentence2\n1\ta\tb\n2\ta\tb\n").unwrap();
        let (_, index) = data.unique_sentences();
        let err = score_sts(&data.pairs, &[vec![1.0; 4], vec![0.5; 4]], &index, &[8]).unwrap_err();
        assert!(
            matches!(err, EvalError::DimTooLarge { dim: 8, width: 4 }),
            "{err}"
        );
    }

    #[test]
    fn run_sts_embeds_each_sentence_once() {
        let data = parse("score\tsentence1\tsentence2\n1\ta\tb\n2\ta\tc\n3\tc\tb\n").unwrap();
        let mut seen = 0;
        let report = run_sts(&data, &[2], |sentences: &[&str]| {
            seen = sentences.len();
            Ok::<_, String>(vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]])
        })
        .unwrap();
        assert_eq!(seen, 3);
        assert_eq!(report.n_pairs, 3);
        let err = run_sts(&data, &[2], |_: &[&str]| Err::<Vec<Vec<f32>>, _>("boom")).unwrap_err();
        assert!(err.to_string().contains("boom"));
    }
}
