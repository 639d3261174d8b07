//! Semantic units of a response (words and phrases as character spans) and the tokens that
//! belong to each, for MTA (arXiv 2605.01374). The documentation is on the public items:
//! [`Units`], [`unit_membership`], [`membership_tensor`], [`filter_overlaps`].

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// A character span `[start, end)` into the response (Unicode scalar values, not bytes).
///
/// Serialised as the two-element array `[start, end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "[usize; 2]", into = "[usize; 2]")]
pub struct Span {
    /// First character (inclusive).
    pub start: usize,
    /// One past the last character (exclusive).
    pub end: usize,
}

impl Span {
    /// The span `[start, end)` (unchecked: [`Units::validate`] checks spans from data).
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// Whether `other` lies within `self` (`self.start ≤ other.start ∧ other.end ≤ self.end`).
    pub fn contains(&self, other: &Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

impl From<[usize; 2]> for Span {
    fn from([start, end]: [usize; 2]) -> Self {
        Self { start, end }
    }
}

impl From<Span> for [usize; 2] {
    fn from(span: Span) -> Self {
        [span.start, span.end]
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// The two unit granularities of MTA: words (aligned at the lower layer pairs) and phrases
/// (the higher ones).
///
/// Serialised and parsed as `"words"` / `"phrases"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// Words.
    Words,
    /// Phrases: noun phrases and verb groups.
    Phrases,
}

impl Granularity {
    /// Both granularities, words first.
    pub const ALL: [Granularity; 2] = [Granularity::Words, Granularity::Phrases];

    /// `"words"` or `"phrases"` (the JSON field of [`Units`]).
    pub fn name(&self) -> &'static str {
        match self {
            Granularity::Words => "words",
            Granularity::Phrases => "phrases",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Granularity {
    type Err = UnitError;

    /// Parses `"words"` or `"phrases"`.
    fn from_str(s: &str) -> Result<Self, UnitError> {
        Granularity::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| UnitError::UnknownGranularity { got: s.to_string() })
    }
}

/// The semantic units of one response at both granularities, as character spans into the
/// **response** (Unicode scalar values, not bytes).
///
/// MTA (Multi-Granular Trajectory Alignment, arXiv 2605.01374) pools teacher and student
/// hidden states over units of the response text: words at the lower aligned layer pairs,
/// phrases (noun phrases and verb groups) at the higher ones. The units come from the data
/// record when it has them, or from a [`Chunker`](crate::Chunker); [`unit_membership`] then
/// finds the tokens of each unit and [`membership_tensor`] makes the dense form of a batch.
///
/// JSON form (the `"units"` field of a record `{"instruction", "response", "units"}`):
/// `{"words": [[0, 3], …], "phrases": [[0, 9], …]}`; both fields are required and no other
/// is accepted. Precomputed units are used as given, after [`Units::validate`]: within each
/// list the spans must be non-empty, within the response and sorted by start (non-decreasing;
/// equal starts, nesting and partial overlaps are allowed).
///
/// # Example
/// ```
/// # fn main() -> Result<(), distill_objectives::UnitError> {
/// use burn::tensor::Device;
/// use distill_objectives::{
///     membership_tensor, unit_membership, Chunker, EnglishChunker, Granularity, Span, Units,
/// };
///
/// let prompt = "### Instruction:\nName a pet.\n\n### Response:\n";
/// let response = "The cat sleeps.";
/// let units: Units = EnglishChunker.units(response);
/// units.validate(response.chars().count())?;
/// assert_eq!(units.phrases, [Span::new(0, 7), Span::new(8, 14)]); // "The cat", "sleeps"
///
/// // A byte-level BPE tokenization of prompt + response + EOS, as character offsets:
/// // the prompt's last "\n", "The", " cat", " sleeps", ".", EOS.
/// let p = prompt.chars().count();
/// let offsets = [
///     (p - 1, p), (p, p + 3), (p + 3, p + 7), (p + 7, p + 14), (p + 14, p + 15), (p + 15, p + 15),
/// ];
/// let eligible = [false, true, true, true, true, false];
/// let phrases = unit_membership(&offsets, &eligible, p, units.get(Granularity::Phrases))?;
/// assert_eq!(phrases.units, [vec![1, 2], vec![3]]);
/// assert_eq!(phrases.kept, [0, 1]);
///
/// # #[cfg(feature = "flex")]
/// let device = Device::flex();
/// # #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
/// # #[allow(deprecated)]
/// # let device = Device::ndarray();
/// let (membership, unit_mask) = membership_tensor(&[phrases], offsets.len(), &device);
/// assert_eq!(membership.dims(), [1, 2, 6]);
/// assert_eq!(unit_mask.dims(), [1, 2]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Units {
    /// Word spans.
    pub words: Vec<Span>,
    /// Phrase spans.
    pub phrases: Vec<Span>,
}

impl Units {
    /// The spans of granularity `g`.
    pub fn get(&self, g: Granularity) -> &[Span] {
        match g {
            Granularity::Words => &self.words,
            Granularity::Phrases => &self.phrases,
        }
    }

    /// Checks both lists against a response of `response_chars` characters.
    ///
    /// # Errors
    /// The first problem found, words before phrases, in list order, naming the granularity,
    /// the unit's index and its values (the caller adds the record):
    /// [`UnitError::Reversed`] (`start > end`), [`UnitError::OutOfBounds`]
    /// (`end > response_chars`), [`UnitError::Empty`] (`start == end`),
    /// [`UnitError::Unsorted`] (a start smaller than the previous one).
    ///
    /// Zero-length units are rejected rather than dropped: the authors' spans come from spaCy
    /// tokens and are never empty, and under the `+ 1` of the membership rule
    /// ([`unit_membership`]) an empty unit `[s, s)` would not even be memberless — a
    /// one-character token ending at `s + P` satisfies both inequalities.
    pub fn validate(&self, response_chars: usize) -> Result<(), UnitError> {
        for granularity in Granularity::ALL {
            let spans = self.get(granularity);
            for (index, span) in spans.iter().enumerate() {
                let (start, end) = (span.start, span.end);
                if start > end {
                    return Err(UnitError::Reversed {
                        granularity,
                        index,
                        start,
                        end,
                    });
                }
                if end > response_chars {
                    return Err(UnitError::OutOfBounds {
                        granularity,
                        index,
                        start,
                        end,
                        response_chars,
                    });
                }
                if start == end {
                    return Err(UnitError::Empty {
                        granularity,
                        index,
                        start,
                    });
                }
                if index > 0 && start < spans[index - 1].start {
                    return Err(UnitError::Unsorted {
                        granularity,
                        index,
                        start,
                        end,
                        previous_start: spans[index - 1].start,
                        previous_end: spans[index - 1].end,
                    });
                }
            }
        }
        Ok(())
    }
}

/// What is wrong with units or with the token offsets they are matched against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// A unit whose start is after its end.
    #[error("{granularity} unit {index} = [{start}, {end}): start {start} > end {end}")]
    Reversed {
        /// Its granularity.
        granularity: Granularity,
        /// Its index in its list.
        index: usize,
        /// Its start.
        start: usize,
        /// Its end.
        end: usize,
    },
    /// A unit that ends past the response.
    #[error(
        "{granularity} unit {index} = [{start}, {end}) ends past the response \
         ({response_chars} characters)"
    )]
    OutOfBounds {
        /// Its granularity.
        granularity: Granularity,
        /// Its index in its list.
        index: usize,
        /// Its start.
        start: usize,
        /// Its end.
        end: usize,
        /// The response's length in characters.
        response_chars: usize,
    },
    /// A zero-length unit (rejected: see [`Units::validate`]).
    #[error(
        "{granularity} unit {index} = [{start}, {start}) is empty (zero-length units are \
         rejected)"
    )]
    Empty {
        /// Its granularity.
        granularity: Granularity,
        /// Its index in its list.
        index: usize,
        /// Its start (= its end).
        start: usize,
    },
    /// A unit that starts before the previous one of its list.
    #[error(
        "{granularity} units are not sorted by start: unit {index} = [{start}, {end}) starts \
         before unit {} = [{previous_start}, {previous_end})",
        index - 1
    )]
    Unsorted {
        /// Its granularity.
        granularity: Granularity,
        /// Its index in its list (the previous unit is `index − 1`).
        index: usize,
        /// Its start.
        start: usize,
        /// Its end.
        end: usize,
        /// The previous unit's start.
        previous_start: usize,
        /// The previous unit's end.
        previous_end: usize,
    },
    /// A unit given to [`unit_membership`] that is empty or reversed.
    #[error("`units`[{index}] = [{start}, {end}) is empty or reversed (need start < end)")]
    InvalidUnit {
        /// Its index in `units`.
        index: usize,
        /// Its start.
        start: usize,
        /// Its end.
        end: usize,
    },
    /// `token_offsets` and `eligible` differ in length.
    #[error(
        "`token_offsets` has {token_offsets} tokens but `eligible` has {eligible} flags; \
         they must match"
    )]
    LengthMismatch {
        /// Length of `token_offsets`.
        token_offsets: usize,
        /// Length of `eligible`.
        eligible: usize,
    },
    /// A token whose start offset is after its end offset.
    #[error("`token_offsets`[{position}] = ({start}, {end}): start > end")]
    InvalidTokenOffsets {
        /// The token's position.
        position: usize,
        /// Its start.
        start: usize,
        /// Its end.
        end: usize,
    },
    /// A granularity name that is neither `words` nor `phrases`.
    #[error("unknown unit granularity `{got}`; expected `words` or `phrases`")]
    UnknownGranularity {
        /// The name received.
        got: String,
    },
}

