//! Spans shared by two tokenizations of one text, for cross-tokenizer distillation (SRA,
//! arXiv 2605.01205; MTA's cross-tokenizer variant). The documentation is on the public items:
//! [`shared_spans`], [`AlignedSpan`], [`span_membership`].

use crate::units::Membership;

/// Bad token offsets given to [`shared_spans`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    /// A side's offsets and eligibility flags differ in length.
    #[error("{side}: {offsets} token offsets but {eligible} eligibility flags; they must match")]
    LengthMismatch {
        /// `teacher` or `student`.
        side: &'static str,
        /// Length of the offsets.
        offsets: usize,
        /// Length of the flags.
        eligible: usize,
    },
    /// An eligible token with `start > end`, or whose end precedes the previous eligible
    /// token's end.
    #[error("{side} token {token} = ({start}, {end}): {reason}")]
    InvalidOffsets {
        /// `teacher` or `student`.
        side: &'static str,
        /// The token's position.
        token: usize,
        /// Its start.
        start: usize,
        /// Its end.
        end: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One span shared by the teacher's and the student's tokenizations: the tokens of each model
/// between two consecutive shared boundaries, as token indices into each model's own sequence
/// (ascending, never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlignedSpan {
    /// The teacher's tokens of the span.
    pub teacher: Vec<usize>,
    /// The student's tokens of the span.
    pub student: Vec<usize>,
}

/// Which side of an [`AlignedSpan`] to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanSide {
    /// [`AlignedSpan::teacher`].
    Teacher,
    /// [`AlignedSpan::student`].
    Student,
}

impl AlignedSpan {
    /// The tokens of `side`.
    pub fn tokens(&self, side: SpanSide) -> &[usize] {
        match side {
            SpanSide::Teacher => &self.teacher,
            SpanSide::Student => &self.student,
        }
    }
}

/// The spans shared by two tokenizations of the same text: a two-pointer walk over the **end**
/// character offsets of the eligible tokens of both sides.
///
/// A character offset that ends an eligible token on both sides is a shared boundary; a span is
/// the tokens of each side between two consecutive shared boundaries (the first span starts at
/// the first eligible token):
///
/// ```text
/// i, j = first eligible teacher / student tokens; start_T = i, start_S = j
/// while both sides have tokens left:
///     if end_T[i] = end_S[j] = e:
///         also take the following tokens of either side that end at e too
///         emit (teacher start_T..=i, student start_S..=j); advance both; new starts
///     else advance the side whose token ends first
/// ```
///
/// - `eligible` is the caller's: the response tokens of each side, without special tokens
///   (BOS/EOS, chat markers) and without padding. Ineligible tokens belong to no span and are
///   skipped by the walk (they need not be at the ends of the sequence).
/// - Tokens of one side that share an end offset (one character split into several byte-level
///   tokens, e.g. "•" in a byte-level BPE) fall in the same span.
/// - Tokens after the last shared boundary (a response cut by truncation on one side) belong to
///   no span: spans are taken on the sequences as given.
/// - Offsets are **characters** (Unicode scalar values: with the `tokenizers` crate,
///   `Tokenizer::encode_char_offsets`), in the same text for both sides, and must not decrease
///   along each side's eligible tokens.
///
/// This is the walk of the SRA authors' code, over plain offsets, so the loss never sees a
/// tokenizer.
///
/// # Errors
/// [`SpanError::LengthMismatch`] when a side's `offsets` and `eligible` differ in length,
/// [`SpanError::InvalidOffsets`] for an eligible token with `start > end`, or whose end
/// precedes the previous eligible token's end.
pub fn shared_spans(
    teacher_offsets: &[(usize, usize)],
    teacher_eligible: &[bool],
    student_offsets: &[(usize, usize)],
    student_eligible: &[bool],
) -> Result<Vec<AlignedSpan>, SpanError> {
    let teacher = eligible_ends(teacher_offsets, teacher_eligible, "teacher")?;
    let student = eligible_ends(student_offsets, student_eligible, "student")?;
    let mut spans = Vec::new();
    let (mut i, mut j) = (0, 0);
    let (mut start_t, mut start_s) = (0, 0);
    while i < teacher.len() && j < student.len() {
        let (end_t, end_s) = (teacher[i].1, student[j].1);
        if end_t == end_s {
            while i + 1 < teacher.len() && teacher[i + 1].1 == end_t {
                i += 1;
            }
            while j + 1 < student.len() && student[j + 1].1 == end_s {
                j += 1;
            }
            spans.push(AlignedSpan {
                teacher: teacher[start_t..=i]
                    .iter()
                    .map(|&(index, _)| index)
                    .collect(),
                student: student[start_s..=j]
                    .iter()
                    .map(|&(index, _)| index)
                    .collect(),
            });
            i += 1;
            j += 1;
            start_t = i;
            start_s = j;
        } else if end_t < end_s {
            i += 1;
        } else {
            j += 1;
        }
    }
    Ok(spans)
}

/// `(token index, end offset)` of the eligible tokens, checked.
fn eligible_ends(
    offsets: &[(usize, usize)],
    eligible: &[bool],
    side: &'static str,
) -> Result<Vec<(usize, usize)>, SpanError> {
    if offsets.len() != eligible.len() {
        return Err(SpanError::LengthMismatch {
            side,
            offsets: offsets.len(),
            eligible: eligible.len(),
        });
    }
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(offsets.len());
    for (index, (&(start, end), &keep)) in offsets.iter().zip(eligible).enumerate() {
        if !keep {
            continue;
        }
        if start > end {
            return Err(SpanError::InvalidOffsets {
                side,
                token: index,
                start,
                end,
                reason: "start > end".into(),
            });
        }
        if let Some(&(previous, previous_end)) = out.last() {
            if end < previous_end {
                return Err(SpanError::InvalidOffsets {
                    side,
                    token: index,
                    start,
                    end,
                    reason: format!(
                        "its end precedes the end {previous_end} of eligible token {previous} \
                         (offsets must not decrease)"
                    ),
                });
            }
        }
        out.push((index, end));
    }
    Ok(out)
}

/// One side of an example's aligned spans as a [`Membership`] (span `k` = unit `k`), e.g. for
/// [`membership_tensor`](crate::membership_tensor): the teacher's and the student's tensors then
/// have the same span rows, padded alike.
pub fn span_membership(spans: &[AlignedSpan], side: SpanSide) -> Membership {
    Membership {
        units: spans.iter().map(|s| s.tokens(side).to_vec()).collect(),
        kept: (0..spans.len()).collect(),
    }
}
