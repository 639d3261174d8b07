//! MinEdit (MinED): cross-tokenizer distillation through a minimum-edit-distance alignment of
//! the two token sequences and the exact-string vocabulary map.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::tensor::{Int, Tensor};
use mrl_common::{log_softmax, log_softmax_select};
use serde::{Deserialize, Serialize};

use crate::checks::{positive, ValueChecks};
use crate::error::{fmt_shape, DistillError};
use crate::numerics::weighted_log_ratio;
use crate::positions::{
    check_pair_shapes, gather_rows, index_tensor, pair_value_checks, scatter_rows, zeros_on_graph,
    ResponsePositions,
};
use crate::reduction::reduce_tokens;
use crate::vocab_map::{fold_space_markers, strip_space_markers, VocabIntersection};

/// The minimum-edit-distance alignment of two token sequences, as DSKD's MinEdit baseline
/// computes it (`code/criterions/min_edit_dis_kld.py`, `dtw`, after FuseLLM, arXiv 2401.10491).
///
/// Dynamic time warping over the pairwise token distance
/// `d(j, i) = Levenshtein(strip(student_j), strip(teacher_i))`, where `strip` removes the space
/// markers `Ġ` / `▁` ([`strip_space_markers`]) and the Levenshtein distance counts unit-cost
/// insertions, deletions and substitutions of Unicode scalar values:
///
/// ```text
/// D(j, i) = d(j, i) + min(D(j−1, i), D(j, i−1), D(j−1, i−1)),   D(0, 0) = d(0, 0),
///           terms outside the grid = ∞
/// ```
///
/// The path is traced back from `(m−1, n−1)` to `(0, 0)`, stepping at each cell to the
/// smallest of the diagonal `(j−1, i−1)`, the previous teacher token `(j, i−1)` and the previous
/// student token `(j−1, i)`, **in that order of preference on a tie** (DSKD's `np.argmin`
/// over `[diag, up, left]`, its `series_1` being the teacher).
///
/// Student token `j` is **aligned** to teacher token `i` when the path pairs `j` with `i` alone
/// (`student_to_teacher[j] = [i]`; the teacher token may still be paired with other student
/// tokens) **and** the two tokens are the same string after [`fold_space_markers`]. The second
/// condition is DSKD's check that the student token is the image of the teacher token under
/// its teacher → student id map; with the exact-string map of [`VocabIntersection`] that is
/// string equality. A student token with several teacher tokens on the path (or none: an empty
/// sequence) is not aligned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinEditAlignment {
    /// The warping path as `(student index, teacher index)`, from `(0, 0)` to
    /// `(m − 1, n − 1)`; empty when either sequence is.
    pub path: Vec<(usize, usize)>,
    /// The path's total cost `D(m−1, n−1)` (0 when either sequence is empty).
    pub cost: u64,
    /// For each student token, the teacher tokens the path pairs it with (increasing).
    pub student_to_teacher: Vec<Vec<usize>>,
    /// For each student token, its aligned teacher token (see the type's documentation).
    pub aligned: Vec<Option<usize>>,
}

