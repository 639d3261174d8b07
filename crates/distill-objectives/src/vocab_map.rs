//! The exact-string intersection of two tokenizers' vocabularies, for cross-tokenizer
//! distillation: which student id and which teacher id stand for the same token string.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{fmt_shape, DistillError};

/// The space marker of byte-level BPE vocabularies (GPT-2, SmolLM2, Qwen, …): `Ġ` (U+0120)
/// stands for the byte `0x20`, so `"Ġthe"` is `" the"`.
pub const BYTE_LEVEL_SPACE: char = '\u{120}';

/// The space marker of SentencePiece vocabularies (Llama 2, TinyLlama, Mistral, …): `▁`
/// (U+2581), so `"▁the"` is `" the"`.
pub const SENTENCEPIECE_SPACE: char = '\u{2581}';

/// The token string with the SentencePiece space marker `▁` folded onto the byte-level one
/// `Ġ` ([`BYTE_LEVEL_SPACE`]), so `"▁the"` and `"Ġthe"` compare equal. Every other character
/// is kept (no Unicode normalisation, no byte-level decoding).
///
/// Folding treats **every** `▁` as a space marker; a vocabulary in which `▁` is a literal
/// character (never the case in a byte-level vocabulary, where it is spelled `âĸģ`) would
/// see it compared as a space.
pub fn fold_space_markers(token: &str) -> Cow<'_, str> {
    if token.contains(SENTENCEPIECE_SPACE) {
        Cow::Owned(token.replace(SENTENCEPIECE_SPACE, &BYTE_LEVEL_SPACE.to_string()))
    } else {
        Cow::Borrowed(token)
    }
}

/// The token string with both space markers (`Ġ`, `▁`) removed, as MinEdit's token distance
/// compares tokens (see [`MinEditAlignment`](crate::MinEditAlignment)).
pub fn strip_space_markers(token: &str) -> Cow<'_, str> {
    if token.contains([BYTE_LEVEL_SPACE, SENTENCEPIECE_SPACE]) {
        Cow::Owned(token.replace([BYTE_LEVEL_SPACE, SENTENCEPIECE_SPACE], ""))
    } else {
        Cow::Borrowed(token)
    }
}

