//! Vocabulary transplant: the token embedding matrix of a model for a *new* tokenizer, built
//! from the embedding matrix of a model trained with another tokenizer, row by row from the
//! token strings.
//!
//! A student that distils a teacher across tokenizers (e.g. SRA, arXiv 2605.01205: SmolLM2's
//! layers with GPT-2's vocabulary) keeps the teacher's layers but needs an embedding row for
//! every token of its own vocabulary. Each target token `t` (ids `0..V_target`) gets:
//!
//! 1. **special** — a row the caller maps explicitly (the target eos → the source eos):
//!    `E'[t] = E[s]`; this rule wins over the others;
//! 2. **exact** — when the string of `t` is also a source token string `s`:
//!    `E'[t] = E[s]`;
//! 3. **split** — otherwise the string of `t` is cut greedily left to right, longest prefix
//!    that is a source token string first, into pieces `p_1 … p_k` (repeats kept), and
//!    `E'[t] = (1/k) · Σ_i E[p_i]`. A single symbol (character) that no source token
//!    spells is one piece whose row is the mean of *all* source rows,
//!    `Ē = (1/V_source) · Σ_s E[s]`.
//!
//! Strings are compared as they are stored in the two `tokenizer.json` vocabularies (added
//! tokens included, as `tokenizers::Tokenizer::get_vocab(true)` lists them): for byte-level
//! BPE tokenizers (GPT-2, SmolLM2, Llama 3, Qwen) that is the byte-level form, `Ġ` for a
//! leading space, so every character is one byte symbol and the split works on bytes.
//!
//! Means are accumulated in `f64` and stored as `f32`. It all runs on host data: a one-off at
//! initialisation.
//!
//! # Shapes
//! - source matrix: `[V_source, hidden]` row-major (`V_source` ≥ every source id used);
//! - result: `[V_target, hidden]` row-major, row `t` for target id `t`.
//!
//! # Example
//! ```
//! use std::collections::HashMap;
//! use models::vocab_transplant::{transplant_embedding, Piece, RowRule};
//!
//! let vocab = |tokens: &[&str]| -> HashMap<String, u32> {
//!     tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect()
//! };
//! let source = vocab(&["<eos>", "a", "b", "ab"]);
//! // Source rows, hidden = 2: <eos>, a, b, ab.
//! let embedding = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 2.0];
//! let target = vocab(&["ab", "aab", "</s>"]);
//! // Target eos `</s>` (id 2) takes the source eos row (id 0).
//! let (rows, plan) = transplant_embedding(&source, &embedding, 2, &target, &[(2, 0)])?;
//! assert_eq!(plan.rows()[0], RowRule::Exact { source: 3 });
//! assert_eq!(plan.rows()[1], RowRule::Split { pieces: vec![Piece::Token(1), Piece::Token(3)] });
//! assert_eq!(plan.rows()[2], RowRule::Special { source: 0 });
//! assert_eq!(rows, [2.0, 2.0, 1.5, 1.0, 0.0, 0.0]);
//! # Ok::<(), models::ModelError>(())
//! ```

use std::collections::HashMap;
use std::path::Path;

use crate::error::{ModelError, Result};

/// One piece of a split target token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// A source token (its id).
    Token(u32),
    /// A symbol that no source token spells; its row is the mean of all source rows.
    Absent(char),
}

/// How one target row is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowRule {
    /// A special token mapped by the caller: a copy of source row `source`.
    Special {
        /// The source id.
        source: u32,
    },
    /// The same string is a source token: a copy of source row `source`.
    Exact {
        /// The source id.
        source: u32,
    },
    /// The mean of the rows of the greedy longest-prefix pieces (in order, repeats kept).
    Split {
        /// The pieces, left to right.
        pieces: Vec<Piece>,
    },
}

/// How many target rows each rule made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransplantCounts {
    /// Target tokens whose string is a source token string, *before* the special mapping
    /// (a special token that is also an exact match counts here and in `special`).
    pub exact_string_matches: usize,
    /// Rows made by [`RowRule::Special`].
    pub special: usize,
    /// Rows made by [`RowRule::Exact`] (`exact_string_matches` minus the special tokens that
    /// were exact matches too).
    pub exact: usize,
    /// Rows made by [`RowRule::Split`].
    pub split: usize,
    /// Split rows with at least one [`Piece::Absent`] symbol.
    pub with_absent_symbol: usize,
}