impl MinEditAlignment {
    /// Aligns `student` (`m` token strings) with `teacher` (`n` token strings); `O(m n)` token
    /// distances.
    pub fn new<S: AsRef<str>, T: AsRef<str>>(student: &[S], teacher: &[T]) -> Self {
        let (m, n) = (student.len(), teacher.len());
        if m == 0 || n == 0 {
            return Self {
                path: Vec::new(),
                cost: 0,
                student_to_teacher: vec![Vec::new(); m],
                aligned: vec![None; m],
            };
        }
        let chars = |t: &str| -> Vec<char> { strip_space_markers(t).chars().collect() };
        let s: Vec<Vec<char>> = student.iter().map(|t| chars(t.as_ref())).collect();
        let t: Vec<Vec<char>> = teacher.iter().map(|t| chars(t.as_ref())).collect();
        // Accumulated cost, row-major [m, n].
        let mut acc = vec![0u64; m * n];
        let at = |acc: &[u64], j: usize, i: usize| acc[j * n + i];
        for j in 0..m {
            for i in 0..n {
                let d = levenshtein(&s[j], &t[i]);
                let before = if j == 0 && i == 0 {
                    0
                } else {
                    let up = if j > 0 { at(&acc, j - 1, i) } else { u64::MAX };
                    let left = if i > 0 { at(&acc, j, i - 1) } else { u64::MAX };
                    let diag = if j > 0 && i > 0 {
                        at(&acc, j - 1, i - 1)
                    } else {
                        u64::MAX
                    };
                    up.min(left).min(diag)
                };
                acc[j * n + i] = d + before;
            }
        }
        let cost = at(&acc, m - 1, n - 1);
        // Trace back: diagonal, then previous teacher token, then previous student token.
        let (mut j, mut i) = (m - 1, n - 1);
        let mut path = vec![(j, i)];
        while j > 0 || i > 0 {
            let diag = if j > 0 && i > 0 {
                at(&acc, j - 1, i - 1)
            } else {
                u64::MAX
            };
            let prev_teacher = if i > 0 { at(&acc, j, i - 1) } else { u64::MAX };
            let prev_student = if j > 0 { at(&acc, j - 1, i) } else { u64::MAX };
            if diag <= prev_teacher && diag <= prev_student {
                j -= 1;
                i -= 1;
            } else if prev_teacher <= prev_student {
                i -= 1;
            } else {
                j -= 1;
            }
            path.push((j, i));
        }
        path.reverse();
        let mut student_to_teacher = vec![Vec::new(); m];
        for &(j, i) in &path {
            student_to_teacher[j].push(i);
        }
        let aligned = student_to_teacher
            .iter()
            .enumerate()
            .map(|(j, partners)| match partners.as_slice() {
                [i] if fold_space_markers(student[j].as_ref())
                    == fold_space_markers(teacher[*i].as_ref()) =>
                {
                    Some(*i)
                }
                _ => None,
            })
            .collect();
        Self {
            path,
            cost,
            student_to_teacher,
            aligned,
        }
    }

    /// Number of aligned student tokens.
    pub fn aligned_count(&self) -> usize {
        self.aligned.iter().filter(|a| a.is_some()).count()
    }
}

/// The Levenshtein distance of two character sequences (unit costs).
fn levenshtein(a: &[char], b: &[char]) -> u64 {
    if a.is_empty() {
        return b.len() as u64;
    }
    let mut row: Vec<u64> = (0..=b.len() as u64).collect();
    for (x, ca) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = x as u64 + 1;
        for (y, cb) in b.iter().enumerate() {
            let substitute = diag + u64::from(ca != cb);
            diag = row[y + 1];
            row[y + 1] = substitute.min(row[y] + 1).min(diag + 1);
        }
    }
    row[b.len()]
}

/// What MinEdit does at a student response position that is not aligned (see
/// [`MinEditAlignment`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnalignedPositions {
    /// DSKD: the teacher distribution there is the one-hot of the student's own target token,
    /// so the term is `−log q_τ(target)` (cross-entropy at temperature `τ`). Needs
    /// [`MinedInput::student_targets`].
    #[default]
    TargetOneHot,
    /// The position contributes 0 (it still counts in the `Mean` denominator).
    Skip,
}

/// Configuration of [`MinedLoss`].
#[derive(Config, Debug)]
pub struct MinedLossConfig {
    /// Temperature `τ > 0`: both distributions are `softmax(logits / τ)`. Default `1` (DSKD's
    /// default `--kd-temperature`; its GPT-2 / TinyLlama MinEdit scripts pass `2`).
    #[config(default = 1.0)]
    pub temperature: f64,
    /// The term at unaligned student response positions. Default
    /// [`UnalignedPositions::TargetOneHot`] (DSKD).
    #[config(default = "UnalignedPositions::TargetOneHot")]
    pub unaligned: UnalignedPositions,
}

impl MinedLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`MinedLossConfig::try_init`].
    pub fn init(&self) -> MinedLoss {
        self.try_init()
            .unwrap_or_else(|e| panic!("MinedLossConfig: {e}"))
    }

    /// Builds the loss, or reports an invalid configuration.
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] when `temperature` is not finite and `> 0`.
    pub fn try_init(&self) -> Result<MinedLoss, DistillError> {
        let loss = MinedLoss {
            temperature: self.temperature,
            unaligned: self.unaligned,
        };
        loss.validate()?;
        Ok(loss)
    }
}