/// The id → token vocabulary of a `token → id` map (the `model.vocab` of a Hugging Face
/// `tokenizer.json`, plus its `added_tokens`): entry `i` is the token of id `i`.
///
/// # Errors
/// [`DistillError::InvalidVocabulary`] naming `arg` when the map is empty, two tokens share an
/// id, or an id in `0..len` has no token (a gap).
pub fn vocabulary_from_token_map(
    arg: &'static str,
    token_to_id: &HashMap<String, u32>,
) -> Result<Vec<String>, DistillError> {
    if token_to_id.is_empty() {
        return Err(DistillError::InvalidVocabulary {
            arg,
            reason: "it is empty".into(),
        });
    }
    let size = token_to_id
        .values()
        .map(|&id| id as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_id: Vec<Option<&str>> = vec![None; size];
    for (token, &id) in token_to_id {
        if let Some(other) = by_id[id as usize].replace(token.as_str()) {
            let (a, b) = if other < token.as_str() {
                (other, token.as_str())
            } else {
                (token.as_str(), other)
            };
            return Err(DistillError::InvalidVocabulary {
                arg,
                reason: format!("tokens {a:?} and {b:?} share the id {id}"),
            });
        }
    }
    by_id
        .into_iter()
        .enumerate()
        .map(|(id, token)| {
            token
                .map(str::to_string)
                .ok_or_else(|| DistillError::InvalidVocabulary {
                    arg,
                    reason: format!(
                        "no token has the id {id}, but ids go up to {} (a vocabulary is the ids \
                     0..{size} without gaps)",
                        size - 1
                    ),
                })
        })
        .collect()
}

/// The exact-string intersection of a student and a teacher vocabulary: the pairs
/// `(student id, teacher id)` whose token strings are equal after [`fold_space_markers`],
/// in increasing student id.
///
/// ```text
/// I = { (s, t) : fold(vocab_S[s]) = fold(vocab_T[t]) },   fold: ▁ ↦ Ġ
/// ```
///
/// The strings are the vocabularies' own spellings (byte-level strings as in `tokenizer.json`,
/// e.g. `Ġthe`, `Ċ` for a newline), compared exactly: no decoding, no case folding, special
/// tokens included (`<|endoftext|>` is GPT-2's 50256 and SmolLM2's 0). Between GPT-2 (50,257
/// tokens) and SmolLM2 (49,152) it holds 36,961 pairs.
///
/// When folding makes two tokens of one vocabulary equal (e.g. a vocabulary holding both `▁a`
/// and `Ġa`), the **lowest id** of that side is paired and the others are left out, so the map
/// stays one-to-one.
///
/// Used to compare the two models' next-token distributions on a common support
/// ([`VocabIntersection::select_student`], [`VocabIntersection::select_teacher`]): by MinEdit
/// ([`MinedLoss`](crate::MinedLoss)) and by SRA's aligned-span logit distillation (arXiv
/// 2605.01205). DSKD (arXiv 2406.17328) maps vocabularies the same way for its MinEdit baseline
/// (a teacher → student id map; see [`MinedLoss`](crate::MinedLoss) for the difference).
///
/// # Example
/// ```
/// # fn main() -> Result<(), distill_objectives::DistillError> {
/// use burn::tensor::{Device, Tensor};
/// use distill_objectives::VocabIntersection;
///
/// let student = ["<|endoftext|>", "Ġthe", "Ġcat", "the"]; // byte-level BPE
/// let teacher = ["<unk>", "▁cat", "▁the", "<|endoftext|>", "▁"]; // SentencePiece
/// let map = VocabIntersection::from_vocabularies(&student, &teacher)?;
/// assert_eq!(map.pairs().collect::<Vec<_>>(), [(0, 3), (1, 2), (2, 1)]);
///
/// # #[cfg(feature = "flex")]
/// let device = Device::flex();
/// # #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
/// # #[allow(deprecated)]
/// # let device = Device::ndarray();
/// let logits = Tensor::<3>::zeros([2, 7, student.len()], &device);
/// assert_eq!(map.select_student(logits).dims(), [2, 7, 3]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabIntersection {
    student_ids: Vec<u32>,
    teacher_ids: Vec<u32>,
    student_vocab_size: usize,
    teacher_vocab_size: usize,
}

impl VocabIntersection {
    /// The intersection of two id → token vocabularies (entry `i` is the token of id `i`).
    ///
    /// # Errors
    /// [`DistillError::InvalidVocabulary`] when a vocabulary is empty, holds an empty token,
    /// has more than `u32::MAX` entries, or the two share no token.
    pub fn from_vocabularies<S: AsRef<str>, T: AsRef<str>>(
        student: &[S],
        teacher: &[T],
    ) -> Result<Self, DistillError> {
        check_vocabulary("student vocabulary", student)?;
        check_vocabulary("teacher vocabulary", teacher)?;
        // The lowest teacher id of every folded string.
        let mut teacher_of: HashMap<Cow<'_, str>, u32> = HashMap::with_capacity(teacher.len());
        for (id, token) in teacher.iter().enumerate() {
            teacher_of
                .entry(fold_space_markers(token.as_ref()))
                .or_insert(id as u32);
        }
        let mut seen: HashSet<Cow<'_, str>> = HashSet::new();
        let mut student_ids = Vec::new();
        let mut teacher_ids = Vec::new();
        for (id, token) in student.iter().enumerate() {
            let folded = fold_space_markers(token.as_ref());
            if let Some(&t) = teacher_of.get(&folded) {
                // Only the lowest student id of a folded string.
                if seen.insert(folded) {
                    student_ids.push(id as u32);
                    teacher_ids.push(t);
                }
            }
        }
        Self::new(student_ids, teacher_ids, student.len(), teacher.len())
    }

    /// The intersection of two `token → id` maps (Hugging Face `tokenizer.json` vocabularies
    /// with their added tokens), via [`vocabulary_from_token_map`].
    ///
    /// # Errors
    /// As [`vocabulary_from_token_map`] and [`VocabIntersection::from_vocabularies`].
    pub fn from_token_maps(
        student: &HashMap<String, u32>,
        teacher: &HashMap<String, u32>,
    ) -> Result<Self, DistillError> {
        let student = vocabulary_from_token_map("student vocabulary", student)?;
        let teacher = vocabulary_from_token_map("teacher vocabulary", teacher)?;
        Self::from_vocabularies(&student, &teacher)
    }

