//! Knowledge-distillation objectives for LLMs on [Burn](https://burn.dev) 0.22: token-level
//! divergences between a teacher's and a student's next-token distributions, and MTA's
//! alignment of their hidden states over word and phrase units.
//!
//! At every position `t` counted by the mask, with temperature `τ`,
//! `p_t = softmax(teacher_logits_t / τ)` and `q_t = softmax(student_logits_t / τ)`:
//!
//! | divergence | name | formula | reference |
//! |---|---|---|---|
//! | [`Divergence::ForwardKl`] | `fkl` | `Σ p (log p − log q)` | Hinton et al., arXiv 1503.02531 |
//! | [`Divergence::ReverseKl`] | `rkl` | `Σ q (log q − log p)` | MiniLLM, arXiv 2306.08543 |
//! | [`Divergence::JensenShannon`] | `js` | `β KL(p‖m) + (1−β) KL(q‖m)`, `m = β p + (1−β) q` | DSKD, arXiv 2406.17328 |
//! | [`Divergence::TotalVariation`] | `tv` | `½ Σ |p − q|` | DistiLLM, arXiv 2402.03898 |
//! | [`Divergence::SkewedForwardKl`] | `sfkl` | `KL(p ‖ λ p + (1−λ) q)` | DistiLLM; DSKD |
//! | [`Divergence::SkewedReverseKl`] | `srkl` | `KL(q ‖ (1−λ) p + λ q)` | DistiLLM; DSKD |
//! | [`Divergence::AdaptiveKl`] | `akl` | `(g_head FKL + g_tail RKL) / (g_head + g_tail)` | AKL, arXiv 2404.02657 |
//! | [`Divergence::DistillmSkewKl`] | `skew_kl` | `−Σ p log(λ p + (1−λ) q)` | DistiLLM, arXiv 2402.03898 |
//!
//! The definitions follow the reference implementations: DSKD's
//! `code/criterions/various_divergence.py` and DistiLLM's `distillm/losses.py` (see each
//! variant for the details: which term `β` weights, AKL's sort direction and tail, the `½` of
//! TV). Later LLM-distillation objectives build on these divergences, e.g. MTA
//! (arXiv 2605.01374) and SRA (arXiv 2605.01205).
//!
//! # The pieces
//! - [`KdLossConfig`] → [`KdLoss`]: a [`Divergence`] at temperature `τ` (optionally scaled by
//!   `τ²`), `forward(.., Reduction)` → [`KdOutput`] (loss and named terms) and
//!   `forward_no_reduction` → per-token values `[batch, seq]`.
//! - [`TeacherTarget`]: full teacher logits, or its top-k ([`TopKTarget`], made by
//!   [`teacher_top_k`]) — both distributions then coarsened to the `k` ids plus a "rest"
//!   bucket, exactly.
//! - [`masked_cross_entropy`]: the supervised term; [`KdObjectiveConfig`] → [`KdObjective`]:
//!   `(1 − α) CE + α KD`.
//! - [`top1_agreement`]: how often the student's argmax is the teacher's.
//! - MTA (Multi-Granular Trajectory Alignment, arXiv 2605.01374): [`MtaLossConfig`] →
//!   [`MtaLoss`] — Dynamic Structural Alignment (unit-to-unit cosine structure) and Hidden
//!   Representation Alignment (projected per-token cosine) over a schedule of
//!   [`MtaLayerPair`]s, with [`token_weights`] (or [`teacher_confidence`]) weighting the tokens.
//! - Units for MTA: [`Units`] (word and phrase [`Span`]s, character offsets into the
//!   response) from the data or a [`Chunker`] ([`EnglishChunker`]), [`unit_membership`] (which
//!   tokens each unit holds, from the tokenizer's character offsets) and
//!   [`membership_tensor`] (a batch of them as `[batch, units, seq]`).
//! - SRA (Span Representation Alignment, arXiv 2605.01205), across tokenizers:
//!   [`shared_spans`] (the spans two tokenizations of one text share, from their character
//!   offsets), [`com_weights`] (attention-derived token weights), [`SraLossConfig`] →
//!   [`SraLoss`] — centre-of-mass alignment through a learnable [`ProjectorInit`]-started
//!   projector, geometric regularizer and span logit distillation.
//! - Cross-tokenizer distillation (a teacher and a student with different tokenizers, e.g.
//!   SmolLM2 → GPT-2), as DSKD's baselines define it: [`VocabIntersection`] (the exact-string
//!   vocabulary map, space markers `Ġ` / `▁` folded, with column selection on both sides),
//!   [`UldLossConfig`] → [`UldLoss`] (Universal Logit Distillation, arXiv 2402.12030: sorted
//!   probabilities, zero-padded, L1) and [`MinEditAlignment`] + [`MinedLossConfig`] →
//!   [`MinedLoss`] (MinEdit, arXiv 2401.10491: a dynamic-programming alignment of the token
//!   strings, then forward KL on the intersection). Their inputs are plain data: logits, the
//!   two response masks, token strings. [`DskdCmaConfig`] → [`DskdCma`] (DSKD with
//!   cross-model attention, arXiv 2406.17328: the teacher's states projected into the
//!   student's space and back, queried by the student's tokens).
//!
//! # Conventions
//! - Masks are `[batch, seq]` float 0/1 (for next-token logits, 1 where the position predicts
//!   a response token); per-token values are 0 at masked-out positions;
//!   `Reduction::Mean` / `Auto` divide the sum by the number of counted positions (DSKD's token
//!   mean), `Sum` returns the sum, `BatchMean` divides it by the batch size.
//! - Everything is computed from `log_softmax` in log space (mixtures by log-sum-exp), so no
//!   probability that underflows to 0 is ever passed to `log`, and nothing is clamped. The
//!   log-softmax over the vocabulary is [`mrl_common::log_softmax()`]: one backend operation with a
//!   hand-written backward, vectorised across the cores on flex and ndarray, Burn's elsewhere.
//!   Where only a few classes of a row are needed — the cross-entropy's target, the student's
//!   side of top-k distillation (the teacher's ids and the rest bucket), a teacher's top-k —
//!   [`mrl_common::log_softmax_select()`] gives their log-probabilities (and the exact log-mass
//!   of all other tokens) without the vocabulary-wide tensor; the forward KL against a full
//!   teacher is [`mrl_common::kl_div_logits()`], from both logits without either log-softmax.
//! - Bad input is reported with [`DistillError`], which names the argument and the shapes or
//!   values: the `try_` functions return it, the plain ones panic with its message. The value
//!   checks (finiteness, mask, ids) read one small vector back from the device.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), distill_objectives::DistillError> {
//! use burn::nn::loss::Reduction;
//! use burn::tensor::{Device, Distribution, Tensor};
//! use distill_objectives::{
//!     teacher_top_k, Divergence, KdLossConfig, KdObjectiveConfig, TeacherTarget,
//! };
//!
//! # #[cfg(feature = "flex")]
//! let device = Device::flex().autodiff();
//! # #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
//! # #[allow(deprecated)]
//! # let device = Device::ndarray().autodiff();
//! let (batch, seq, vocab) = (2, 5, 32);
//! let student = Tensor::<3>::random([batch, seq, vocab], Distribution::Normal(0.0, 1.0), &device)
//!     .require_grad();
//! let teacher_logits = Tensor::<3>::random([batch, seq, vocab], Distribution::Normal(0.0, 2.0), &device);
//! let mask = Tensor::<2>::ones([batch, seq], &device);
//!
//! // Adaptive KL at τ = 2 on the full teacher distribution.
//! let kd = KdLossConfig::new("akl".parse::<Divergence>()?)
//!     .with_temperature(2.0)
//!     .try_init()?;
//! let teacher = TeacherTarget::full(teacher_logits.clone());
//! let out = kd.try_forward(student.clone(), &teacher, mask.clone(), Reduction::Mean)?;
//! let names: Vec<&str> = out.terms.iter().map(|(name, _)| *name).collect();
//! assert_eq!(names, ["akl", "fkl", "rkl", "akl_head_weight"]);
//!
//! // The same teacher cached as its top-8, mixed with cross-entropy on the labels.
//! let cached = TeacherTarget::from(teacher_top_k(teacher_logits, 8, 2.0));
//! let objective = KdObjectiveConfig::new(KdLossConfig::new(Divergence::ForwardKl).with_temperature(2.0))
//!     .with_alpha(0.5)
//!     .try_init()?;
//! let targets = Tensor::<3>::random([batch, seq, 1], Distribution::Uniform(0.0, vocab as f64), &device)
//!     .int()
//!     .reshape([batch, seq]);
//! let out = objective.try_forward(student.clone(), targets, mask, &cached, Reduction::Mean)?;
//! let grads = out.loss.backward();
//! assert!(student.grad(&grads).is_some());
//! # Ok(()) }
//! ```
//!
//! # Features
//! `ndarray` and `flex` (default) enable those CPU backends; `wgpu` and `cuda` those GPU
//! backends of Burn.
#![forbid(unsafe_code)]

