//! What the teacher contributes: its full logits, or its top-k log-probabilities plus the exact
//! log-mass of the rest of the vocabulary (what a teacher cache stores).

use burn::tensor::{Int, Tensor};
use mrl_common::{log_softmax, log_softmax_select};

use crate::checks::{positive, ValueChecks};
use crate::error::{fmt_shape, DistillError};
use crate::numerics::logsumexp;

/// How far `logsumexp(log_probs, tail_log_mass)` may be from 0 (the top-k values plus the tail
/// must describe a distribution). Loose enough for log-probabilities stored in bf16.
pub const TOP_K_NORMALIZATION_TOLERANCE: f64 = 1e-2;

/// The teacher side of a distillation loss.
///
/// # Full logits
/// [`TeacherTarget::Full`]: `p = softmax(logits / τ)` over the whole vocabulary.
///
/// # Top-k
/// [`TeacherTarget::TopK`]: the teacher's `k` most likely tokens at each position with their
/// log-probabilities, and `log(1 − Σ_top-k p)` computed exactly (as the log-sum-exp of the other
/// tokens' log-probabilities). Both distributions are then **coarsened to `k + 1` outcomes** —
/// the `k` listed ids and one "rest" bucket — and the divergence is computed exactly on the
/// coarsened pair:
///
/// ```text
/// p̃ = (p_{id_1}, …, p_{id_k}, exp(tail_log_mass))
/// q̃ = (q_{id_1}, …, q_{id_k}, Σ_{v ∉ ids} q_v)       (a log-sum-exp over the non-listed tokens)
/// ```
///
/// Coarsening is a deterministic map applied to both sides, so by the data-processing
/// inequality every f-divergence (FKL, RKL, JS, TV, skewed KLs) on the coarsened pair is at most
/// its full-vocabulary value, with equality when `k = V − 1`. The teacher values are used **as
/// given**: they must already be the log-probabilities of the temperature-scaled teacher
/// (`softmax(teacher_logits / τ)` at the loss's `τ`, as [`teacher_top_k`] produces); only the
/// student logits are divided by `τ`. When `k = V` the rest bucket is empty and is left out.
///
/// A `tail_log_mass` of `−∞` means the teacher puts no mass outside its top-k: the forward terms
/// (`Σ p …`) give that outcome 0, but a reverse-KL term (`Σ q log(q/p)`, in RKL and AKL) is
/// then infinite, and those divergences report [`DistillError::InvalidTeacher`] instead.
///
/// Every position, counted by the mask or not, must hold valid values (gradients pass through
/// all positions before the mask zeroes them). The teacher never receives a gradient: its
/// values are detached.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // three tensor handles vs one, built once per batch
pub enum TeacherTarget {
    /// The teacher's logits, `[batch, seq, vocab]`, the student's vocabulary.
    Full {
        /// `[batch, seq, vocab]`.
        logits: Tensor<3>,
    },
    /// The teacher's top-k, see [`TopKTarget`].
    TopK(TopKTarget),
}

impl TeacherTarget {
    /// [`TeacherTarget::Full`].
    pub fn full(logits: Tensor<3>) -> Self {
        TeacherTarget::Full { logits }
    }

    /// [`TeacherTarget::TopK`] from its three tensors.
    pub fn top_k(ids: Tensor<3, Int>, log_probs: Tensor<3>, tail_log_mass: Tensor<2>) -> Self {
        TeacherTarget::TopK(TopKTarget {
            ids,
            log_probs,
            tail_log_mass,
        })
    }