/// The transplant plan of a pair of vocabularies: which rule makes each target row (see the
/// [module docs](self)). Build it with [`VocabTransplant::new`], apply it to a source matrix
/// with [`VocabTransplant::apply`] (e.g. to the embedding and to an untied output head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabTransplant {
    rows: Vec<RowRule>,
    exact_string_matches: usize,
}

fn invalid(name: &'static str, message: String) -> ModelError {
    ModelError::InvalidArgument { name, message }
}

impl VocabTransplant {
    /// The plan for a source vocabulary `source_vocab` and a target vocabulary
    /// `target_vocab` (token string → id), with `special` pairs `(target id, source id)` that
    /// override the other rules (e.g. the target's eos → the source's eos).
    ///
    /// # Errors
    /// [`ModelError::InvalidArgument`] naming the argument: an empty vocabulary;
    /// `target_vocab` ids that are not exactly `0..V_target` (a gap, an id shared by two
    /// strings), an empty target string; a `special` target id outside the target vocabulary
    /// or given twice.
    pub fn new(
        source_vocab: &HashMap<String, u32>,
        target_vocab: &HashMap<String, u32>,
        special: &[(u32, u32)],
    ) -> Result<Self> {
        if source_vocab.is_empty() {
            return Err(invalid("source_vocab", "is empty".into()));
        }
        let n = target_vocab.len();
        if n == 0 {
            return Err(invalid("target_vocab", "is empty".into()));
        }
        let mut strings: Vec<Option<&str>> = vec![None; n];
        for (token, &id) in target_vocab {
            let slot = strings.get_mut(id as usize).ok_or_else(|| {
                invalid(
                    "target_vocab",
                    format!(
                        "token {token:?} has id {id}, not below the {n} tokens (ids must be \
                         0..{n}, each used once)"
                    ),
                )
            })?;
            if let Some(other) = slot.replace(token) {
                return Err(invalid(
                    "target_vocab",
                    format!("id {id} is shared by tokens {other:?} and {token:?}"),
                ));
            }
        }
        let mut specials: HashMap<u32, u32> = HashMap::new();
        for &(target, source) in special {
            if target as usize >= n {
                return Err(invalid(
                    "special",
                    format!(
                        "target id {target} (mapped to source id {source}) is not in the \
                         target vocabulary of {n} tokens"
                    ),
                ));
            }
            if specials.insert(target, source).is_some() {
                return Err(invalid(
                    "special",
                    format!("target id {target} is mapped twice"),
                ));
            }
        }
        let longest = source_vocab
            .keys()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0);
        let mut exact_string_matches = 0;
        let mut rows = Vec::with_capacity(n);
        for (id, token) in strings.into_iter().enumerate() {
            // Every slot is filled: n strings with distinct ids below n.
            let token = token.expect("ids 0..n each used once");
            if token.is_empty() {
                return Err(invalid(
                    "target_vocab",
                    format!("token id {id} is the empty string"),
                ));
            }
            let exact = source_vocab.get(token).copied();
            exact_string_matches += usize::from(exact.is_some());
            rows.push(match (specials.get(&(id as u32)), exact) {
                (Some(&source), _) => RowRule::Special { source },
                (None, Some(source)) => RowRule::Exact { source },
                (None, None) => RowRule::Split {
                    pieces: greedy_split(token, source_vocab, longest),
                },
            });
        }
        Ok(Self {
            rows,
            exact_string_matches,
        })
    }

    /// The rule of every target row, by target id.
    pub fn rows(&self) -> &[RowRule] {
        &self.rows
    }

    /// The number of target rows (`V_target`).
    pub fn target_len(&self) -> usize {
        self.rows.len()
    }

    /// How many rows each rule made.
    pub fn counts(&self) -> TransplantCounts {
        let mut counts = TransplantCounts {
            exact_string_matches: self.exact_string_matches,
            ..TransplantCounts::default()
        };
        for row in &self.rows {
            match row {
                RowRule::Special { .. } => counts.special += 1,
                RowRule::Exact { .. } => counts.exact += 1,
                RowRule::Split { pieces } => {
                    counts.split += 1;
                    if pieces.iter().any(|p| matches!(p, Piece::Absent(_))) {
                        counts.with_absent_symbol += 1;
                    }
                }
            }
        }
        counts
    }

    /// The target matrix `[V_target, hidden]` (row-major) made from the source matrix
    /// `source` (`[V_source, hidden]`, row-major).
    ///
    /// # Errors
    /// [`ModelError::InvalidArgument`] naming `hidden` when it is 0, or `source` when its
    /// length is not a multiple of `hidden` or it has fewer rows than a source id the plan
    /// uses.
    pub fn apply(&self, source: &[f32], hidden: usize) -> Result<Vec<f32>> {
        if hidden == 0 {
            return Err(invalid("hidden", "must be positive, got 0".into()));
        }
        if source.is_empty() || !source.len().is_multiple_of(hidden) {
            return Err(invalid(
                "source",
                format!(
                    "{} values are not a [rows, {hidden}] matrix with at least one row",
                    source.len()
                ),
            ));
        }
        let rows = source.len() / hidden;
        let max_id = self
            .rows
            .iter()
            .flat_map(|row| match row {
                RowRule::Special { source } | RowRule::Exact { source } => vec![*source],
                RowRule::Split { pieces } => pieces
                    .iter()
                    .filter_map(|p| match p {
                        Piece::Token(id) => Some(*id),
                        Piece::Absent(_) => None,
                    })
                    .collect(),
            })
            .max();
        if let Some(max_id) = max_id.filter(|&m| m as usize >= rows) {
            return Err(invalid(
                "source",
                format!(
                    "the matrix has {rows} rows of width {hidden}, but the plan uses source id \
                     {max_id} (a vocabulary larger than the matrix, or another width?)"
                ),
            ));
        }
        let row = |id: u32| &source[id as usize * hidden..(id as usize + 1) * hidden];
        let needs_mean = self.rows.iter().any(|r| match r {
            RowRule::Split { pieces } => pieces.iter().any(|p| matches!(p, Piece::Absent(_))),
            _ => false,
        });
        let mean: Vec<f64> = if needs_mean {
            let mut sum = vec![0.0f64; hidden];
            for r in source.chunks_exact(hidden) {
                for (s, &v) in sum.iter_mut().zip(r) {
                    *s += f64::from(v);
                }
            }
            sum.iter().map(|s| s / rows as f64).collect()
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(self.rows.len() * hidden);
        let mut acc = vec![0.0f64; hidden];
        for rule in &self.rows {
            match rule {
                RowRule::Special { source } | RowRule::Exact { source } => {
                    out.extend_from_slice(row(*source));
                }
                RowRule::Split { pieces } => {
                    acc.iter_mut().for_each(|a| *a = 0.0);
                    for piece in pieces {
                        match piece {
                            Piece::Token(id) => {
                                for (a, &v) in acc.iter_mut().zip(row(*id)) {
                                    *a += f64::from(v);
                                }
                            }
                            Piece::Absent(_) => {
                                for (a, m) in acc.iter_mut().zip(&mean) {
                                    *a += m;
                                }
                            }
                        }
                    }
                    let k = pieces.len() as f64;
                    out.extend(acc.iter().map(|a| (a / k) as f32));
                }
            }
        }
        Ok(out)
    }
}