mod checks;
mod chunker;
mod cross_entropy;
mod divergence;
mod dskd_cma;
mod error;
mod kd;
mod metrics;
mod mined;
mod mta;
mod numerics;
mod objective;
mod positions;
mod projector;
mod reduction;
mod spans;
mod sra;
mod teacher;
mod uld;
mod units;
mod vocab_map;

pub use chunker::{Chunker, EnglishChunker};
pub use cross_entropy::{masked_cross_entropy, try_masked_cross_entropy};
pub use divergence::Divergence;
pub use dskd_cma::{
    DskdCma, DskdCmaConfig, DskdCmaInput, DskdCmaOutput, DskdCmaSide, DSKD_CMA_MASK,
};
pub use error::DistillError;
pub use kd::{KdLoss, KdLossConfig, KdOutput};
pub use metrics::{top1_agreement, try_top1_agreement};
pub use mined::{
    MinEditAlignment, MinedInput, MinedLoss, MinedLossConfig, MinedOutput, UnalignedPositions,
};
pub use mta::{
    teacher_confidence, token_weights, MtaCrossInput, MtaInput, MtaLayerPair, MtaLoss,
    MtaLossConfig, MtaOutput, MtaPairOutput, MtaPerExample, MTA_EPS, MTA_NORM_EPS,
};
pub use objective::{KdObjective, KdObjectiveConfig, KdObjectiveOutput};
pub use projector::ProjectorInit;
pub use spans::{shared_spans, span_membership, AlignedSpan, SpanError, SpanSide};
pub use sra::{
    com_weights, SraInput, SraLayerPair, SraLoss, SraLossConfig, SraOutput, SRA_COS_EPS, SRA_EPS,
};
pub use teacher::{
    teacher_top_k, try_teacher_top_k, TeacherTarget, TopKTarget, TOP_K_NORMALIZATION_TOLERANCE,
};
pub use uld::{UldLoss, UldLossConfig, UldOutput};
pub use units::{
    filter_overlaps, membership_tensor, unit_membership, Granularity, Membership, Span, UnitError,
    Units,
};
pub use vocab_map::{
    fold_space_markers, strip_space_markers, vocabulary_from_token_map, VocabIntersection,
    BYTE_LEVEL_SPACE, SENTENCEPIECE_SPACE,
};