    /// Checks the shapes against the student logits `[B, S, V]` (host-side, no device sync).
    pub(crate) fn check_shapes(&self, student: [usize; 3]) -> Result<(), DistillError> {
        let [batch, seq, vocab] = student;
        match self {
            TeacherTarget::Full { logits } => {
                let dims = logits.dims();
                if dims == student {
                    return Ok(());
                }
                let what = if dims[..2] != student[..2] {
                    "batch / seq"
                } else {
                    "vocabulary"
                };
                Err(DistillError::Shape {
                    arg: "teacher logits",
                    detail: format!(
                        "{what} mismatch: teacher logits {} vs student_logits {} (both must be \
                         [batch, seq, vocab] over the same vocabulary)",
                        fmt_shape(&dims),
                        fmt_shape(&student)
                    ),
                })
            }
            TeacherTarget::TopK(t) => {
                let [b, s, k] = t.ids.dims();
                if [b, s] != [batch, seq] {
                    return Err(DistillError::Shape {
                        arg: "teacher ids",
                        detail: format!(
                            "batch / seq mismatch: teacher ids {} vs student_logits {}",
                            fmt_shape(&t.ids.dims()),
                            fmt_shape(&student)
                        ),
                    });
                }
                if k == 0 || k > vocab {
                    return Err(DistillError::InvalidConfig {
                        field: "k",
                        value: k as f64,
                        reason: format!(
                            "teacher ids {} lists k = {k} tokens; k must lie in 1..={vocab} \
                             (the vocabulary of student_logits {})",
                            fmt_shape(&t.ids.dims()),
                            fmt_shape(&student)
                        ),
                    });
                }
                if t.log_probs.dims() != [b, s, k] {
                    return Err(DistillError::Shape {
                        arg: "teacher log_probs",
                        detail: format!(
                            "expected {} like teacher ids, got {}",
                            fmt_shape(&[b, s, k]),
                            fmt_shape(&t.log_probs.dims())
                        ),
                    });
                }
                if t.tail_log_mass.dims() != [b, s] {
                    return Err(DistillError::Shape {
                        arg: "teacher tail_log_mass",
                        detail: format!(
                            "expected [batch, seq] = {} (teacher ids {}), got {}",
                            fmt_shape(&[b, s]),
                            fmt_shape(&t.ids.dims()),
                            fmt_shape(&t.tail_log_mass.dims())
                        ),
                    });
                }
                Ok(())
            }
        }
    }

    /// Adds the value checks of the teacher (one device sync, with the others in `checks`).
    ///
    /// `needs_support`: the divergence has a reverse-KL term, so a `−∞` tail with `k < V` is an
    /// error.
    pub(crate) fn add_value_checks(
        &self,
        checks: &mut ValueChecks,
        vocab: usize,
        needs_support: bool,
        divergence_name: &'static str,
    ) {
        match self {
            TeacherTarget::Full { logits } => checks.finite("teacher logits", logits),
            TeacherTarget::TopK(t) => {
                t.add_value_checks(checks, vocab, needs_support, divergence_name)
            }
        }
    }

    /// The coarsened (or full) teacher and student log-probabilities as `[N, C]` rows
    /// (`N = B·S`), and whether the teacher side may hold `−∞`.
    pub(crate) fn log_prob_rows(
        &self,
        student_logits: Tensor<3>,
        temperature: f64,
    ) -> (Tensor<2>, Tensor<2>, bool) {
        let [batch, seq, vocab] = student_logits.dims();
        let n = batch * seq;
        match self {
            TeacherTarget::Full { logits } => {
                let log_q = log_softmax(student_logits.div_scalar(temperature), 2);
                let logits = logits.clone().detach().cast(log_q.dtype());
                let log_p = log_softmax(logits.div_scalar(temperature), 2);
                (log_p.reshape([n, vocab]), log_q.reshape([n, vocab]), false)
            }
            TeacherTarget::TopK(t) => {
                let k = t.k();
                // The student's log-probabilities at the teacher's ids and of the rest bucket,
                // without its full log-softmax; the rest bucket is empty on both sides when the
                // ids cover the vocabulary.
                let rest = k < vocab;
                let log_q = log_softmax_select(
                    student_logits.reshape([n, vocab]),
                    t.ids.clone().reshape([n, k]),
                    temperature.recip(),
                    rest,
                );
                let log_p_top = t
                    .log_probs
                    .clone()
                    .detach()
                    .cast(log_q.dtype())
                    .reshape([n, k]);
                if !rest {
                    return (log_p_top, log_q, false);
                }
                let log_p_rest = t
                    .tail_log_mass
                    .clone()
                    .detach()
                    .cast(log_q.dtype())
                    .reshape([n, 1]);
                (Tensor::cat(vec![log_p_top, log_p_rest], 1), log_q, true)
            }
        }
    }
}

