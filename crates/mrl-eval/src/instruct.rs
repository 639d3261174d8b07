//! Instruction following, scored by ROUGE-L against the reference response (the Dolly protocol
//! of MiniLLM, arXiv 2306.08543, and DSKD, arXiv 2406.17328).
//!
//! Data: JSON lines `{"instruction": .., "response": ..}` ([`read_instruct_jsonl`]). Each
//! instruction is rendered with [`PROMPT_TEMPLATE`] — the template the distillation trainer
//! trains on — and a generator (any closure: this crate knows no model) continues it; the
//! prediction is scored with [`crate::rouge::rouge_l`] against the record's response.
//! [`run_instruct`] does this once per seed and reports, ×100:
//!
//! ```text
//! score(seed) = 100 · mean over records of ROUGE-L F1(prediction(record, seed), response)
//! mean = mean over seeds of score(seed)
//! std  = sqrt(mean over seeds of (score(seed) − mean)²)     (population std, ddof = 0)
//! ```
//!
//! DSKD reports the mean over seeds (10, 20, 30, 40, 50); the population std is used so that a
//! single seed has std 0 rather than an undefined value.
//!
//! ```
//! use mrl_eval::instruct::{render_prompt, run_instruct, InstructRecord};
//!
//! let records = vec![InstructRecord {
//!     instruction: "Name a colour.".into(),
//!     response: "Blue is a colour.".into(),
//! }];
//! assert_eq!(render_prompt("Name a colour."), "### Instruction:\nName a colour.\n\n### Response:\n");
//! let report = run_instruct(&records, 0, &[10, 20], |_, _, seed| {
//!     Ok::<_, String>(if seed == 10 { "Blue is a colour.".into() } else { "Red.".into() })
//! }, |_| {})?;
//! assert_eq!(report.seeds[0].rouge_l, 100.0);
//! assert_eq!(report.seeds[1].rouge_l, 0.0);
//! assert_eq!((report.mean, report.std), (50.0, 50.0));
//! # Ok::<(), mrl_eval::EvalError>(())
//! ```

use std::fmt::Display;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::rouge::rouge_l;

/// One instruction and its reference response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructRecord {
    /// The instruction (the prompt's content).
    pub instruction: String,
    /// The reference response.
    pub response: String,
}

/// The prompt of an instruction; `{instruction}` is replaced by the instruction text. The
/// prompt is tokenised without special tokens (no BOS), and the model's answer follows it.
pub const PROMPT_TEMPLATE: &str = "### Instruction:\n{instruction}\n\n### Response:\n";

/// [`PROMPT_TEMPLATE`] filled in with `instruction` (taken verbatim, braces included).
pub fn render_prompt(instruction: &str) -> String {
    let (before, after) = PROMPT_TEMPLATE
        .split_once("{instruction}")
        .expect("the template has an {instruction} slot");
    format!("{before}{instruction}{after}")
}

/// Reads instruction records from a JSON-lines file (see [`parse_instruct_jsonl`]).
///
/// # Errors
/// [`EvalError::Io`] naming the file if it cannot be read; otherwise as
/// [`parse_instruct_jsonl`].
pub fn read_instruct_jsonl(path: &Path) -> Result<Vec<InstructRecord>> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_instruct_jsonl(&text, path)
}

/// The non-blank lines of a JSON-lines text with their 1-based line numbers (a leading byte-order
/// mark removed): one record per item, in order.
pub fn jsonl_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let line = if index == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        (!line.trim().is_empty()).then_some((index + 1, line))
    })
}

