//! SRA — Span Representation Alignment (arXiv 2605.01205): cross-tokenizer distillation by
//! aligning the attention-weighted centres of mass of spans shared by the two tokenizations,
//! with a geometric regularizer on their cosine structure and a span-level logit distillation
//! over the vocabularies' exact-string intersection.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::nn::Linear;
use burn::tensor::{Bool, Int, Tensor};
use mrl_common::log_softmax;
use serde::{Deserialize, Serialize};

use crate::checks::ValueChecks;
use crate::error::{fmt_shape, DistillError};
use crate::projector::ProjectorInit;

/// The floor of a span's attention mass when dividing by it (its centre of mass).
pub const SRA_EPS: f64 = 1e-5;
/// The floor of each vector norm in SRA's cosines.
pub const SRA_COS_EPS: f64 = 1e-8;

/// One teacher / student layer pair aligned by SRA's centre-of-mass term.
///
/// Layers follow the Hugging Face `hidden_states` convention: 0 = embeddings, `n_layers` = after
/// the final norm (the default pair is the teacher's last with the student's last).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SraLayerPair {
    /// Index of the teacher hidden state.
    pub teacher_layer: usize,
    /// Index of the student hidden state.
    pub student_layer: usize,
    /// Its weight `w_l` in the centre-of-mass term (the weights are normalised to sum to 1).
    #[serde(default = "unit_weight")]
    pub weight: f64,
}

fn unit_weight() -> f64 {
    1.0
}

impl SraLayerPair {
    /// The pair `(teacher_layer, student_layer)` with weight 1.
    pub fn new(teacher_layer: usize, student_layer: usize) -> Self {
        Self {
            teacher_layer,
            student_layer,
            weight: 1.0,
        }
    }
}

/// Configuration of [`SraLoss`].
#[derive(Config, Debug)]
pub struct SraLossConfig {
    /// The aligned layer pairs; the geometric and logit terms use the last one.
    pub pairs: Vec<SraLayerPair>,
    /// Width `d_S` of the student hidden states.
    pub student_width: usize,
    /// Width `d_T` of the teacher hidden states.
    pub teacher_width: usize,
    /// Weight `γ` of the geometric regularizer. Default 50 (the authors').
    #[config(default = 50.0)]
    pub geo_weight: f64,
    /// Temperature `τ` of the span logit distillation. Default 2.
    #[config(default = 2.0)]
    pub temperature: f64,
    /// How the projectors start. Default [`ProjectorInit::Random`].
    #[config(default = "ProjectorInit::Random")]
    pub projector_init: ProjectorInit,
}