    /// A map given as its pairs `(student id, teacher id)` (any order; stored in increasing
    /// student id), for vocabularies of `student_vocab_size` and `teacher_vocab_size` tokens.
    ///
    /// # Errors
    /// [`DistillError::InvalidVocabulary`] when there is no pair, an id is out of its
    /// vocabulary, or an id appears in two pairs (the map must be one-to-one).
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (u32, u32)>,
        student_vocab_size: usize,
        teacher_vocab_size: usize,
    ) -> Result<Self, DistillError> {
        let mut pairs: Vec<(u32, u32)> = pairs.into_iter().collect();
        pairs.sort_unstable();
        let (student_ids, teacher_ids) = pairs.into_iter().unzip();
        Self::new(
            student_ids,
            teacher_ids,
            student_vocab_size,
            teacher_vocab_size,
        )
    }

    fn new(
        student_ids: Vec<u32>,
        teacher_ids: Vec<u32>,
        student_vocab_size: usize,
        teacher_vocab_size: usize,
    ) -> Result<Self, DistillError> {
        if student_ids.is_empty() {
            return Err(DistillError::InvalidVocabulary {
                arg: "pairs",
                reason: format!(
                    "the student ({student_vocab_size} tokens) and teacher \
                     ({teacher_vocab_size} tokens) vocabularies share no token"
                ),
            });
        }
        for (side, ids, size) in [
            ("student", &student_ids, student_vocab_size),
            ("teacher", &teacher_ids, teacher_vocab_size),
        ] {
            let mut seen = vec![false; size];
            for &id in ids {
                let Some(slot) = seen.get_mut(id as usize) else {
                    return Err(DistillError::InvalidVocabulary {
                        arg: "pairs",
                        reason: format!(
                            "{side} id {id} is outside the {side} vocabulary of {size} tokens"
                        ),
                    });
                };
                if std::mem::replace(slot, true) {
                    return Err(DistillError::InvalidVocabulary {
                        arg: "pairs",
                        reason: format!(
                            "{side} id {id} appears in two pairs; the map must be one-to-one"
                        ),
                    });
                }
            }
        }
        Ok(Self {
            student_ids,
            teacher_ids,
            student_vocab_size,
            teacher_vocab_size,
        })
    }

    /// Number of pairs `K`.
    pub fn len(&self) -> usize {
        self.student_ids.len()
    }

    /// Always `false`: a map holds at least one pair.
    pub fn is_empty(&self) -> bool {
        self.student_ids.is_empty()
    }

    /// The student ids of the pairs, increasing.
    pub fn student_ids(&self) -> &[u32] {
        &self.student_ids
    }

    /// The teacher ids of the pairs, in the order of [`VocabIntersection::student_ids`].
    pub fn teacher_ids(&self) -> &[u32] {
        &self.teacher_ids
    }

    /// The pairs `(student id, teacher id)`, in increasing student id.
    pub fn pairs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.student_ids
            .iter()
            .copied()
            .zip(self.teacher_ids.iter().copied())
    }

    /// Size of the student vocabulary the map was built for.
    pub fn student_vocab_size(&self) -> usize {
        self.student_vocab_size
    }

    /// Size of the teacher vocabulary the map was built for.
    pub fn teacher_vocab_size(&self) -> usize {
        self.teacher_vocab_size
    }

    /// The student logits at the intersection's columns: column `k` is student id
    /// `student_ids()[k]`.
    ///
    /// # Shapes
    /// - `logits`: `[.., V_S]`
    /// - output: `[.., K]`
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`VocabIntersection::try_select_student`].
    pub fn select_student<const D: usize>(&self, logits: Tensor<D>) -> Tensor<D> {
        self.try_select_student(logits)
            .unwrap_or_else(|e| panic!("VocabIntersection: {e}"))
    }

    /// [`VocabIntersection::select_student`], or an error when the logits are too narrow.
    ///
    /// # Errors
    /// [`DistillError::Shape`] when the last dim of `logits` does not hold every student id
    /// of the map.
    pub fn try_select_student<const D: usize>(
        &self,
        logits: Tensor<D>,
    ) -> Result<Tensor<D>, DistillError> {
        select_columns("student_logits", logits, &self.student_ids)
    }

    /// The teacher logits at the intersection's columns, in the order of the student ids:
    /// column `k` is teacher id `teacher_ids()[k]`, the partner of student id
    /// `student_ids()[k]`.
    ///
    /// # Shapes
    /// - `logits`: `[.., V_T]`
    /// - output: `[.., K]`
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`VocabIntersection::try_select_teacher`].
    pub fn select_teacher<const D: usize>(&self, logits: Tensor<D>) -> Tensor<D> {
        self.try_select_teacher(logits)
            .unwrap_or_else(|e| panic!("VocabIntersection: {e}"))
    }

    /// [`VocabIntersection::select_teacher`], or an error when the logits are too narrow.
    ///
    /// # Errors
    /// [`DistillError::Shape`] when the last dim of `logits` does not hold every teacher id
    /// of the map.
    pub fn try_select_teacher<const D: usize>(
        &self,
        logits: Tensor<D>,
    ) -> Result<Tensor<D>, DistillError> {
        select_columns("teacher_logits", logits, &self.teacher_ids)
    }

    /// Checks that logits of last dim `student_vocab` / `teacher_vocab` hold every id.
    pub(crate) fn check_logit_widths(
        &self,
        student_vocab: usize,
        teacher_vocab: usize,
    ) -> Result<(), DistillError> {
        check_width("student_logits", student_vocab, &self.student_ids)?;
        check_width("teacher_logits", teacher_vocab, &self.teacher_ids)
    }

    /// The id tensors `(student, teacher)` on `device`.
    pub(crate) fn id_tensors(
        &self,
        device: &burn::tensor::Device,
    ) -> (Tensor<1, Int>, Tensor<1, Int>) {
        (
            id_tensor(&self.student_ids, device),
            id_tensor(&self.teacher_ids, device),
        )
    }
}

