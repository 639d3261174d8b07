//! Embedding training data: unlabeled sentences (SimCSE), pairs, triplets and scored pairs
//! (batched by [`Batching`](crate::Batching)).

use std::path::{Path, PathBuf};

use crate::embedding::config::{DataFormat, DataSection};
use crate::error::{Result, TrainError};

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub enum Example {
    /// An unlabeled sentence (two dropout views make the positive pair).
    Sentence(String),
    /// `(anchor, positive)`.
    Pair(String, String),
    /// `(anchor, positive, hard negative)`.
    Triplet(String, String, String),
    /// `(score, sentence1, sentence2)`.
    Scored(f32, String, String),
}

impl Example {
    /// The texts of the example, in role order.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Example::Sentence(s) => vec![s],
            Example::Pair(a, p) => vec![a, p],
            Example::Triplet(a, p, n) => vec![a, p, n],
            Example::Scored(_, a, b) => vec![a, b],
        }
    }

    /// Length used for length-aware batching: characters of the longest text.
    pub fn length(&self) -> usize {
        self.texts()
            .iter()
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0)
    }
}

/// A training corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// How the examples were read.
    pub format: DataFormat,
    /// The examples, in file order.
    pub examples: Vec<Example>,
    /// The file they came from.
    pub path: PathBuf,
}

impl Corpus {
    /// Reads the file described by `section` (`${MRL_SHARED}` expanded).
    ///
    /// # Errors
    /// [`TrainError::Io`] when the file cannot be read, [`TrainError::Data`] naming the line of a
    /// malformed row, or the file when it holds fewer than two examples.
    pub fn load(section: &DataSection) -> Result<Self> {
        if !section.sources.is_empty() {
            return Self::pool(section);
        }
        let path = crate::config::expand_path(section.path.as_deref().unwrap_or_default());
        let text = std::fs::read_to_string(&path).map_err(crate::error::io_err(&path))?;
        Self::parse(&text, &path, section)
    }

    /// The pooled corpus of `section.sources` (see [`DataSection::sources`]): every source's
    /// texts in file and column order, duplicates dropped, shuffled with
    /// `section.shuffle_seed`, the first `max_examples` kept. `path` is the first source's.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming a file that cannot be read; [`TrainError::Data`] naming the
    /// file and line of a row without a listed column or with an empty text, or the first
    /// source when the pool holds fewer than two sentences.
    pub fn pool(section: &DataSection) -> Result<Self> {
        let mut texts = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for source in &section.sources {
            let path = crate::config::expand_path(&source.path);
            let text = std::fs::read_to_string(&path).map_err(crate::error::io_err(&path))?;
            for (i, line) in text
                .lines()
                .enumerate()
                .skip(usize::from(source.skip_header))
            {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() {
                    continue;
                }
                let cols: Vec<&str> = line.split('\t').collect();
                let picked: Vec<&str> = if source.columns.is_empty() {
                    vec![line]
                } else {
                    source
                        .columns
                        .iter()
                        .map(|&c| {
                            column(&cols, c).map_err(|message| TrainError::Data {
                                path: path.clone(),
                                line: i + 1,
                                message,
                            })
                        })
                        .collect::<Result<_>>()?
                };
                for s in picked {
                    let s = s.trim();
                    if s.is_empty() {
                        return Err(TrainError::Data {
                            path: path.clone(),
                            line: i + 1,
                            message: "an empty text".into(),
                        });
                    }
                    if seen.insert(s.to_string()) {
                        texts.push(s.to_string());
                    }
                }
            }
        }
        mrl_common::SplitMix64::new(section.shuffle_seed).shuffle(&mut texts);
        if let Some(m) = section.max_examples {
            texts.truncate(m);
        }
        let path = crate::config::expand_path(&section.sources[0].path);
        if texts.len() < 2 {
            return Err(TrainError::Data {
                path,
                line: 0,
                message: format!(
                    "the pooled sources hold {} distinct sentence(s); at least 2 are needed",
                    texts.len()
                ),
            });
        }
        Ok(Self {
            format: DataFormat::Sentences,
            examples: texts.into_iter().map(Example::Sentence).collect(),
            path,
        })
    }

    /// Parses `text` as [`Corpus::load`] would; `path` names it in errors.
    ///
    /// # Errors
    /// As [`Corpus::load`].
    pub fn parse(text: &str, path: &Path, section: &DataSection) -> Result<Self> {
        let data_err = |line: usize, message: String| TrainError::Data {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut examples = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let skip = usize::from(section.skip_header);
        for (i, line) in text.lines().enumerate().skip(skip) {
            let n = i + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let col = |k: usize| -> Result<String> {
                let c = section.first_column + k;
                let s = column(&cols, c).map_err(|m| data_err(n, m))?;
                let s = s.trim();
                if s.is_empty() {
                    return Err(data_err(n, format!("column {c} is empty")));
                }
                Ok(s.to_string())
            };
            let example = match section.format {
                DataFormat::Sentences => {
                    let s = match section.column {
                        Some(c) => column(&cols, c)
                            .map_err(|m| data_err(n, m))?
                            .trim()
                            .to_string(),
                        None => line.trim().to_string(),
                    };
                    if s.is_empty() || !seen.insert(s.clone()) {
                        continue; // SimCSE: duplicates would be false in-batch negatives
                    }
                    Example::Sentence(s)
                }
                DataFormat::Pairs => Example::Pair(col(0)?, col(1)?),
                DataFormat::Triplets => Example::Triplet(col(0)?, col(1)?, col(2)?),
                DataFormat::ScoredPairs => {
                    let raw = col(0)?;
                    let score: f32 = raw
                        .parse()
                        .ok()
                        .filter(|s: &f32| s.is_finite())
                        .ok_or_else(|| data_err(n, format!("score `{raw}` is not a number")))?;
                    Example::Scored(score, col(1)?, col(2)?)
                }
            };
            examples.push(example);
            if section.max_examples.is_some_and(|m| examples.len() >= m) {
                break;
            }
        }
        if examples.len() < 2 {
            return Err(data_err(
                0,
                format!("needs at least 2 examples, found {}", examples.len()),
            ));
        }
        Ok(Self {
            format: section.format,
            examples,
            path: path.to_path_buf(),
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether the corpus is empty (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// TSV column `c` (0-based) of a row split at tabs, or the message naming it.
fn column<'a>(cols: &[&'a str], c: usize) -> std::result::Result<&'a str, String> {
    cols.get(c).copied().ok_or_else(|| {
        format!(
            "expected a column {c} (0-based), found {} columns",
            cols.len()
        )
    })
}