/// Cuts `token` left to right into the longest prefixes that are `vocab` strings (at most
/// `longest` characters); a character that starts no `vocab` string is one
/// [`Piece::Absent`].
fn greedy_split(token: &str, vocab: &HashMap<String, u32>, longest: usize) -> Vec<Piece> {
    let chars: Vec<char> = token.chars().collect();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut candidate = String::new();
    while start < chars.len() {
        let mut found = None;
        for len in (1..=longest.min(chars.len() - start)).rev() {
            candidate.clear();
            candidate.extend(&chars[start..start + len]);
            if let Some(&id) = vocab.get(&candidate) {
                found = Some((id, len));
                break;
            }
        }
        match found {
            Some((id, len)) => {
                pieces.push(Piece::Token(id));
                start += len;
            }
            None => {
                pieces.push(Piece::Absent(chars[start]));
                start += 1;
            }
        }
    }
    pieces
}

/// [`VocabTransplant::new`] then [`VocabTransplant::apply`]: the target matrix
/// `[V_target, hidden]` and the plan (each row's rule, [`VocabTransplant::counts`]).
///
/// # Errors
/// As [`VocabTransplant::new`] and [`VocabTransplant::apply`].
pub fn transplant_embedding(
    source_vocab: &HashMap<String, u32>,
    source: &[f32],
    hidden: usize,
    target_vocab: &HashMap<String, u32>,
    special: &[(u32, u32)],
) -> Result<(Vec<f32>, VocabTransplant)> {
    let plan = VocabTransplant::new(source_vocab, target_vocab, special)?;
    let matrix = plan.apply(source, hidden)?;
    Ok((matrix, plan))
}