/// The member tokens of each kept unit, for one example (see [`unit_membership`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Token positions of each kept unit, ascending; never empty.
    pub units: Vec<Vec<usize>>,
    /// For each kept unit, its index in the list given to [`unit_membership`] (ascending).
    pub kept: Vec<usize>,
}

impl Membership {
    /// The number of kept units.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// Whether no unit was kept.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The number of (token, unit) memberships: a token in two units counts twice.
    pub fn pairs(&self) -> usize {
        self.units.iter().map(Vec::len).sum()
    }
}

/// The member tokens of each unit of one example; units without a member are dropped.
///
/// With `P = prompt_chars` (the response follows the prompt directly in the text), token `j`,
/// whose character offsets in the **full** text (prompt + response) are
/// `token_offsets[j] = (start_j, end_j)`, belongs to the unit `[s, e)` (response offsets) iff
///
/// ```text
/// eligible[j]  ∧  start_j + 1 ≥ s + P  ∧  end_j ≤ e + P
/// ```
///
/// - `eligible[j]` is the caller's: a response token that is not the appended EOS (whose
///   empty offsets at the end of the text would otherwise match a unit ending there, as the
///   prompt's last token would match a unit starting at 0).
/// - The `+ 1` absorbs the leading space of byte-level BPE tokens (`" model"` starts one
///   character before the word `model`); it also admits a token that starts one character
///   into the unit (`"Hi"` is a member of the unit `"i"`).
/// - A token that straddles a unit boundary is not a member; a token may belong to several
///   units (it counts once per membership); a unit cut by truncation keeps the tokens still
///   present (`token_offsets` holds only the kept tokens), or is dropped.
/// - Offsets are **characters** (Unicode scalar values, as Python indexes a `str`), not bytes
///   and not UTF-16 units: with the `tokenizers` crate, `Tokenizer::encode_char_offsets`.
///
/// This is the authors' `token_in_span_map` (`distillm-master/span_utils.py`,
/// `prepare_span_indices_and_weights`), with the units shifted by the prompt because they are
/// response offsets. `units` need not be sorted; [`Membership::kept`] gives, for each kept
/// unit, its index in `units`.
///
/// # Errors
/// [`UnitError::LengthMismatch`] when `token_offsets` and `eligible` differ in length,
/// [`UnitError::InvalidTokenOffsets`] for a token with `start > end`,
/// [`UnitError::InvalidUnit`] for a unit with `start ≥ end`.
pub fn unit_membership(
    token_offsets: &[(usize, usize)],
    eligible: &[bool],
    prompt_chars: usize,
    units: &[Span],
) -> Result<Membership, UnitError> {
    if token_offsets.len() != eligible.len() {
        return Err(UnitError::LengthMismatch {
            token_offsets: token_offsets.len(),
            eligible: eligible.len(),
        });
    }
    if let Some((position, &(start, end))) = token_offsets
        .iter()
        .enumerate()
        .find(|(_, (start, end))| start > end)
    {
        return Err(UnitError::InvalidTokenOffsets {
            position,
            start,
            end,
        });
    }
    if let Some((index, span)) = units.iter().enumerate().find(|(_, u)| u.start >= u.end) {
        return Err(UnitError::InvalidUnit {
            index,
            start: span.start,
            end: span.end,
        });
    }
    let mut membership = Membership::default();
    for (index, unit) in units.iter().enumerate() {
        let (lo, hi) = (unit.start + prompt_chars, unit.end + prompt_chars);
        let members: Vec<usize> = token_offsets
            .iter()
            .zip(eligible)
            .enumerate()
            .filter(|&(_, (&(start, end), &ok))| ok && start + 1 >= lo && end <= hi)
            .map(|(j, _)| j)
            .collect();
        if !members.is_empty() {
            membership.units.push(members);
            membership.kept.push(index);
        }
    }
    Ok(membership)
}