impl From<TopKTarget> for TeacherTarget {
    fn from(t: TopKTarget) -> Self {
        TeacherTarget::TopK(t)
    }
}

/// The teacher's `k` most likely tokens at every position and the exact log-mass of the rest.
///
/// # Shapes
/// - `ids`: `[batch, seq, k]`, Int, distinct token ids in `0..vocab`
/// - `log_probs`: `[batch, seq, k]`, `log p_{ids}` of the temperature-scaled teacher, finite
/// - `tail_log_mass`: `[batch, seq]`, `log(1 − Σ_k p) = logsumexp_{v ∉ ids} log p_v`, finite or
///   `−∞`
///
/// `logsumexp(log_probs, tail_log_mass)` must be 0 within [`TOP_K_NORMALIZATION_TOLERANCE`]
/// (checked, so raw logits passed by mistake are reported). The ids need not be sorted.
#[derive(Debug, Clone)]
pub struct TopKTarget {
    /// `[batch, seq, k]` token ids.
    pub ids: Tensor<3, Int>,
    /// `[batch, seq, k]` log-probabilities of those tokens.
    pub log_probs: Tensor<3>,
    /// `[batch, seq]` log of the teacher mass outside the top-k.
    pub tail_log_mass: Tensor<2>,
}

impl TopKTarget {
    /// The number `k` of listed tokens per position.
    pub fn k(&self) -> usize {
        self.ids.dims()[2]
    }

    fn add_value_checks(
        &self,
        checks: &mut ValueChecks,
        vocab: usize,
        needs_support: bool,
        divergence_name: &'static str,
    ) {
        let [batch, seq, k] = self.ids.dims();
        checks.ids_in_range("teacher ids", &self.ids, vocab, None);
        let ids_shape = fmt_shape(&[batch, seq, k]);
        let duplicates = if k > 1 {
            let sorted = self.ids.clone().sort(2);
            sorted
                .clone()
                .narrow(2, 1, k - 1)
                .equal(sorted.narrow(2, 0, k - 1))
                .any()
                .float()
        } else {
            Tensor::<1>::zeros([1], &self.ids.device())
        };
        checks.add(vec![duplicates], move |v| {
            if v[0] > 0.0 {
                Err(DistillError::InvalidIds {
                    arg: "teacher ids",
                    shape: ids_shape,
                    reason: "a position lists the same token id twice; the top-k ids must be \
                             distinct"
                        .into(),
                })
            } else {
                Ok(())
            }
        });
        checks.finite("teacher log_probs", &self.log_probs);
        let tail = self.tail_log_mass.clone().detach();
        let tail_shape = fmt_shape(&tail.dims());
        let tail_bad = tail
            .clone()
            .is_nan()
            .bool_or(tail.clone().equal_elem(f64::INFINITY))
            .any()
            .float();
        let tail_zero = tail.clone().equal_elem(f64::NEG_INFINITY).float().sum();
        let total = logsumexp(
            Tensor::cat(
                vec![
                    self.log_probs.clone().detach(),
                    tail.cast(self.log_probs.dtype()).reshape([batch, seq, 1]),
                ],
                2,
            ),
            2,
        );
        let worst = total.abs().max();
        let lp_shape = fmt_shape(&[batch, seq, k]);
        checks.add(vec![tail_bad, worst, tail_zero], move |v| {
            if v[0] > 0.0 {
                return Err(DistillError::NonFinite {
                    arg: "teacher tail_log_mass",
                    shape: tail_shape,
                    detail: "; it must be finite or −∞ (no teacher mass outside the top-k)"
                        .into(),
                });
            }
            if v[1].is_nan() || v[1] > TOP_K_NORMALIZATION_TOLERANCE {
                return Err(DistillError::InvalidTeacher {
                    arg: "log_probs",
                    shape: lp_shape,
                    reason: format!(
                        "with tail_log_mass they must form a distribution, but \
                         |logsumexp(log_probs, tail_log_mass)| reaches {} (tolerance {}); pass \
                         log-probabilities of the temperature-scaled teacher, not logits",
                        v[1], TOP_K_NORMALIZATION_TOLERANCE
                    ),
                });
            }
            if needs_support && k < vocab && v[2] > 0.0 {
                return Err(DistillError::InvalidTeacher {
                    arg: "tail_log_mass",
                    shape: tail_shape,
                    reason: format!(
                        "it is −∞ (no teacher mass outside the top-k) at {} position(s), where \
                         the student's rest mass is > 0, so the reverse-KL term of `{divergence_name}` \
                         is infinite; use a larger k, a divergence without a reverse-KL term \
                         (fkl, js, tv, sfkl, srkl, skew_kl) or full teacher logits",
                        v[2]
                    ),
                });
            }
            Ok(())
        });
    }
}