/// The vocabulary of a `tokenizer.json` with its added tokens (token string → id), as
/// `tokenizers::Tokenizer::get_vocab(true)` gives it.
///
/// # Errors
/// [`ModelError::Io`] naming `path` when it cannot be read, [`ModelError::Tokenizer`] when
/// it does not parse as a tokenizer.
pub fn read_vocab(path: &Path) -> Result<HashMap<String, u32>> {
    Ok(load_tokenizer(path)?.get_vocab(true))
}

/// `tokenizer.json` at `path`, the I/O and the parse errors told apart and naming `path`.
pub(crate) fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&str]) -> HashMap<String, u32> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect()
    }

    fn message(err: ModelError) -> (&'static str, String) {
        match err {
            ModelError::InvalidArgument { name, message } => (name, message),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn the_split_takes_the_longest_prefix_first() {
        let source = vocab(&["a", "ab", "abc", "d", "cd", "b"]);
        // "abcd": longest prefix "abc" then "d", not "ab" + "cd".
        assert_eq!(
            greedy_split("abcd", &source, 3),
            [Piece::Token(2), Piece::Token(3)]
        );
        // Repeats are kept, and a symbol no token spells is one absent piece.
        assert_eq!(
            greedy_split("ababxa", &source, 3),
            [
                Piece::Token(1),
                Piece::Token(1),
                Piece::Absent('x'),
                Piece::Token(0)
            ]
        );
        // Multi-byte symbols are single characters.
        let source = vocab(&["Ġ", "Ġa"]);
        assert_eq!(
            greedy_split("ĠaĠñ", &source, 2),
            [Piece::Token(1), Piece::Token(0), Piece::Absent('ñ')]
        );
    }

    #[test]
    fn bad_vocabularies_and_mappings_are_named() {
        let source = vocab(&["a", "b"]);
        let target = vocab(&["a", "b"]);
        let empty = HashMap::new();
        assert_eq!(
            message(VocabTransplant::new(&empty, &target, &[]).unwrap_err()).0,
            "source_vocab"
        );
        assert_eq!(
            message(VocabTransplant::new(&source, &empty, &[]).unwrap_err()).0,
            "target_vocab"
        );
        let mut gap = target.clone();
        gap.insert("c".into(), 5);
        let (name, text) = message(VocabTransplant::new(&source, &gap, &[]).unwrap_err());
        assert_eq!(name, "target_vocab");
        assert!(text.contains("\"c\" has id 5"), "{text}");
        let mut shared = target.clone();
        shared.insert("c".into(), 1);
        shared.insert("d".into(), 3);
        let (name, text) = message(VocabTransplant::new(&source, &shared, &[]).unwrap_err());
        assert_eq!(name, "target_vocab");
        assert!(text.contains("id 1 is shared"), "{text}");
        let (name, text) = message(VocabTransplant::new(&source, &target, &[(2, 0)]).unwrap_err());
        assert_eq!(name, "special");
        assert!(text.contains("target id 2"), "{text}");
        let (name, text) =
            message(VocabTransplant::new(&source, &target, &[(1, 0), (1, 1)]).unwrap_err());
        assert_eq!(name, "special");
        assert!(text.contains("mapped twice"), "{text}");
        let with_empty = vocab(&["a", ""]);
        let (name, text) = message(VocabTransplant::new(&source, &with_empty, &[]).unwrap_err());
        assert_eq!(name, "target_vocab");
        assert!(text.contains("empty string"), "{text}");
    }

    #[test]
    fn bad_matrices_are_named() {
        let plan =
            VocabTransplant::new(&vocab(&["a", "b", "c"]), &vocab(&["c", "x"]), &[]).unwrap();
        assert_eq!(message(plan.apply(&[1.0; 6], 0).unwrap_err()).0, "hidden");
        let (name, text) = message(plan.apply(&[1.0; 7], 2).unwrap_err());
        assert_eq!(name, "source");
        assert!(text.contains("7 values"), "{text}");
        assert_eq!(message(plan.apply(&[], 2).unwrap_err()).0, "source");
        // Two rows of width 2, but "c" is source id 2.
        let (name, text) = message(plan.apply(&[1.0; 4], 2).unwrap_err());
        assert_eq!(name, "source");
        assert!(text.contains("source id 2"), "{text}");
        assert_eq!(plan.apply(&[1.0; 6], 2).unwrap().len(), 4);
    }
}