impl SraLossConfig {
    /// Builds the loss and its projectors on `device`.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`SraLossConfig::try_init`].
    pub fn init(&self, device: &burn::tensor::Device) -> SraLoss {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("SraLossConfig: {e}"))
    }

    /// Builds the loss and its projectors on `device`, or reports an invalid configuration.
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] when there is no pair, a width is 0, a pair weight is not
    /// finite and > 0, `γ` is negative or not finite, `τ` is not finite and > 0, or the
    /// identity projector is asked for with `d_S ≠ d_T`.
    pub fn try_init(&self, device: &burn::tensor::Device) -> Result<SraLoss, DistillError> {
        self.validate()?;
        let total: f64 = self.pairs.iter().map(|p| p.weight).sum();
        Ok(SraLoss {
            projectors: self
                .pairs
                .iter()
                .map(|_| {
                    self.projector_init
                        .init(self.student_width, self.teacher_width, device)
                })
                .collect(),
            pairs: self.pairs.clone(),
            pair_weights: self.pairs.iter().map(|p| p.weight / total).collect(),
            geo_weight: self.geo_weight,
            temperature: self.temperature,
        })
    }

    /// Checks the configuration without building anything.
    ///
    /// # Errors
    /// As [`SraLossConfig::try_init`].
    pub fn validate(&self) -> Result<(), DistillError> {
        let invalid = |field, value: f64, reason: &str| DistillError::InvalidConfig {
            field,
            value,
            reason: reason.into(),
        };
        if self.pairs.is_empty() {
            return Err(invalid("pairs", 0.0, "SRA needs at least one layer pair"));
        }
        self.projector_init
            .check_widths(self.student_width, self.teacher_width)?;
        for p in &self.pairs {
            if !(p.weight.is_finite() && p.weight > 0.0) {
                return Err(invalid(
                    "pairs.weight",
                    p.weight,
                    &format!(
                        "the weight of pair (teacher {}, student {}) must be finite and > 0",
                        p.teacher_layer, p.student_layer
                    ),
                ));
            }
        }
        if !(self.geo_weight.is_finite() && self.geo_weight >= 0.0) {
            return Err(invalid(
                "geo_weight",
                self.geo_weight,
                "it must be finite and ≥ 0",
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(invalid(
                "temperature",
                self.temperature,
                "it must be finite and > 0",
            ));
        }
        Ok(())
    }
}

/// The inputs of [`SraLoss`] for one batch. Each model has its own sequence (its own
/// tokenizer); the spans tie them.
///
/// # Shapes
/// - `teacher_hidden[l]`: `[batch, seq_T, d_T]`, every teacher hidden state (0 = embeddings);
///   only the pairs' layers are read; the teacher receives no gradient.
/// - `student_hidden[l]`: `[batch, seq_S, d_S]`, every student hidden state.
/// - `teacher_weights[p]`, `student_weights[p]`: `[batch, seq_T]` / `[batch, seq_S]`, the
///   centre-of-mass weights `a_j` of pair `p` (from [`com_weights`]: ≥ 0, 0 at padding);
///   detached by the loss.
/// - `teacher_spans`, `student_spans`: `[batch, spans, seq_T]` / `[batch, spans, seq_S]` 0/1
///   (1 = token `j` is in span `k`), e.g. from [`span_membership`](crate::span_membership) and
///   [`membership_tensor`](crate::membership_tensor); row `k` of both is the same span — a row
///   of zeros on one side must be a row of zeros on the other (padding).
/// - `teacher_head`, `student_head`: `[V∩, d_T]` / `[V∩, d_S]`, the rows of each model's output
///   embedding for the shared vocabulary, in the same order (the caller selects them, e.g.
///   with a vocabulary intersection); the student's receives gradient, the teacher's not.
#[derive(Debug, Clone)]
pub struct SraInput {
    /// Every teacher hidden state.
    pub teacher_hidden: Vec<Tensor<3>>,
    /// Every student hidden state.
    pub student_hidden: Vec<Tensor<3>>,
    /// The teacher's centre-of-mass weights, one `[batch, seq_T]` per pair.
    pub teacher_weights: Vec<Tensor<2>>,
    /// The student's centre-of-mass weights, one `[batch, seq_S]` per pair.
    pub student_weights: Vec<Tensor<2>>,
    /// The teacher's span memberships.
    pub teacher_spans: Tensor<3>,
    /// The student's span memberships.
    pub student_spans: Tensor<3>,
    /// The teacher's head rows over the shared vocabulary.
    pub teacher_head: Tensor<2>,
    /// The student's head rows over the shared vocabulary.
    pub student_head: Tensor<2>,
}

/// Span Representation Alignment (arXiv 2605.01205), between a teacher and a student whose
/// tokenizers differ.
///
/// Per example `b`, with spans `k` shared by the two tokenizations (see
/// [`shared_spans`](crate::shared_spans)), and per layer pair `l` with states `h^T`, `h^S` and
/// centre-of-mass weights `a^T`, `a^S` (no gradient):
///
/// ```text
/// m_k = Σ_{j∈k} a_j,   c_k = Σ_{j∈k} a_j h_j / max(m_k, 1e-5)           (each model on its own tokens)
/// β_k = m^T_k / Σ_k m^T_k                                                 (teacher masses)
/// cos(x, y) = x·y / (max(‖x‖, 1e-8) · max(‖y‖, 1e-8))
/// COM_b   = Σ_l w_l Σ_k β_k (1 − cos(P_l c^S_k, c^T_k))                   (P_l = Linear(d_S → d_T), Σ_l w_l = 1)
/// GEO_b   = γ Σ_{k≠k'} π_kk' (cos(c^S_k, c^S_k') − cos(c^T_k, c^T_k'))²   (last pair, π_kk' = β_k β_k' / Σ_{k≠k'} β_k β_k';
///                                                                          0 with fewer than 2 spans)
/// LOGIT_b = Σ_k KL(softmax(z^T_k / τ) ‖ softmax(z^S_k / τ)),  z_k = E∩ c_k  (last pair, no τ²)
/// COM = mean_b COM_b, GEO = mean_b GEO_b, LOGIT = mean_b LOGIT_b,  L_SRA = COM + GEO + LOGIT
/// ```
///
/// The geometric term compares the student's unprojected CoMs; `E∩` are the heads' rows over
/// the exact-string vocabulary intersection, applied to the CoMs as they are (no re-norm).
/// The training objective is `α·CE + (1 − α)·L_SRA` (α = 0.5 in the paper).
///
/// The module holds one projector per pair: train them in their own parameter group (the
/// authors' lr 5e-4, no weight decay).
#[derive(Module, Debug)]
pub struct SraLoss {
    /// `Linear(d_S → d_T)`, one per pair.
    pub projectors: Vec<Linear>,
    /// The aligned pairs.
    #[module(skip)]
    pub pairs: Vec<SraLayerPair>,
    /// The pairs' weights `w_l`, normalised to sum to 1.
    #[module(skip)]
    pub pair_weights: Vec<f64>,
    /// `γ`.
    pub geo_weight: f64,
    /// `τ` of the span logit distillation.
    pub temperature: f64,
}

/// SRA's terms: `[1]` each from [`SraLoss::forward`], `[batch]` each (per example) from
/// [`SraLoss::forward_no_reduction`].
#[derive(Debug, Clone)]
pub struct SraOutput {
    /// `COM + GEO + LOGIT`.
    pub loss: Tensor<1>,
    /// The centre-of-mass alignment.
    pub com: Tensor<1>,
    /// The geometric regularizer (with `γ`).
    pub geo: Tensor<1>,
    /// The span logit distillation.
    pub logit: Tensor<1>,
    /// The number of spans (summed over the batch when reduced).
    pub spans: Tensor<1>,
}

impl SraOutput {
    /// Named terms, `[1]` each: `sra`, `com`, `geo`, `logit`.
    pub fn terms(&self) -> Vec<(&'static str, Tensor<1>)> {
        vec![
            ("sra", self.loss.clone()),
            ("com", self.com.clone()),
            ("geo", self.geo.clone()),
            ("logit", self.logit.clone()),
        ]
    }
}

impl SraLoss {
    /// The reduced loss and its breakdown: `Reduction::Mean`, `Auto` and `BatchMean` give the
    /// mean over the examples (the paper's division by the batch size), `Sum` the sum.
    ///
    /// # Shapes
    /// See [`SraInput`]; output `[1]` each.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`SraLoss::try_forward`].
    pub fn forward(&self, input: SraInput, reduction: Reduction) -> SraOutput {
        self.try_forward(input, reduction)
            .unwrap_or_else(|e| panic!("SraLoss: {e}"))
    }

    /// [`SraLoss::forward`], or the reason the inputs are invalid.
    ///
    /// # Errors
    /// [`DistillError::Shape`] for a pair layer past the hidden states given, a missing pair's
    /// weights, or mismatched shapes or widths; [`DistillError::NonFinite`] for NaN / ±∞
    /// states, weights or heads; [`DistillError::InvalidMask`] for non-0/1 spans, a span present
    /// on one side only, or negative weights.
    pub fn try_forward(
        &self,
        input: SraInput,
        reduction: Reduction,
    ) -> Result<SraOutput, DistillError> {
        let per = self.try_forward_no_reduction(input)?;
        let batch = per.loss.dims()[0] as f64;
        let reduce = |t: Tensor<1>| match reduction {
            Reduction::Sum => t.sum(),
            Reduction::Mean | Reduction::Auto | Reduction::BatchMean => t.sum().div_scalar(batch),
        };
        Ok(SraOutput {
            loss: reduce(per.loss),
            com: reduce(per.com),
            geo: reduce(per.geo),
            logit: reduce(per.logit),
            spans: per.spans.sum(),
        })
    }

    /// The per-example values.
    ///
    /// # Shapes
    /// See [`SraInput`]; output `[batch]` each.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`SraLoss::try_forward`].
    pub fn forward_no_reduction(&self, input: SraInput) -> SraOutput {
        self.try_forward_no_reduction(input)
            .unwrap_or_else(|e| panic!("SraLoss: {e}"))
    }

    /// [`SraLoss::forward_no_reduction`], or the reason the inputs are invalid (the errors of
    /// [`SraLoss::try_forward`]).
    pub fn try_forward_no_reduction(&self, input: SraInput) -> Result<SraOutput, DistillError> {
        self.check(&input)?;
        let spans_t = input.teacher_spans.detach();
        let spans_s = input.student_spans.detach();
        let batch = spans_t.dims()[0];
        let mut com: Option<Tensor<1>> = None;
        let mut last = None;
        for (p, (pair, projector)) in self.pairs.iter().zip(&self.projectors).enumerate() {
            let h_t = input.teacher_hidden[pair.teacher_layer].clone().detach();
            let h_s = input.student_hidden[pair.student_layer].clone();
            let (mass_t, c_t) = centres(spans_t.clone(), input.teacher_weights[p].clone(), h_t);
            let (_, c_s) = centres(spans_s.clone(), input.student_weights[p].clone(), h_s);
            let beta = salience(mass_t); // [B, K]
            let cos = cosine(projector.forward(c_s.clone()), c_t.clone()); // [B, K]
            let term = (beta.clone() * cos.neg().add_scalar(1.0))
                .sum_dim(1)
                .reshape([batch])
                .mul_scalar(self.pair_weights[p]);
            com = Some(match com {
                None => term,
                Some(sum) => sum + term,
            });
            last = Some((beta, c_t, c_s));
        }
        let com = com.expect("at least one pair");
        let (beta, c_t, c_s) = last.expect("at least one pair");
        let geo = self.geometric(beta, c_t.clone(), c_s.clone());
        let dtype = spans_t.dtype();
        let present = spans_t
            .sum_dim(2)
            .squeeze_dim::<2>(2)
            .greater_elem(0.0)
            .float()
            .cast(dtype); // [B, K]
        let logit = self.span_logits(
            c_t,
            c_s,
            input.teacher_head.detach(),
            input.student_head,
            present.clone(),
        );
        let spans = present.sum_dim(1).reshape([batch]);
        Ok(SraOutput {
            loss: com.clone() + geo.clone() + logit.clone(),
            com,
            geo,
            logit,
            spans,
        })
    }

    /// `GEO_b`, `[B]`.
    fn geometric(&self, beta: Tensor<2>, c_t: Tensor<3>, c_s: Tensor<3>) -> Tensor<1> {
        let [batch, spans, _] = c_t.dims();
        let device = c_t.device();
        let off_diagonal = Tensor::<2, Bool>::diag_mask([spans, spans], 0, &device)
            .float()
            .cast(c_t.dtype())
            .unsqueeze_dim::<3>(0);
        let pi = beta.clone().unsqueeze_dim::<3>(2) * beta.unsqueeze_dim::<3>(1) * off_diagonal; // [B, K, K]
        let total = pi.clone().sum_dims_squeeze::<1, _>(&[1, 2]); // [B]
                                                                  // Fewer than 2 spans: Σ π = 0, and the example contributes 0 (no floor on real sums).
        let total = total.clone().mask_fill(total.equal_elem(0.0), 1.0);
        let gram = |c: Tensor<3>| {
            let unit = c.clone() / floored_norm(c, SRA_COS_EPS);
            unit.clone().matmul(unit.swap_dims(1, 2))
        };
        let diff = gram(c_s) - gram(c_t);
        (pi * diff.powi_scalar(2))
            .sum_dims_squeeze::<1, _>(&[1, 2])
            .div(total)
            .mul_scalar(self.geo_weight)
            .reshape([batch])
    }

    /// `LOGIT_b`, `[B]`.
    fn span_logits(
        &self,
        c_t: Tensor<3>,
        c_s: Tensor<3>,
        teacher_head: Tensor<2>,
        student_head: Tensor<2>,
        present: Tensor<2>,
    ) -> Tensor<1> {
        let batch = c_t.dims()[0];
        let logits = |c: Tensor<3>, head: Tensor<2>| {
            c.matmul(head.transpose().unsqueeze_dim::<3>(0))
                .div_scalar(self.temperature)
        };
        let log_p = log_softmax(logits(c_t, teacher_head), 2);
        let log_q = log_softmax(logits(c_s, student_head), 2);
        let kl = (log_p.clone().exp() * (log_p - log_q))
            .sum_dim(2)
            .squeeze_dim::<2>(2); // [B, K]
        (kl * present).sum_dim(1).reshape([batch])
    }

    fn check(&self, input: &SraInput) -> Result<(), DistillError> {
        let [batch, spans, seq_t] = input.teacher_spans.dims();
        let [batch_s, spans_s, seq_s] = input.student_spans.dims();
        if batch == 0 || spans == 0 || seq_t == 0 || seq_s == 0 {
            return Err(DistillError::Shape {
                arg: "teacher_spans",
                detail: format!(
                    "expected non-empty [batch, spans, seq] on both sides, got teacher {} and \
                     student {}",
                    fmt_shape(&input.teacher_spans.dims()),
                    fmt_shape(&input.student_spans.dims())
                ),
            });
        }
        if batch_s != batch || spans_s != spans {
            return Err(DistillError::Shape {
                arg: "student_spans",
                detail: format!(
                    "expected [batch, spans, seq_S] = [{batch}, {spans}, seq_S] (the teacher's \
                     batch and span rows), got {}",
                    fmt_shape(&input.student_spans.dims())
                ),
            });
        }
        let d_s = self.projectors[0].weight.dims()[0];
        let d_t = self.projectors[0].weight.dims()[1];
        let mut checks = ValueChecks::new();
        for (side, states, seq, width) in [
            ("teacher_hidden", &input.teacher_hidden, seq_t, d_t),
            ("student_hidden", &input.student_hidden, seq_s, d_s),
        ] {
            let mut seen = Vec::new();
            for pair in &self.pairs {
                let layer = if side == "teacher_hidden" {
                    pair.teacher_layer
                } else {
                    pair.student_layer
                };
                let Some(state) = states.get(layer) else {
                    return Err(DistillError::Shape {
                        arg: side,
                        detail: format!(
                            "the pair (teacher {}, student {}) reads layer {layer}, but only {} \
                             hidden states were given",
                            pair.teacher_layer,
                            pair.student_layer,
                            states.len()
                        ),
                    });
                };
                if state.dims() != [batch, seq, width] {
                    return Err(DistillError::Shape {
                        arg: side,
                        detail: format!(
                            "layer {layer}: expected [batch, seq, width] = {}, got {}",
                            fmt_shape(&[batch, seq, width]),
                            fmt_shape(&state.dims())
                        ),
                    });
                }
                if !seen.contains(&layer) {
                    seen.push(layer);
                    checks.finite(side, state);
                }
            }
        }
        for (side, weights, seq) in [
            ("teacher_weights", &input.teacher_weights, seq_t),
            ("student_weights", &input.student_weights, seq_s),
        ] {
            if weights.len() != self.pairs.len() {
                return Err(DistillError::Shape {
                    arg: side,
                    detail: format!(
                        "expected one [batch, seq] tensor per layer pair ({}), got {}",
                        self.pairs.len(),
                        weights.len()
                    ),
                });
            }
            for w in weights {
                if w.dims() != [batch, seq] {
                    return Err(DistillError::Shape {
                        arg: side,
                        detail: format!(
                            "expected [batch, seq] = {}, got {}",
                            fmt_shape(&[batch, seq]),
                            fmt_shape(&w.dims())
                        ),
                    });
                }
                checks.finite(side, w);
                let shape = fmt_shape(&w.dims());
                let negative = w.clone().detach().lower_elem(0.0).any().float();
                checks.add(vec![negative], move |v| {
                    if v[0] > 0.0 {
                        Err(DistillError::InvalidMask {
                            shape,
                            reason: format!("`{side}` holds a negative weight"),
                        })
                    } else {
                        Ok(())
                    }
                });
            }
        }
        for (side, head, width) in [
            ("teacher_head", &input.teacher_head, d_t),
            ("student_head", &input.student_head, d_s),
        ] {
            let [vocab, w] = head.dims();
            if vocab == 0 || w != width || vocab != input.teacher_head.dims()[0] {
                return Err(DistillError::Shape {
                    arg: side,
                    detail: format!(
                        "expected [V∩, {width}] with the same V∩ on both sides, got teacher {} \
                         and student {}",
                        fmt_shape(&input.teacher_head.dims()),
                        fmt_shape(&input.student_head.dims())
                    ),
                });
            }
            checks.finite(side, head);
        }
        let binary = |t: &Tensor<3>| {
            let t = t.clone().detach();
            t.clone()
                .equal_elem(0.0)
                .bool_or(t.equal_elem(1.0))
                .bool_not()
                .any()
                .float()
        };
        let present = |t: &Tensor<3>| {
            t.clone()
                .detach()
                .sum_dim(2)
                .greater_elem(0.0)
                .int()
                .reshape([batch, spans])
        };
        let one_sided: Tensor<1> = present(&input.teacher_spans)
            .not_equal(present(&input.student_spans))
            .any()
            .float();
        let shape = format!(
            "{} / {}",
            fmt_shape(&input.teacher_spans.dims()),
            fmt_shape(&input.student_spans.dims())
        );
        checks.add(
            vec![
                binary(&input.teacher_spans),
                binary(&input.student_spans),
                one_sided,
            ],
            move |v| {
                if v[0] > 0.0 || v[1] > 0.0 {
                    Err(DistillError::InvalidMask {
                        shape,
                        reason: "span memberships must hold only 0 and 1".into(),
                    })
                } else if v[2] > 0.0 {
                    Err(DistillError::InvalidMask {
                        shape,
                        reason: "a span row has tokens on one side and none on the other: row \
                                 k of `teacher_spans` and `student_spans` must be the same span"
                            .into(),
                    })
                } else {
                    Ok(())
                }
            },
        );
        checks.run().map(|_| ())
    }
}

/// Masses `[B, K]` and centres of mass `[B, K, D]` of the spans.
fn centres(spans: Tensor<3>, weights: Tensor<2>, hidden: Tensor<3>) -> (Tensor<2>, Tensor<3>) {
    let weighted = spans * weights.detach().unsqueeze_dim::<3>(1); // [B, K, L]
    let mass = weighted.clone().sum_dim(2); // [B, K, 1]
    let centres = weighted.matmul(hidden) / mass.clone().clamp_min(SRA_EPS);
    (mass.squeeze_dim::<2>(2), centres)
}

/// `β_k = m_k / Σ_k m_k` per example (all 0 for an example without spans).
fn salience(mass: Tensor<2>) -> Tensor<2> {
    let total = mass.clone().sum_dim(1);
    let total = total.clone().mask_fill(total.equal_elem(0.0), 1.0);
    mass / total
}

/// Row-wise cosine over the last dim, `[B, K]`, each norm floored at [`SRA_COS_EPS`].
fn cosine(x: Tensor<3>, y: Tensor<3>) -> Tensor<2> {
    let x = x.clone() / floored_norm(x, SRA_COS_EPS);
    let y = y.clone() / floored_norm(y, SRA_COS_EPS);
    (x * y).sum_dim(2).squeeze_dim::<2>(2)
}

/// `max(‖x‖, floor)` over the last dim, `[B, N, 1]`, as `√max(‖x‖², floor²)` (a zero vector —
/// a padding span — then has a zero gradient instead of NaN).
fn floored_norm(x: Tensor<3>, floor: f64) -> Tensor<3> {
    x.powi_scalar(2).sum_dim(2).clamp_min(floor * floor).sqrt()
}

/// SRA's centre-of-mass weights from one layer's attention probabilities, detached: the
/// attention each token receives from the **last real** query row (the example's last position
/// with `attention_mask = 1`, its EOS unless truncated; the row includes the query's attention
/// to itself), summed over heads, normalised over the real keys.
///
/// ```text
/// a_j = mask_j Σ_h A[h, q, j] / Σ_{j'} mask_j' Σ_h A[h, q, j'],   q = last real position
/// ```
///
/// Use the attention of the decoder layer that produces the aligned hidden state (layer `l`
/// for hidden state `l`; the last layer for the state after the final norm).
///
/// # Shapes
/// - `attention`: `[batch, heads, seq, seq]` (query rows, key columns)
/// - `attention_mask`: `[batch, seq]`, 1 = real token, at least one per example
/// - output: `[batch, seq]`
///
/// # Panics
/// If the shapes disagree.
pub fn com_weights(attention: Tensor<4>, attention_mask: Tensor<2>) -> Tensor<2> {
    let [batch, heads, seq, keys] = attention.dims();
    assert_eq!(
        attention_mask.dims(),
        [batch, seq],
        "com_weights: `attention_mask` {} must be [batch, seq] of `attention` {}",
        fmt_shape(&attention_mask.dims()),
        fmt_shape(&attention.dims())
    );
    assert_eq!(
        seq,
        keys,
        "com_weights: `attention` {} must be [batch, heads, seq, seq]",
        fmt_shape(&attention.dims())
    );
    let device = attention.device();
    let mask = attention_mask.detach();
    let positions = Tensor::<1, Int>::arange(0..seq as i64, &device)
        .float()
        .cast(mask.dtype())
        .add_scalar(1.0)
        .unsqueeze_dim::<2>(0);
    let last = (mask.clone() * positions).argmax(1); // [B, 1]
    let index = last
        .reshape([batch, 1, 1, 1])
        .expand([batch, heads, 1, seq]);
    let row = attention
        .detach()
        .gather(2, index)
        .sum_dim(1)
        .reshape([batch, seq])
        * mask;
    let total = row.clone().sum_dim(1);
    row / total
}