/// The inputs of [`MinedLoss`] for one batch.
///
/// # Shapes
/// - `student_logits`: `[batch, seq_S, vocab_S]`
/// - `student_mask`: `[batch, seq_S]`, float 0/1, 1 = the position predicts a response token
///   (the crate's next-token convention, DSKD's `label != -100`)
/// - `student_targets`: `[batch, seq_S]`, the token each position predicts (ids in
///   `0..vocab_S` at counted positions); required with [`UnalignedPositions::TargetOneHot`]
/// - `teacher_logits`: `[batch, seq_T, vocab_T]`
/// - `teacher_mask`: `[batch, seq_T]`, as `student_mask`
/// - `student_tokens[b][t]`: the token string of the student's **input** token at position `t`
///   (the last token the logits at `t` have read), `seq_S` strings per sequence, in the
///   vocabulary's own spelling (`Ġthe`, as `tokenizer.json` / `convert_ids_to_tokens` give);
///   only the counted positions are read
/// - `teacher_tokens[b][t]`: the same for the teacher, `seq_T` strings per sequence
#[derive(Debug, Clone)]
pub struct MinedInput {
    /// The student's logits.
    pub student_logits: Tensor<3>,
    /// The student's response mask.
    pub student_mask: Tensor<2>,
    /// The student's next-token targets.
    pub student_targets: Option<Tensor<2, Int>>,
    /// The teacher's logits (data: no gradient).
    pub teacher_logits: Tensor<3>,
    /// The teacher's response mask.
    pub teacher_mask: Tensor<2>,
    /// The student's input token strings, per sequence.
    pub student_tokens: Vec<Vec<String>>,
    /// The teacher's input token strings, per sequence.
    pub teacher_tokens: Vec<Vec<String>>,
}

/// MinEdit forward KL (FuseLLM, Wan et al., arXiv 2401.10491), as DSKD (Zhang et al., arXiv
/// 2406.17328) re-implements it for its cross-tokenizer baselines
/// (`code/criterions/min_edit_dis_kld.py`, `transform_step_logits_fast`).
///
/// In sequence `b`, the student's response positions `s_1 < … < s_m` (`student_mask = 1`) and
/// the teacher's `t_1 < … < t_n` are aligned by [`MinEditAlignment`] on their **input** token
/// strings. With the [`VocabIntersection`] `I = {(σ_k, θ_k)}` and temperature `τ`:
///
/// ```text
/// aligned s_j ↔ t_i:   p = softmax_k(teacher_logits[b, t_i, θ_k] / τ)         over the K pairs
///                      log q = log_softmax(student_logits[b, s_j] / τ)          over all of V_S
///                      ℓ[b, s_j] = Σ_k p_k (log p_k − log q_{σ_k})              = KL(p_T→S ‖ q)
/// unaligned s_j:       ℓ[b, s_j] = −log q_{target[b, s_j]}    (TargetOneHot, DSKD)
///                                 or 0                         (Skip)
/// L = Σ ℓ / Σ student_mask                                     (Reduction::Mean, Auto)
/// ```
///
/// `Sum` returns `Σ ℓ`, `BatchMean` `Σ ℓ / batch`. `Mean` divides by the number of student
/// response positions, DSKD's loss denominator.
///
/// # Relation to DSKD
/// - DSKD maps the teacher's logits to the student vocabulary with a teacher → student id map
///   loaded from its data release (`tea2stu_id_mapping.json`, built FuseLLM-style); for each
///   student id it keeps one teacher id and writes its logit there, and `−100000` in every
///   other student column, then takes `softmax(· / τ)` over the student vocabulary. Here the
///   map is the exact-string [`VocabIntersection`]: the teacher distribution is the softmax
///   over the paired columns, exactly 0 elsewhere (what the `−100000` columns give), without
///   the sentinel.
/// - DSKD's one-hot teacher (`100` at the target, `−100000` elsewhere, then `/ τ`) is exactly
///   one-hot in float32, so its KL is the cross-entropy `−log q_τ(target)` used here.
/// - DSKD also treats a position as unaligned when all of the mapped teacher logits are
///   `−100000`; with finite logits and a non-empty map that never happens and is not checked.
///
/// The token strings and the DP stay on the host; the `[N, V]` work runs on the paired and
/// fallback rows only. The teacher receives no gradient.
#[derive(Module, Debug)]
pub struct MinedLoss {
    /// Temperature `τ`.
    pub temperature: f64,
    /// The term at unaligned positions.
    #[module(skip)]
    pub unaligned: UnalignedPositions,
}