/// Parses JSON lines, one object per line with string fields `instruction` and `response`
/// (other fields are ignored); blank lines are skipped. `path` only names the source in errors.
///
/// # Errors
/// [`EvalError::MalformedRow`] with the 1-based line number for a line that is not valid
/// JSON, not an object, misses `instruction` or `response`, or has a non-string one;
/// [`EvalError::Empty`] when there is no record.
pub fn parse_instruct_jsonl(text: &str, path: &Path) -> Result<Vec<InstructRecord>> {
    let malformed = |line: usize, message: String| EvalError::MalformedRow {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut records = Vec::new();
    for (number, line) in jsonl_lines(text) {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| malformed(number, format!("not valid JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| {
            malformed(
                number,
                format!(
                    "expected a JSON object with \"instruction\" and \"response\", found {}",
                    kind(&value)
                ),
            )
        })?;
        let field = |name: &str| match object.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(malformed(
                number,
                format!("\"{name}\" is {}, expected a string", kind(other)),
            )),
            None => Err(malformed(number, format!("missing \"{name}\""))),
        };
        records.push(InstructRecord {
            instruction: field("instruction")?,
            response: field("response")?,
        });
    }
    if records.is_empty() {
        return Err(EvalError::Empty(path.to_path_buf()));
    }
    Ok(records)
}

/// "a number", "null", … for error messages.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// One generated answer and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructPrediction {
    /// Index of the record in the data file (0-based).
    pub index: usize,
    /// The run's seed.
    pub seed: u64,
    /// The generated text.
    pub prediction: String,
    /// ROUGE-L F1 ×100 against the record's response.
    pub rouge_l: f64,
}

/// The score of one seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeedScore {
    /// The seed.
    pub seed: u64,
    /// Mean ROUGE-L F1 ×100 over the records.
    pub rouge_l: f64,
}

/// The result of [`run_instruct`]. Scores are ROUGE-L F1 ×100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructReport {
    /// Number of records scored per seed.
    pub n_records: usize,
    /// Per seed, in the order given.
    pub seeds: Vec<SeedScore>,
    /// Mean of the per-seed scores.
    pub mean: f64,
    /// Population standard deviation (ddof = 0) of the per-seed scores; 0 for one seed.
    pub std: f64,
    /// Every prediction, seed by seed, records in order (omitted from JSON when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<InstructPrediction>,
}