/// The teacher's top-`k` at temperature `τ` from its full logits, for a teacher cache or
/// [`TeacherTarget::TopK`].
///
/// `log p = log_softmax(teacher_logits / τ)`; `ids`, `log_probs` = the `k` largest (descending);
/// `tail_log_mass = logsumexp_{v ∉ ids} log p_v` (exact, not `log(1 − Σ)`; `−∞` when `k = V`).
/// The result carries no gradient.
///
/// # Shapes
/// - `teacher_logits`: `[batch, seq, vocab]`
/// - output: ids, log_probs `[batch, seq, k]`, tail_log_mass `[batch, seq]`
///
/// # Panics
/// With the [`DistillError`] message of [`try_teacher_top_k`].
pub fn teacher_top_k(teacher_logits: Tensor<3>, k: usize, temperature: f64) -> TopKTarget {
    try_teacher_top_k(teacher_logits, k, temperature)
        .unwrap_or_else(|e| panic!("teacher_top_k: {e}"))
}

/// [`teacher_top_k`] returning an error on bad input.
///
/// # Errors
/// [`DistillError::InvalidConfig`] when `k ∉ 1..=vocab` or `τ` is not finite and positive,
/// [`DistillError::Shape`] for empty logits, [`DistillError::NonFinite`] for NaN / ±∞ logits.
pub fn try_teacher_top_k(
    teacher_logits: Tensor<3>,
    k: usize,
    temperature: f64,
) -> Result<TopKTarget, DistillError> {
    let dims = teacher_logits.dims();
    let [batch, seq, vocab] = dims;
    if dims.contains(&0) {
        return Err(DistillError::Shape {
            arg: "teacher_logits",
            detail: format!(
                "expected a non-empty [batch, seq, vocab], got {}",
                fmt_shape(&dims)
            ),
        });
    }
    if k == 0 || k > vocab {
        return Err(DistillError::InvalidConfig {
            field: "k",
            value: k as f64,
            reason: format!(
                "k must lie in 1..={vocab} (the vocabulary of teacher_logits {})",
                fmt_shape(&dims)
            ),
        });
    }
    positive("temperature", temperature)?;
    let mut checks = ValueChecks::new();
    checks.finite("teacher_logits", &teacher_logits);
    checks.run()?;

    // The k largest logits are the k largest log-probabilities (τ > 0); their log-probabilities
    // and the exact rest mass come from one pass over each row.
    let logits = teacher_logits.detach();
    let (_, ids) = logits.clone().topk_with_indices(k, 2);
    let rest = k < vocab;
    let rows = log_softmax_select(
        logits.reshape([batch * seq, vocab]),
        ids.clone().reshape([batch * seq, k]),
        temperature.recip(),
        rest,
    );
    let log_probs = rows.clone().narrow(1, 0, k).reshape([batch, seq, k]);
    let tail_log_mass = if rest {
        rows.narrow(1, k, 1).reshape([batch, seq])
    } else {
        Tensor::full(
            [batch, seq],
            f64::NEG_INFINITY,
            (&log_probs.device(), log_probs.dtype()),
        )
    };
    Ok(TopKTarget {
        ids,
        log_probs,
        tail_log_mass,
    })
}