/// The reduced loss of [`MinedLoss::forward`] and its alignment counts.
#[derive(Debug, Clone)]
pub struct MinedOutput {
    /// The reduced loss, `[1]`, differentiable w.r.t. the student logits.
    pub loss: Tensor<1>,
    /// Student response positions aligned to a teacher position (host value).
    pub aligned_positions: usize,
    /// Student response positions `Σ student_mask` (host value); the others are unaligned.
    pub student_positions: usize,
}

/// Per-position values and the counts.
struct PerToken {
    value: Tensor<2>,
    aligned: usize,
    counted: usize,
}

impl MinedLoss {
    /// The reduced loss.
    ///
    /// # Shapes
    /// See [`MinedInput`]; `vocab` must hold ids below `vocab_S` and `vocab_T`; output `[1]`.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`MinedLoss::try_forward`].
    pub fn forward(
        &self,
        input: MinedInput,
        vocab: &VocabIntersection,
        reduction: Reduction,
    ) -> MinedOutput {
        self.try_forward(input, vocab, reduction)
            .unwrap_or_else(|e| panic!("MinedLoss: {e}"))
    }

    /// [`MinedLoss::forward`] returning an error on bad input.
    ///
    /// Validates the shapes on the host, reads back the masks and a few statistics in one
    /// transfer, then aligns every sequence on the host.
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] for an invalid `τ`; [`DistillError::Shape`] for empty
    /// logits, a batch mismatch, a mask or targets not `[batch, seq]` of their logits, token
    /// lists whose lengths are not `batch` × `seq`, a vocabulary map with ids past the logits,
    /// or missing `student_targets` under [`UnalignedPositions::TargetOneHot`];
    /// [`DistillError::NonFinite`] for NaN / ±∞ logits; [`DistillError::InvalidMask`] for a
    /// mask that is not 0/1 or is all zero; [`DistillError::InvalidIds`] for targets out of
    /// the student vocabulary at counted positions.
    pub fn try_forward(
        &self,
        input: MinedInput,
        vocab: &VocabIntersection,
        reduction: Reduction,
    ) -> Result<MinedOutput, DistillError> {
        let mask = input
            .student_mask
            .clone()
            .cast(input.student_logits.dtype());
        let per_token = self.per_token(input, vocab)?;
        Ok(MinedOutput {
            loss: reduce_tokens(per_token.value, &mask, &reduction),
            aligned_positions: per_token.aligned,
            student_positions: per_token.counted,
        })
    }

    /// Per-position values `ℓ[b, t]` at the student's positions (0 where the student mask is
    /// 0, and at skipped unaligned positions).
    ///
    /// # Shapes
    /// See [`MinedInput`]; output `[batch, seq_S]`.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`MinedLoss::try_forward`].
    pub fn forward_no_reduction(&self, input: MinedInput, vocab: &VocabIntersection) -> Tensor<2> {
        self.try_forward_no_reduction(input, vocab)
            .unwrap_or_else(|e| panic!("MinedLoss: {e}"))
    }

    /// [`MinedLoss::forward_no_reduction`] returning an error on bad input.
    ///
    /// # Errors
    /// As [`MinedLoss::try_forward`].
    pub fn try_forward_no_reduction(
        &self,
        input: MinedInput,
        vocab: &VocabIntersection,
    ) -> Result<Tensor<2>, DistillError> {
        self.per_token(input, vocab).map(|p| p.value)
    }

    fn validate(&self) -> Result<(), DistillError> {
        positive("temperature", self.temperature)
    }

    fn per_token(
        &self,
        input: MinedInput,
        vocab: &VocabIntersection,
    ) -> Result<PerToken, DistillError> {
        self.validate()?;
        let MinedInput {
            student_logits,
            student_mask,
            student_targets,
            teacher_logits,
            teacher_mask,
            student_tokens,
            teacher_tokens,
        } = input;
        check_pair_shapes(
            &student_logits,
            &student_mask,
            &teacher_logits,
            &teacher_mask,
        )?;
        let [batch, seq_s, vocab_s] = student_logits.dims();
        let [_, seq_t, vocab_t] = teacher_logits.dims();
        check_tokens("student_tokens", &student_tokens, batch, seq_s)?;
        check_tokens("teacher_tokens", &teacher_tokens, batch, seq_t)?;
        vocab.check_logit_widths(vocab_s, vocab_t)?;
        let targets = match (self.unaligned, student_targets) {
            (UnalignedPositions::TargetOneHot, None) => {
                return Err(DistillError::Shape {
                    arg: "student_targets",
                    detail: format!(
                        "missing: unaligned = TargetOneHot needs the targets [batch, seq] = {}",
                        fmt_shape(&[batch, seq_s])
                    ),
                })
            }
            (UnalignedPositions::TargetOneHot, Some(t)) => {
                if t.dims() != [batch, seq_s] {
                    return Err(DistillError::Shape {
                        arg: "student_targets",
                        detail: format!(
                            "expected [batch, seq] = {} to match `student_logits` {}, got {}",
                            fmt_shape(&[batch, seq_s]),
                            fmt_shape(&student_logits.dims()),
                            fmt_shape(&t.dims())
                        ),
                    });
                }
                Some(t)
            }
            (UnalignedPositions::Skip, _) => None,
        };

        let mut checks = ValueChecks::new();
        let readback = pair_value_checks(
            &mut checks,
            &student_logits,
            &student_mask,
            &teacher_logits,
            &teacher_mask,
        );
        if let Some(t) = &targets {
            checks.ids_in_range(
                "student_targets",
                t,
                vocab_s,
                Some(student_mask.clone().equal_elem(1.0)),
            );
        }
        let ResponsePositions {
            student: student_pos,
            teacher: teacher_pos,
        } = readback.read(&checks.run()?);

        // Host-side alignment of every sequence.
        let mut aligned_s = Vec::new();
        let mut aligned_t = Vec::new();
        let mut unaligned_s = Vec::new();
        for b in 0..batch {
            let s: Vec<&str> = student_pos[b]
                .iter()
                .map(|&p| student_tokens[b][p].as_str())
                .collect();
            let t: Vec<&str> = teacher_pos[b]
                .iter()
                .map(|&p| teacher_tokens[b][p].as_str())
                .collect();
            let alignment = MinEditAlignment::new(&s, &t);
            for (j, partner) in alignment.aligned.iter().enumerate() {
                let row = b * seq_s + student_pos[b][j];
                match partner {
                    Some(i) => {
                        aligned_s.push(row);
                        aligned_t.push(b * seq_t + teacher_pos[b][*i]);
                    }
                    None => unaligned_s.push(row),
                }
            }
        }
        let counted = student_pos.iter().map(Vec::len).sum();
        let aligned = aligned_s.len();
        let device = student_logits.device();
        let dtype = student_logits.dtype();
        let inv_tau = 1.0 / self.temperature;

        let mut value = zeros_on_graph(&student_logits);
        if !aligned_s.is_empty() {
            let (student_ids, teacher_ids) = vocab.id_tensors(&device);
            let log_q = log_softmax(
                gather_rows(student_logits.clone(), &aligned_s).mul_scalar(inv_tau),
                1,
            )
            .select(1, student_ids);
            let log_p = log_softmax(
                gather_rows(teacher_logits.detach().cast(dtype), &aligned_t)
                    .select(1, teacher_ids)
                    .mul_scalar(inv_tau),
                1,
            );
            let kl = weighted_log_ratio(log_p, log_q, false);
            value = value + scatter_rows(kl, &aligned_s, batch, seq_s);
        }
        if let (Some(targets), false) = (targets, unaligned_s.is_empty()) {
            let n = unaligned_s.len();
            let rows = index_tensor(&unaligned_s, &device);
            let target = targets
                .reshape([batch * seq_s])
                .select(0, rows)
                .reshape([n, 1]);
            let ce = log_softmax_select(
                gather_rows(student_logits, &unaligned_s),
                target,
                inv_tau,
                false,
            )
            .reshape([n])
            .neg();
            value = value + scatter_rows(ce, &unaligned_s, batch, seq_s);
        }
        Ok(PerToken {
            value,
            aligned,
            counted,
        })
    }
}

/// `tokens` must hold `batch` sequences of `seq` strings.
fn check_tokens(
    arg: &'static str,
    tokens: &[Vec<String>],
    batch: usize,
    seq: usize,
) -> Result<(), DistillError> {
    if tokens.len() != batch {
        return Err(DistillError::Shape {
            arg,
            detail: format!(
                "expected {batch} sequences (the batch size), got {}",
                tokens.len()
            ),
        });
    }
    if let Some((b, row)) = tokens.iter().enumerate().find(|(_, r)| r.len() != seq) {
        return Err(DistillError::Shape {
            arg,
            detail: format!(
                "sequence {b} has {} token strings, expected one per position of the logits \
                 ({seq})",
                row.len()
            ),
        });
    }
    Ok(())
}