fn check_vocabulary<S: AsRef<str>>(arg: &'static str, vocab: &[S]) -> Result<(), DistillError> {
    if vocab.is_empty() {
        return Err(DistillError::InvalidVocabulary {
            arg,
            reason: "it is empty".into(),
        });
    }
    if vocab.len() > u32::MAX as usize {
        return Err(DistillError::InvalidVocabulary {
            arg,
            reason: format!("it has {} tokens, more than u32 ids can hold", vocab.len()),
        });
    }
    if let Some(id) = vocab.iter().position(|t| t.as_ref().is_empty()) {
        return Err(DistillError::InvalidVocabulary {
            arg,
            reason: format!("the token of id {id} is the empty string"),
        });
    }
    Ok(())
}

fn check_width(arg: &'static str, width: usize, ids: &[u32]) -> Result<(), DistillError> {
    let max = ids.iter().copied().max().unwrap_or(0) as usize;
    if max >= width {
        return Err(DistillError::Shape {
            arg,
            detail: format!(
                "the vocabulary map uses ids up to {max}, but the last dim holds only {width} \
                 logits"
            ),
        });
    }
    Ok(())
}

fn id_tensor(ids: &[u32], device: &burn::tensor::Device) -> Tensor<1, Int> {
    let data: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    Tensor::from_data(TensorData::new(data, [ids.len()]), device)
}

fn select_columns<const D: usize>(
    arg: &'static str,
    logits: Tensor<D>,
    ids: &[u32],
) -> Result<Tensor<D>, DistillError> {
    let dims = logits.dims();
    if D == 0 {
        return Err(DistillError::Shape {
            arg,
            detail: "expected a tensor with a vocabulary dim, got a scalar".into(),
        });
    }
    check_width(arg, dims[D - 1], ids).map_err(|e| match e {
        DistillError::Shape { arg, detail } => DistillError::Shape {
            arg,
            detail: format!("{detail} (shape {})", fmt_shape(&dims)),
        },
        other => other,
    })?;
    let index = id_tensor(ids, &logits.device());
    Ok(logits.select(D - 1, index))
}