/// Generates an answer to every record once per seed and scores it (see the module docs).
///
/// `generate(index, record, seed)` returns the answer to `record`, whose index in the data file
/// is `index` (`first_index` + its position in `records`), for the run with `seed`; deriving the
/// sampler's seed from both keeps a record's answer the same whatever range is evaluated.
/// `on_prediction` is called after each answer (progress reporting).
///
/// # Errors
/// [`EvalError::InvalidArgument`] for no records, no seeds or a repeated seed;
/// [`EvalError::Generate`] naming the record and seed when `generate` fails.
pub fn run_instruct<E: Display>(
    records: &[InstructRecord],
    first_index: usize,
    seeds: &[u64],
    mut generate: impl FnMut(usize, &InstructRecord, u64) -> std::result::Result<String, E>,
    mut on_prediction: impl FnMut(&InstructPrediction),
) -> Result<InstructReport> {
    if records.is_empty() {
        return Err(EvalError::InvalidArgument {
            name: "records",
            message: "no records to evaluate".into(),
        });
    }
    if seeds.is_empty() {
        return Err(EvalError::InvalidArgument {
            name: "seeds",
            message: "no seeds".into(),
        });
    }
    for (i, seed) in seeds.iter().enumerate() {
        if let Some(first) = seeds[..i].iter().position(|s| s == seed) {
            return Err(EvalError::InvalidArgument {
                name: "seeds",
                message: format!(
                    "seed {seed} is given twice (positions {} and {})",
                    first + 1,
                    i + 1
                ),
            });
        }
    }
    let mut scores = Vec::with_capacity(seeds.len());
    let mut predictions = Vec::with_capacity(seeds.len() * records.len());
    for &seed in seeds {
        let mut total = 0.0;
        for (position, record) in records.iter().enumerate() {
            let index = first_index + position;
            let prediction = generate(index, record, seed).map_err(|e| EvalError::Generate {
                index,
                seed,
                message: e.to_string(),
            })?;
            let score = 100.0 * rouge_l(&prediction, &record.response).fmeasure;
            total += score;
            let prediction = InstructPrediction {
                index,
                seed,
                prediction,
                rouge_l: score,
            };
            on_prediction(&prediction);
            predictions.push(prediction);
        }
        scores.push(SeedScore {
            seed,
            rouge_l: total / records.len() as f64,
        });
    }
    let n = scores.len() as f64;
    let mean = scores.iter().map(|s| s.rouge_l).sum::<f64>() / n;
    let std = (scores
        .iter()
        .map(|s| (s.rouge_l - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    Ok(InstructReport {
        n_records: records.len(),
        seeds: scores,
        mean,
        std,
        predictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<InstructRecord>> {
        parse_instruct_jsonl(text, Path::new("mem.jsonl"))
    }

    fn record(instruction: &str, response: &str) -> InstructRecord {
        InstructRecord {
            instruction: instruction.into(),
            response: response.into(),
        }
    }

    #[test]
    fn the_template_is_filled_verbatim() {
        assert_eq!(
            render_prompt("Why?"),
            "### Instruction:\nWhy?\n\n### Response:\n"
        );
        // Braces and the slot's own name in the instruction are kept as they are.
        assert_eq!(
            render_prompt("say {instruction} {}"),
            "### Instruction:\nsay {instruction} {}\n\n### Response:\n"
        );
        assert_eq!(render_prompt(""), "### Instruction:\n\n\n### Response:\n");
    }

    #[test]
    fn parses_records_skipping_blank_lines_and_extra_fields() {
        let text = "\u{feff}{\"instruction\": \"Say “hi”\", \"response\": \"• hi\"}\n\n  \n\
                    {\"response\": \"b\", \"instruction\": \"a\", \"category\": \"qa\"}\r\n";
        let records = parse(text).unwrap();
        assert_eq!(records, [record("Say “hi”", "• hi"), record("a", "b")]);
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_problem() {
        let ok = "{\"instruction\": \"a\", \"response\": \"b\"}\n";
        for (bad, message) in [
            ("{\"instruction\": \"a\", ", "not valid JSON"),
            ("[1, 2]", "expected a JSON object"),
            ("{\"instruction\": \"a\"}", "missing \"response\""),
            ("{\"response\": \"a\"}", "missing \"instruction\""),
            (
                "{\"instruction\": 3, \"response\": \"a\"}",
                "\"instruction\" is a number, expected a string",
            ),
            (
                "{\"instruction\": \"a\", \"response\": null}",
                "\"response\" is null, expected a string",
            ),
        ] {
            let text = format!("{ok}\n{bad}\n{ok}");
            let err = parse(&text).unwrap_err();
            assert!(
                matches!(err, EvalError::MalformedRow { line: 3, .. }),
                "{bad}: {err}"
            );
            let shown = err.to_string();
            assert!(
                shown.starts_with("mem.jsonl:3: ") && shown.contains(message),
                "{bad}: {shown}"
            );
        }
    }

    #[test]
    fn empty_and_missing_files_are_errors() {
        assert!(matches!(parse("").unwrap_err(), EvalError::Empty(_)));
        assert!(matches!(parse("\n \n").unwrap_err(), EvalError::Empty(_)));
        let err = read_instruct_jsonl(Path::new("/nonexistent/dolly.jsonl")).unwrap_err();
        assert!(matches!(err, EvalError::Io { .. }), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/dolly.jsonl"),
            "{err}"
        );
    }

    #[test]
    fn scores_per_seed_with_mean_and_population_std() {
        let records = vec![
            record("q0", "the cat sat on the mat"),
            record("q1", "blue sky"),
        ];
        let mut calls = Vec::new();
        let report = run_instruct(
            &records,
            1900,
            &[10, 20, 30],
            |index, r, seed| {
                calls.push((index, seed));
                Ok::<_, String>(match seed {
                    10 => r.response.clone(),    // F = 1, 1
                    20 => "the cat".to_string(), // F = 0.5, 0
                    _ => String::new(),          // F = 0, 0
                })
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(calls.len(), 6);
        assert_eq!(&calls[..3], &[(1900, 10), (1901, 10), (1900, 20)]);
        assert_eq!(report.n_records, 2);
        let per_seed: Vec<(u64, f64)> = report.seeds.iter().map(|s| (s.seed, s.rouge_l)).collect();
        // "the cat" vs "the cat sat on the mat": P = 1, R = 2/6, F = 0.5.
        assert_eq!(per_seed, [(10, 100.0), (20, 25.0), (30, 0.0)]);
        let mean = 125.0 / 3.0;
        let std = ((100.0f64 - mean).powi(2) + (25.0 - mean).powi(2) + mean.powi(2)) / 3.0;
        assert!((report.mean - mean).abs() < 1e-12);
        assert!((report.std - std.sqrt()).abs() < 1e-12);
        assert_eq!(report.predictions.len(), 6);
        assert_eq!(report.predictions[3].index, 1901);
        assert_eq!(report.predictions[3].seed, 20);
        assert_eq!(report.predictions[3].rouge_l, 0.0);
    }

    #[test]
    fn one_seed_has_zero_std_and_json_round_trips() {
        let records = vec![record("q", "a b")];
        let mut seen = 0;
        let report = run_instruct(
            &records,
            0,
            &[7],
            |_, _, _| Ok::<_, String>("a".into()),
            |p| {
                seen += 1;
                assert_eq!(p.index, 0);
            },
        )
        .unwrap();
        assert_eq!(seen, 1);
        assert_eq!(report.std, 0.0);
        let json = serde_json::to_string(&report).unwrap();
        let back: InstructReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        let mut without = report.clone();
        without.predictions.clear();
        let json = serde_json::to_string(&without).unwrap();
        assert!(!json.contains("predictions"), "{json}");
        assert_eq!(
            serde_json::from_str::<InstructReport>(&json).unwrap(),
            without
        );
    }

    #[test]
    fn bad_arguments_and_generator_errors_are_reported() {
        let records = vec![record("q", "a"), record("r", "b")];
        let gen = |_: usize, _: &InstructRecord, _: u64| Ok::<_, String>(String::new());
        let err = run_instruct(&[], 0, &[1], gen, |_| {}).unwrap_err();
        assert!(matches!(
            err,
            EvalError::InvalidArgument {
                name: "records",
                ..
            }
        ));
        let err = run_instruct(&records, 0, &[], gen, |_| {}).unwrap_err();
        assert!(matches!(
            err,
            EvalError::InvalidArgument { name: "seeds", .. }
        ));
        let err = run_instruct(&records, 0, &[1, 2, 1], gen, |_| {}).unwrap_err();
        assert!(err.to_string().contains("seed 1 is given twice"), "{err}");
        let err = run_instruct(
            &records,
            5,
            &[3],
            |i, _, _| {
                if i == 6 {
                    Err("out of memory")
                } else {
                    Ok(String::new())
                }
            },
            |_| {},
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "generation failed for record 6 (seed 3): out of memory"
        );
    }
}

/// A half-open range of 0-based record indices, `START..END` (e.g. `1900..2000`: Dolly's test
/// records), as `--records` and the distillation config's `records` take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordRange {
    /// First index (0-based).
    pub start: usize,
    /// One past the last index.
    pub end: usize,
}

impl RecordRange {
    /// As a [`std::ops::Range`].
    pub fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

impl std::str::FromStr for RecordRange {
    type Err = String;

    /// Two integers around `..` with `START < END`; the error says what is wrong.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("`{s}` is not a range START..END of record indices (e.g. 1900..2000)");
        let (start, end) = s.split_once("..").ok_or_else(bad)?;
        let start: usize = start.trim().parse().map_err(|_| bad())?;
        let end: usize = end.trim().parse().map_err(|_| bad())?;
        if start >= end {
            return Err(format!("`{s}` is empty: START must be below END"));
        }
        Ok(Self { start, end })
    }
}

impl std::fmt::Display for RecordRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}