/// The dense membership of a batch on `device`.
///
/// Returns `(membership, unit_mask)`: `membership[b, u, j] = 1` when token `j` belongs to the
/// `u`-th kept unit of example `b`, else 0; `unit_mask[b, u] = 1` for `u < batch[b].len()`,
/// else 0 (padding units have an all-zero row). Both in the device's default float dtype.
///
/// # Shapes
/// - `membership`: `[batch, max_units, seq_len]`
/// - `unit_mask`: `[batch, max_units]`
///
/// with `max_units = max(1, max_b batch[b].len())`: at least 1 even when no example has a
/// unit (then both tensors are all zeros).
///
/// # Panics
/// When `batch` is empty or `seq_len` is 0, or when a token position is `≥ seq_len` (the
/// message names `batch`, the example, the unit and the position).
pub fn membership_tensor(
    batch: &[Membership],
    seq_len: usize,
    device: &Device,
) -> (Tensor<3>, Tensor<2>) {
    assert!(
        !batch.is_empty(),
        "membership_tensor: `batch` is empty (need at least one example)"
    );
    assert!(
        seq_len > 0,
        "membership_tensor: `seq_len` is 0 (need at least one position)"
    );
    let max_units = batch.iter().map(Membership::len).max().unwrap_or(0).max(1);
    let mut dense = vec![0.0f32; batch.len() * max_units * seq_len];
    let mut mask = vec![0.0f32; batch.len() * max_units];
    for (b, example) in batch.iter().enumerate() {
        for (u, members) in example.units.iter().enumerate() {
            mask[b * max_units + u] = 1.0;
            let row = (b * max_units + u) * seq_len;
            for &j in members {
                assert!(
                    j < seq_len,
                    "membership_tensor: `batch`[{b}] unit {u} has token position {j} ≥ \
                     `seq_len` = {seq_len}"
                );
                dense[row + j] = 1.0;
            }
        }
    }
    (
        Tensor::from_data(
            TensorData::new(dense, [batch.len(), max_units, seq_len]),
            device,
        ),
        Tensor::from_data(TensorData::new(mask, [batch.len(), max_units]), device),
    )
}

/// The authors' overlap filter (`filter_overlapping_spans` in `distillm-master/span_utils.py`):
/// sort by `(start, −end)` — longest first among equal starts — and keep a span unless it is
/// contained in the last kept one. Partial overlaps survive; duplicates collapse to one.
///
/// The result is sorted by start and no kept span contains a later one.
pub fn filter_overlaps(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match kept.last() {
            Some(last) if span.end <= last.end => {}
            _ => kept.push(span),
        }
    }
    kept
}
