//! MTA — Multi-Granular Trajectory Alignment (arXiv 2605.01374): Dynamic Structural Alignment
//! (DSA) and Hidden Representation Alignment (HRA) of teacher and student hidden states pooled
//! over semantic units (words in lower layers, phrases in higher ones), over a layer schedule.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};
use mrl_common::log_softmax;
use serde::{Deserialize, Serialize};

use crate::checks::ValueChecks;
use crate::error::{fmt_shape, DistillError};
use crate::projector::ProjectorInit;
use crate::units::Granularity;

/// The floor of the weight sums (renormalisation, unit mass, DSA and HRA denominators) and of
/// the projected / teacher state norms in HRA, as in the authors' code.
pub const MTA_EPS: f64 = 1e-5;
/// The floor of the unit-vector norms before the cosine Gram matrices.
pub const MTA_NORM_EPS: f64 = 1e-12;

/// One teacher / student layer pair of the MTA schedule, with the units it aligns.
///
/// Layers follow the Hugging Face `hidden_states` convention: 0 = embeddings, `n_layers` = after
/// the final norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MtaLayerPair {
    /// Index of the teacher hidden state.
    pub teacher_layer: usize,
    /// Index of the student hidden state.
    pub student_layer: usize,
    /// Word or phrase units.
    pub granularity: Granularity,
}

impl MtaLayerPair {
    /// A pair aligning `teacher_layer` with `student_layer` over `granularity` units.
    pub fn new(teacher_layer: usize, student_layer: usize, granularity: Granularity) -> Self {
        Self {
            teacher_layer,
            student_layer,
            granularity,
        }
    }
}

/// Configuration of [`MtaLoss`].
#[derive(Config, Debug)]
pub struct MtaLossConfig {
    /// The layer schedule: one [`MtaLayerPair`] per aligned pair (the authors' first pairs use
    /// word units, the rest phrase units).
    pub pairs: Vec<MtaLayerPair>,
    /// Width `d_S` of the student hidden states.
    pub student_width: usize,
    /// Width `d_T` of the teacher hidden states.
    pub teacher_width: usize,
    /// Weight of DSA in each pair's loss. Default `1`; `0` for the HRA-only ablation.
    #[config(default = 1.0)]
    pub dsa_weight: f64,
    /// Weight of HRA in each pair's loss. Default `0.1` (the paper's `HRA / 10`); `0` for the
    /// DSA-only ablation.
    #[config(default = 0.1)]
    pub hra_weight: f64,
    /// Replace the teacher's attention-derived token weights by its confidence
    /// `1 − H(p_T,j) / ln V` (in the unit masses `ω` and in HRA). Default `false`.
    #[config(default = false)]
    pub entropy_weighting: bool,
    /// How the projectors start. Default [`ProjectorInit::Random`].
    #[config(default = "ProjectorInit::Random")]
    pub projector_init: ProjectorInit,
}

impl MtaLossConfig {
    /// Builds the loss and its projectors on `device`.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`MtaLossConfig::try_init`].
    pub fn init(&self, device: &Device) -> MtaLoss {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("MtaLossConfig: {e}"))
    }

    /// Builds the loss and its projectors on `device`, or reports an invalid configuration.
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] when the schedule is empty, a width is 0, a weight is
    /// negative or not finite, both weights are 0, or the identity projector is asked for with
    /// `d_S ≠ d_T`.
    pub fn try_init(&self, device: &Device) -> Result<MtaLoss, DistillError> {
        self.validate()?;
        let projectors = self
            .pairs
            .iter()
            .map(|_| {
                self.projector_init
                    .init(self.student_width, self.teacher_width, device)
            })
            .collect();
        Ok(MtaLoss {
            projectors,
            pairs: self.pairs.clone(),
            dsa_weight: self.dsa_weight,
            hra_weight: self.hra_weight,
            entropy_weighting: self.entropy_weighting,
        })
    }

    /// Checks the configuration without building anything (what [`MtaLossConfig::try_init`]
    /// checks first).
    ///
    /// # Errors
    /// As [`MtaLossConfig::try_init`].
    pub fn validate(&self) -> Result<(), DistillError> {
        let invalid = |field, value: f64, reason: &str| DistillError::InvalidConfig {
            field,
            value,
            reason: reason.into(),
        };
        if self.pairs.is_empty() {
            return Err(invalid(
                "pairs",
                0.0,
                "the MTA schedule needs at least one layer pair",
            ));
        }
        self.projector_init
            .check_widths(self.student_width, self.teacher_width)?;
        for (field, value) in [
            ("dsa_weight", self.dsa_weight),
            ("hra_weight", self.hra_weight),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(field, value, "it must be finite and ≥ 0"));
            }
        }
        if self.dsa_weight == 0.0 && self.hra_weight == 0.0 {
            return Err(invalid(
                "hra_weight",
                0.0,
                "`dsa_weight` and `hra_weight` are both 0: the loss would be constant",
            ));
        }
        Ok(())
    }
}

/// The inputs of [`MtaLoss`] for one batch.
///
/// # Shapes
/// - `teacher_hidden[l]`: `[batch, seq, d_T]`, every teacher hidden state (index 0 =
///   embeddings); only the schedule's layers are read. The teacher receives no gradient.
/// - `student_hidden[l]`: `[batch, seq, d_S]`, every student hidden state.
/// - `attention_mask`: `[batch, seq]`, 1 = real token (prompt and response), 0 = padding; at
///   least 2 real tokens per example.
/// - `words`, `phrases`: `[batch, units, seq]` 0/1 memberships (1 = token `j` is in unit `u`,
///   only on real tokens), e.g. from [`membership_tensor`](crate::membership_tensor); a unit
///   row of zeros is padding.
/// - `teacher_confidence`: `[batch, seq]`, `1 − H(p_T,j)/ln V` from [`teacher_confidence`];
///   required iff the loss uses entropy weighting.
#[derive(Debug, Clone)]
pub struct MtaInput {
    /// Every teacher hidden state.
    pub teacher_hidden: Vec<Tensor<3>>,
    /// Every student hidden state.
    pub student_hidden: Vec<Tensor<3>>,
    /// Real-token mask.
    pub attention_mask: Tensor<2>,
    /// Word-unit memberships.
    pub words: Tensor<3>,
    /// Phrase-unit memberships.
    pub phrases: Tensor<3>,
    /// The teacher's per-token confidence, for entropy weighting.
    pub teacher_confidence: Option<Tensor<2>>,
}

/// The inputs of MTA's cross-tokenizer variant ([`MtaLoss::forward_cross`]) for one batch: each
/// model has its own sequence (its own tokenizer) and its own memberships of the same units.
///
/// # Shapes
/// - `teacher_hidden[l]`: `[batch, seq_T, d_T]`; `student_hidden[l]`: `[batch, seq_S, d_S]`
/// - `teacher_mask`, `student_mask`: `[batch, seq_T]` / `[batch, seq_S]`, 1 = real token, at
///   least 2 per example
/// - `teacher_words`, `teacher_phrases`: `[batch, units, seq_T]`; `student_words`,
///   `student_phrases`: `[batch, units, seq_S]` — row `u` of a granularity is the same unit on
///   both sides (a row of zeros on one side must be a row of zeros on the other)
#[derive(Debug, Clone)]
pub struct MtaCrossInput {
    /// Every teacher hidden state.
    pub teacher_hidden: Vec<Tensor<3>>,
    /// Every student hidden state.
    pub student_hidden: Vec<Tensor<3>>,
    /// The teacher's real-token mask.
    pub teacher_mask: Tensor<2>,
    /// The student's real-token mask.
    pub student_mask: Tensor<2>,
    /// Word units over the teacher's tokens.
    pub teacher_words: Tensor<3>,
    /// Phrase units over the teacher's tokens.
    pub teacher_phrases: Tensor<3>,
    /// Word units over the student's tokens.
    pub student_words: Tensor<3>,
    /// Phrase units over the student's tokens.
    pub student_phrases: Tensor<3>,
}

/// Multi-Granular Trajectory Alignment (Yu et al., arXiv 2605.01374, ACL 2026), for a teacher
/// and a student sharing one tokenizer ([`MtaLoss::forward`]) or not
/// ([`MtaLoss::forward_cross`]).
///
/// For a layer pair `(t, s)` with hidden states `h^T = H^T_t`, `h^S = H^S_s`, and per example
/// `b` with its memberships `M_b` (pairs `(j, u)`, token `j` in unit `u`):
///
/// ```text
/// w^T = token_weights(h^T), w^S = token_weights(h^S)        (no gradient; or w^T = confidence)
/// ŵ_j = w_j / max(Σ_{(j,u)∈M_b} w_j, ε)                      (per example, ε = 1e-5)
/// ω_u = Σ_{j∈u} ŵ^T_j,   T_u = Σ_{j∈u} ŵ^T_j h^T_j / max(ω_u, ε),   ν_u, S_u likewise
/// G^T_uv = cos(T_u, T_v), G^S_uv = cos(S_u, S_v)             (norms floored at 1e-12)
/// DSA = Σ_b Σ_{u≠v} ω_u ω_v (G^S_uv − G^T_uv)² / max(Σ_b Σ_{u≠v} ω_u ω_v, ε)
/// cos_j = cos(W h^S_j, h^T_j)                                (norms floored at ε; W = Linear(d_S → d_T))
/// HRA = Σ_b Σ_{(j,u)∈M_b} ŵ^T_j (1 − cos_j) / max(Σ_b Σ_{(j,u)∈M_b} ŵ^T_j, ε)
/// L_pair = dsa_weight · DSA + hra_weight · HRA               (defaults 1 and 0.1)
/// L_MTA = mean over the schedule's pairs of L_pair
/// ```
///
/// [`token_weights`] gives the token weights; the pairs' `granularity` picks `words` or
/// `phrases`. A token in two units counts once per membership. The per-example values
/// ([`MtaLoss::forward_no_reduction`]) are the same ratios with each example's own sums (0 for
/// an example with fewer than 2 units in DSA, or with no unit in HRA).
///
/// **Cross-tokenizer variant** ([`MtaLoss::forward_cross`], [`MtaCrossInput`]): each model
/// computes `w`, `ŵ` and its unit vectors from its own tokens and memberships; DSA is as above
/// (`ω` from the teacher), and HRA compares unit vectors instead of tokens, weighted by `ω`:
///
/// ```text
/// P_u = Σ_{j∈u} ŵ^S_j h^S_j / max(ν_u, ε),  Q_u = Σ_{j∈u} ŵ^T_j h^T_j / max(ω_u, ε)   (before normalising)
/// HRA = Σ_b Σ_u ω_u (1 − cos(W P_u, Q_u)) / max(Σ_b Σ_u ω_u, ε)       (norms floored at ε)
/// ```
///
/// (Entropy weighting needs the teacher's logits over the student's positions and is not
/// offered across tokenizers.)
///
/// The module holds one projector per pair: train them in their own parameter group (the
/// authors' lr 5e-4). The teacher's states and both sides' token weights are detached; the
/// gradient reaches the student states (through `S_u` and `cos_j`) and the projectors.
#[derive(Module, Debug)]
pub struct MtaLoss {
    /// `Linear(d_S → d_T)`, one per pair, in the schedule's order.
    pub projectors: Vec<Linear>,
    /// The layer schedule.
    #[module(skip)]
    pub pairs: Vec<MtaLayerPair>,
    /// Weight of DSA in each pair's loss.
    pub dsa_weight: f64,
    /// Weight of HRA in each pair's loss.
    pub hra_weight: f64,
    /// Whether the teacher's weights are its confidence rather than attention-derived.
    pub entropy_weighting: bool,
}

/// One pair's values: reduced `[1]` in [`MtaOutput`], per example `[batch]` in
/// [`MtaPerExample`].
#[derive(Debug, Clone)]
pub struct MtaPairOutput<const D: usize> {
    /// The pair.
    pub pair: MtaLayerPair,
    /// Number of units with at least one member token (summed over the batch when reduced).
    pub units: Tensor<D>,
    /// Dynamic Structural Alignment.
    pub dsa: Tensor<D>,
    /// Hidden Representation Alignment.
    pub hra: Tensor<D>,
    /// `dsa_weight · dsa + hra_weight · hra`.
    pub loss: Tensor<D>,
}

/// The reduced loss of [`MtaLoss::forward`] and its breakdown.
#[derive(Debug, Clone)]
pub struct MtaOutput {
    /// `L_MTA`, `[1]`.
    pub loss: Tensor<1>,
    /// Every pair's values, `[1]` each, in the schedule's order.
    pub pairs: Vec<MtaPairOutput<1>>,
}

impl MtaOutput {
    /// Named terms, `[1]` each: `mta`, then `dsa_t{t}_s{s}`, `hra_t{t}_s{s}` per pair.
    pub fn terms(&self) -> Vec<(String, Tensor<1>)> {
        let mut terms = vec![("mta".to_string(), self.loss.clone())];
        for p in &self.pairs {
            let tag = format!("t{}_s{}", p.pair.teacher_layer, p.pair.student_layer);
            terms.push((format!("dsa_{tag}"), p.dsa.clone()));
            terms.push((format!("hra_{tag}"), p.hra.clone()));
        }
        terms
    }
}

/// The per-example values of [`MtaLoss::forward_no_reduction`].
#[derive(Debug, Clone)]
pub struct MtaPerExample {
    /// `L_MTA` of each example, `[batch]`.
    pub loss: Tensor<1>,
    /// Every pair's values, `[batch]` each.
    pub pairs: Vec<MtaPairOutput<1>>,
}

/// Sums of one pair, per example `[B]`: DSA's numerator and denominator, HRA's, and the unit
/// count.
struct PairSums {
    dsa_num: Tensor<1>,
    dsa_den: Tensor<1>,
    hra_num: Tensor<1>,
    hra_den: Tensor<1>,
    units: Tensor<1>,
}

impl MtaLoss {
    /// The reduced loss and its per-pair breakdown.
    ///
    /// `Reduction::Mean` and `Auto` give the batch ratios of the formula (sums over the whole
    /// batch, then one division); `BatchMean` the mean and `Sum` the sum of the per-example
    /// values of [`MtaLoss::forward_no_reduction`]. `units` is the batch's total.
    ///
    /// # Shapes
    /// See [`MtaInput`]; output `[1]` each.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`MtaLoss::try_forward`].
    pub fn forward(&self, input: MtaInput, reduction: Reduction) -> MtaOutput {
        self.try_forward(input, reduction)
            .unwrap_or_else(|e| panic!("MtaLoss: {e}"))
    }

    /// [`MtaLoss::forward`], or the reason the inputs are invalid.
    ///
    /// # Errors
    /// [`DistillError::Shape`] for a schedule layer past the hidden states given, mismatched
    /// shapes or widths; [`DistillError::NonFinite`] for NaN / ±∞ states or confidences;
    /// [`DistillError::InvalidMask`] for a non-0/1 mask or membership, an example with fewer
    /// than 2 real tokens, or a unit member on a padding token.
    pub fn try_forward(
        &self,
        input: MtaInput,
        reduction: Reduction,
    ) -> Result<MtaOutput, DistillError> {
        let batch = input.attention_mask.dims()[0];
        let sums = self.pair_sums(input)?;
        Ok(self.reduce(sums, batch, reduction))
    }

    /// The cross-tokenizer variant of [`MtaLoss::forward`] (see [`MtaLoss`]): teacher and
    /// student each on their own tokens.
    ///
    /// # Shapes
    /// See [`MtaCrossInput`]; output `[1]` each.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`MtaLoss::try_forward_cross`].
    pub fn forward_cross(&self, input: MtaCrossInput, reduction: Reduction) -> MtaOutput {
        self.try_forward_cross(input, reduction)
            .unwrap_or_else(|e| panic!("MtaLoss: {e}"))
    }

    /// [`MtaLoss::forward_cross`], or the reason the inputs are invalid.
    ///
    /// # Errors
    /// As [`MtaLoss::try_forward`], for each side; [`DistillError::InvalidConfig`] when the
    /// loss uses entropy weighting; [`DistillError::InvalidMask`] for a unit present on one
    /// side only.
    pub fn try_forward_cross(
        &self,
        input: MtaCrossInput,
        reduction: Reduction,
    ) -> Result<MtaOutput, DistillError> {
        let batch = input.teacher_mask.dims()[0];
        let sums = self.cross_pair_sums(input)?;
        Ok(self.reduce(sums, batch, reduction))
    }

    /// The per-example values of [`MtaLoss::forward_cross`].
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`MtaLoss::try_forward_cross`].
    pub fn forward_cross_no_reduction(&self, input: MtaCrossInput) -> MtaPerExample {
        self.try_forward_cross_no_reduction(input)
            .unwrap_or_else(|e| panic!("MtaLoss: {e}"))
    }

    /// [`MtaLoss::forward_cross_no_reduction`], or the reason the inputs are invalid (the
    /// errors of [`MtaLoss::try_forward_cross`]).
    pub fn try_forward_cross_no_reduction(
        &self,
        input: MtaCrossInput,
    ) -> Result<MtaPerExample, DistillError> {
        let sums = self.cross_pair_sums(input)?;
        Ok(self.per_example(sums))
    }

    /// Every pair's reduced values from its per-example sums.
    fn reduce(&self, sums: Vec<PairSums>, batch: usize, reduction: Reduction) -> MtaOutput {
        let mut pairs = Vec::with_capacity(sums.len());
        for (pair, s) in self.pairs.iter().zip(sums) {
            let (dsa, hra) = match reduction {
                Reduction::Mean | Reduction::Auto => (
                    s.dsa_num.sum() / s.dsa_den.sum().clamp_min(MTA_EPS),
                    s.hra_num.sum() / s.hra_den.sum().clamp_min(MTA_EPS),
                ),
                Reduction::Sum | Reduction::BatchMean => {
                    let dsa = (s.dsa_num / s.dsa_den.clamp_min(MTA_EPS)).sum();
                    let hra = (s.hra_num / s.hra_den.clamp_min(MTA_EPS)).sum();
                    if matches!(reduction, Reduction::BatchMean) {
                        (dsa.div_scalar(batch as f64), hra.div_scalar(batch as f64))
                    } else {
                        (dsa, hra)
                    }
                }
            };
            let loss =
                dsa.clone().mul_scalar(self.dsa_weight) + hra.clone().mul_scalar(self.hra_weight);
            pairs.push(MtaPairOutput {
                pair: *pair,
                units: s.units.sum(),
                dsa,
                hra,
                loss,
            });
        }
        let loss = Tensor::cat(pairs.iter().map(|p| p.loss.clone()).collect(), 0).mean();
        MtaOutput { loss, pairs }
    }

    /// The per-example values: every pair's ratios with each example's own sums, and their
    /// mean over the pairs.
    ///
    /// # Shapes
    /// See [`MtaInput`]; output `[batch]` each.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`MtaLoss::try_forward`].
    pub fn forward_no_reduction(&self, input: MtaInput) -> MtaPerExample {
        self.try_forward_no_reduction(input)
            .unwrap_or_else(|e| panic!("MtaLoss: {e}"))
    }

    /// [`MtaLoss::forward_no_reduction`], or the reason the inputs are invalid (the errors of
    /// [`MtaLoss::try_forward`]).
    pub fn try_forward_no_reduction(&self, input: MtaInput) -> Result<MtaPerExample, DistillError> {
        let sums = self.pair_sums(input)?;
        Ok(self.per_example(sums))
    }

    /// Every pair's per-example ratios, and their mean over the pairs.
    fn per_example(&self, sums: Vec<PairSums>) -> MtaPerExample {
        let mut pairs = Vec::with_capacity(sums.len());
        for (pair, s) in self.pairs.iter().zip(sums) {
            let dsa = s.dsa_num / s.dsa_den.clamp_min(MTA_EPS);
            let hra = s.hra_num / s.hra_den.clamp_min(MTA_EPS);
            let loss =
                dsa.clone().mul_scalar(self.dsa_weight) + hra.clone().mul_scalar(self.hra_weight);
            pairs.push(MtaPairOutput {
                pair: *pair,
                units: s.units,
                dsa,
                hra,
                loss,
            });
        }
        let count = pairs.len() as f64;
        let loss = pairs
            .iter()
            .map(|p| p.loss.clone())
            .reduce(|a, b| a + b)
            .expect("the schedule is not empty")
            .div_scalar(count);
        MtaPerExample { loss, pairs }
    }

    /// Validates the inputs and computes every pair's per-example sums.
    fn pair_sums(&self, input: MtaInput) -> Result<Vec<PairSums>, DistillError> {
        self.check(&input)?;
        let mask = input.attention_mask.detach();
        let mut out = Vec::with_capacity(self.pairs.len());
        for (pair, projector) in self.pairs.iter().zip(&self.projectors) {
            let h_t = input.teacher_hidden[pair.teacher_layer].clone().detach();
            let h_s = input.student_hidden[pair.student_layer].clone();
            let members = match pair.granularity {
                Granularity::Words => input.words.clone(),
                Granularity::Phrases => input.phrases.clone(),
            }
            .detach();
            let w_t = match &input.teacher_confidence {
                Some(confidence) if self.entropy_weighting => confidence.clone().detach(),
                _ => token_weights(h_t.clone(), mask.clone()),
            };
            let w_s = token_weights(h_s.clone().detach(), mask.clone());
            out.push(pair_sums(h_t, h_s, w_t, w_s, members, projector));
        }
        Ok(out)
    }

    /// Validates the cross-tokenizer inputs and computes every pair's per-example sums.
    fn cross_pair_sums(&self, input: MtaCrossInput) -> Result<Vec<PairSums>, DistillError> {
        self.check_cross(&input)?;
        let mask_t = input.teacher_mask.detach();
        let mask_s = input.student_mask.detach();
        let mut out = Vec::with_capacity(self.pairs.len());
        for (pair, projector) in self.pairs.iter().zip(&self.projectors) {
            let h_t = input.teacher_hidden[pair.teacher_layer].clone().detach();
            let h_s = input.student_hidden[pair.student_layer].clone();
            let (members_t, members_s) = match pair.granularity {
                Granularity::Words => (input.teacher_words.clone(), input.student_words.clone()),
                Granularity::Phrases => {
                    (input.teacher_phrases.clone(), input.student_phrases.clone())
                }
            };
            let w_t = token_weights(h_t.clone(), mask_t.clone());
            let w_s = token_weights(h_s.clone().detach(), mask_s.clone());
            out.push(cross_pair_sums(
                (h_t, w_t, members_t.detach()),
                (h_s, w_s, members_s.detach()),
                projector,
            ));
        }
        Ok(out)
    }

    fn check(&self, input: &MtaInput) -> Result<(), DistillError> {
        let [batch, seq] = input.attention_mask.dims();
        non_empty("attention_mask", batch, seq)?;
        let (d_s, d_t) = self.widths();
        let mut checks = ValueChecks::new();
        let teacher_layers: Vec<usize> = self.pairs.iter().map(|p| p.teacher_layer).collect();
        let student_layers: Vec<usize> = self.pairs.iter().map(|p| p.student_layer).collect();
        self.check_states(
            "teacher_hidden",
            &input.teacher_hidden,
            &teacher_layers,
            [batch, seq, d_t],
            &mut checks,
        )?;
        self.check_states(
            "student_hidden",
            &input.student_hidden,
            &student_layers,
            [batch, seq, d_s],
            &mut checks,
        )?;
        check_mask("attention_mask", &input.attention_mask, &mut checks);
        for (arg, members) in [("words", &input.words), ("phrases", &input.phrases)] {
            check_members(
                arg,
                members,
                ("attention_mask", &input.attention_mask),
                None,
                &mut checks,
            )?;
        }
        if self.entropy_weighting {
            match &input.teacher_confidence {
                None => {
                    return Err(DistillError::Shape {
                        arg: "teacher_confidence",
                        detail: "entropy weighting is on, but no teacher confidence was given \
                                 (see `teacher_confidence`)"
                            .into(),
                    })
                }
                Some(c) if c.dims() != [batch, seq] => {
                    return Err(DistillError::Shape {
                        arg: "teacher_confidence",
                        detail: format!(
                            "expected [batch, seq] = {}, got {}",
                            fmt_shape(&[batch, seq]),
                            fmt_shape(&c.dims())
                        ),
                    })
                }
                Some(c) => checks.finite("teacher_confidence", c),
            }
        }
        checks.run().map(|_| ())
    }

    fn check_cross(&self, input: &MtaCrossInput) -> Result<(), DistillError> {
        if self.entropy_weighting {
            return Err(DistillError::InvalidConfig {
                field: "entropy_weighting",
                value: 1.0,
                reason: "entropy weighting is not offered by the cross-tokenizer variant (the \
                         teacher's distribution is over other tokens)"
                    .into(),
            });
        }
        let [batch, seq_t] = input.teacher_mask.dims();
        let [batch_s, seq_s] = input.student_mask.dims();
        non_empty("teacher_mask", batch, seq_t)?;
        non_empty("student_mask", batch_s, seq_s)?;
        if batch_s != batch {
            return Err(DistillError::Shape {
                arg: "student_mask",
                detail: format!(
                    "expected the teacher's batch {batch}, got {}",
                    fmt_shape(&[batch_s, seq_s])
                ),
            });
        }
        let (d_s, d_t) = self.widths();
        let mut checks = ValueChecks::new();
        let teacher_layers: Vec<usize> = self.pairs.iter().map(|p| p.teacher_layer).collect();
        let student_layers: Vec<usize> = self.pairs.iter().map(|p| p.student_layer).collect();
        self.check_states(
            "teacher_hidden",
            &input.teacher_hidden,
            &teacher_layers,
            [batch, seq_t, d_t],
            &mut checks,
        )?;
        self.check_states(
            "student_hidden",
            &input.student_hidden,
            &student_layers,
            [batch, seq_s, d_s],
            &mut checks,
        )?;
        check_mask("teacher_mask", &input.teacher_mask, &mut checks);
        check_mask("student_mask", &input.student_mask, &mut checks);
        for (arg_t, teacher, arg_s, student) in [
            (
                "teacher_words",
                &input.teacher_words,
                "student_words",
                &input.student_words,
            ),
            (
                "teacher_phrases",
                &input.teacher_phrases,
                "student_phrases",
                &input.student_phrases,
            ),
        ] {
            check_members(
                arg_t,
                teacher,
                ("teacher_mask", &input.teacher_mask),
                None,
                &mut checks,
            )?;
            check_members(
                arg_s,
                student,
                ("student_mask", &input.student_mask),
                Some((arg_t, teacher)),
                &mut checks,
            )?;
        }
        checks.run().map(|_| ())
    }

    /// `(d_S, d_T)` of the projectors.
    fn widths(&self) -> (usize, usize) {
        let dims = self.projectors[0].weight.dims();
        (dims[0], dims[1])
    }

    /// The schedule's layers of one side exist with `dims`; finiteness queued (each layer once).
    fn check_states(
        &self,
        side: &'static str,
        states: &[Tensor<3>],
        layers: &[usize],
        dims: [usize; 3],
        checks: &mut ValueChecks,
    ) -> Result<(), DistillError> {
        let mut seen = Vec::new();
        for (pair, &layer) in self.pairs.iter().zip(layers) {
            let Some(state) = states.get(layer) else {
                return Err(DistillError::Shape {
                    arg: side,
                    detail: format!(
                        "the schedule pair (teacher {}, student {}) reads layer {layer}, but \
                         only {} hidden states were given",
                        pair.teacher_layer,
                        pair.student_layer,
                        states.len()
                    ),
                });
            };
            if state.dims() != dims {
                return Err(DistillError::Shape {
                    arg: side,
                    detail: format!(
                        "layer {layer}: expected [batch, seq, width] = {}, got {}",
                        fmt_shape(&dims),
                        fmt_shape(&state.dims())
                    ),
                });
            }
            if !seen.contains(&layer) {
                seen.push(layer);
                checks.finite(side, state);
            }
        }
        Ok(())
    }
}

fn non_empty(arg: &'static str, batch: usize, seq: usize) -> Result<(), DistillError> {
    if batch == 0 || seq == 0 {
        return Err(DistillError::Shape {
            arg,
            detail: format!(
                "expected a non-empty [batch, seq], got {}",
                fmt_shape(&[batch, seq])
            ),
        });
    }
    Ok(())
}

/// Queues the checks of a real-token mask: 0/1, at least 2 real tokens per example.
fn check_mask(arg: &'static str, mask: &Tensor<2>, checks: &mut ValueChecks) {
    let shape = fmt_shape(&mask.dims());
    let m = mask.clone().detach();
    let not_binary = m
        .clone()
        .equal_elem(0.0)
        .bool_or(m.clone().equal_elem(1.0))
        .bool_not()
        .any()
        .float();
    let fewest = m.sum_dim(1).min().reshape([1]);
    checks.add(vec![not_binary, fewest], move |v| {
        if v[0] > 0.0 {
            Err(DistillError::InvalidMask {
                shape,
                reason: format!("`{arg}` must hold only 0 (padding) and 1 (real token)"),
            })
        } else if v[1] < 2.0 {
            Err(DistillError::InvalidMask {
                shape,
                reason: format!(
                    "an example has {} real token(s) in `{arg}`: the token weights need at \
                     least 2 (each token attends to the others)",
                    v[1]
                ),
            })
        } else {
            Ok(())
        }
    });
}

/// Checks the shape of unit memberships over `mask`'s positions and queues their value checks
/// (0/1, no member on padding; with `other`, the same unit rows present on both sides).
fn check_members(
    arg: &'static str,
    members: &Tensor<3>,
    (mask_arg, mask): (&'static str, &Tensor<2>),
    other: Option<(&'static str, &Tensor<3>)>,
    checks: &mut ValueChecks,
) -> Result<(), DistillError> {
    let [batch, seq] = mask.dims();
    let dims = members.dims();
    if dims[0] != batch || dims[2] != seq {
        return Err(DistillError::Shape {
            arg,
            detail: format!(
                "expected [batch, units, seq] = [{batch}, units, {seq}], got {}",
                fmt_shape(&dims)
            ),
        });
    }
    let shape = fmt_shape(&dims);
    let u = members.clone().detach();
    let not_binary = u
        .clone()
        .equal_elem(0.0)
        .bool_or(u.clone().equal_elem(1.0))
        .bool_not()
        .any()
        .float();
    let m = mask.clone().detach();
    let on_padding = (u.clone() * (m.neg().add_scalar(1.0)).unsqueeze_dim::<3>(1))
        .sum()
        .reshape([1]);
    let mut stats = vec![not_binary, on_padding];
    let mut other_arg = "";
    if let Some((name, theirs)) = other {
        other_arg = name;
        if theirs.dims()[1] != dims[1] {
            return Err(DistillError::Shape {
                arg,
                detail: format!(
                    "expected the unit rows of `{name}` {}, got {}",
                    fmt_shape(&theirs.dims()),
                    fmt_shape(&dims)
                ),
            });
        }
        let present = |t: Tensor<3>| t.sum_dim(2).greater_elem(0.0).int();
        stats.push(
            present(u)
                .not_equal(present(theirs.clone().detach()))
                .any()
                .float(),
        );
    }
    checks.add(stats, move |v| {
        if v[0] > 0.0 {
            Err(DistillError::InvalidMask {
                shape,
                reason: format!("`{arg}` memberships must hold only 0 and 1"),
            })
        } else if v[1] > 0.0 {
            Err(DistillError::InvalidMask {
                shape,
                reason: format!("`{arg}` puts a unit member on a padding token of `{mask_arg}`"),
            })
        } else if v.get(2).is_some_and(|&x| x > 0.0) {
            Err(DistillError::InvalidMask {
                shape,
                reason: format!(
                    "a unit row has tokens in one of `{other_arg}` / `{arg}` and none in the \
                     other: row u must be the same unit on both sides"
                ),
            })
        } else {
            Ok(())
        }
    });
    Ok(())
}

/// One pair's per-example sums (see [`MtaLoss`] for the formulas).
fn pair_sums(
    h_t: Tensor<3>,
    h_s: Tensor<3>,
    w_t: Tensor<2>,
    w_s: Tensor<2>,
    members: Tensor<3>,
    projector: &Linear,
) -> PairSums {
    let [batch, units, _] = members.dims();
    let device = h_t.device();
    let (w_t, count) = renormalise(&members, w_t);
    let (w_s, _) = renormalise(&members, w_s);
    let (omega, t_units) = pool(&members, w_t.clone(), h_t.clone());
    let (_, s_units) = pool(&members, w_s, h_s.clone());
    let normalise = |x: Tensor<3>| x.clone() / floored_norm(x, MTA_NORM_EPS);
    let (dsa_num, dsa_den) = dsa_sums(
        omega.clone(),
        normalise(s_units),
        normalise(t_units),
        units,
        &device,
    );
    // HRA on every member token.
    let projected = projector.forward(h_s);
    let unit = |x: Tensor<3>| x.clone() / floored_norm(x, MTA_EPS);
    let cos = (unit(projected) * unit(h_t)).sum_dim(2).squeeze_dim::<2>(2); // [B, L]
    let token_weight = w_t * count; // Σ over memberships of ŵ^T_j
    let hra_num = (token_weight.clone() * cos.neg().add_scalar(1.0))
        .sum_dim(1)
        .reshape([batch]);
    let hra_den = token_weight.sum_dim(1).reshape([batch]);
    let units_with_members = omega
        .greater_elem(0.0)
        .float()
        .sum_dims_squeeze::<1, _>(&[1, 2]);
    PairSums {
        dsa_num,
        dsa_den,
        hra_num,
        hra_den,
        units: units_with_members,
    }
}

/// One pair's per-example sums across tokenizers (see [`MtaLoss`]): each side is
/// `(states, token weights, memberships)` over its own tokens.
fn cross_pair_sums(
    (h_t, w_t, members_t): (Tensor<3>, Tensor<2>, Tensor<3>),
    (h_s, w_s, members_s): (Tensor<3>, Tensor<2>, Tensor<3>),
    projector: &Linear,
) -> PairSums {
    let [batch, units, _] = members_t.dims();
    let device = h_t.device();
    let (w_t, _) = renormalise(&members_t, w_t);
    let (w_s, _) = renormalise(&members_s, w_s);
    let (omega, q) = pool(&members_t, w_t, h_t);
    let (_, p) = pool(&members_s, w_s, h_s);
    let t_units = q.clone() / floored_norm(q.clone(), MTA_NORM_EPS);
    let s_units = p.clone() / floored_norm(p.clone(), MTA_NORM_EPS);
    let (dsa_num, dsa_den) = dsa_sums(omega.clone(), s_units, t_units, units, &device);
    let unit = |x: Tensor<3>| x.clone() / floored_norm(x, MTA_EPS);
    let cos = (unit(projector.forward(p)) * unit(q))
        .sum_dim(2)
        .squeeze_dim::<2>(2); // [B, U]
    let omega = omega.squeeze_dim::<2>(2); // [B, U]
    let hra_num = (omega.clone() * cos.neg().add_scalar(1.0))
        .sum_dim(1)
        .reshape([batch]);
    let hra_den = omega.clone().sum_dim(1).reshape([batch]);
    let units_with_members = omega.greater_elem(0.0).float().sum_dim(1).reshape([batch]);
    PairSums {
        dsa_num,
        dsa_den,
        hra_num,
        hra_den,
        units: units_with_members,
    }
}

/// `ŵ_j = w_j / max(Σ_{(j,u)∈M} w_j, ε)` per example, and each token's membership count
/// `[B, L]` (a token in two units counts twice).
fn renormalise(members: &Tensor<3>, w: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let count = members.clone().sum_dim(1).squeeze_dim::<2>(1); // [B, L]
    let total = (w.clone() * count.clone()).sum_dim(1).clamp_min(MTA_EPS); // [B, 1]
    (w / total, count)
}

/// Each unit's mass `[B, U, 1]` and weighted mean `[B, U, D]` (not normalised) under the
/// renormalised weights `ŵ`.
fn pool(members: &Tensor<3>, w_hat: Tensor<2>, h: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    let weighted = members.clone() * w_hat.unsqueeze_dim::<3>(1); // [B, U, L]
    let mass = weighted.clone().sum_dim(2); // [B, U, 1]
    let means = weighted.matmul(h) / mass.clone().clamp_min(MTA_EPS);
    (mass, means)
}

/// DSA's per-example numerator and denominator from the teacher's unit masses `[B, U, 1]` and
/// both sides' normalised unit vectors `[B, U, D]`.
fn dsa_sums(
    omega: Tensor<3>,
    s_units: Tensor<3>,
    t_units: Tensor<3>,
    units: usize,
    device: &Device,
) -> (Tensor<1>, Tensor<1>) {
    let gram = |x: Tensor<3>| x.clone().matmul(x.swap_dims(1, 2)); // [B, U, U]
    let diff = gram(s_units) - gram(t_units.clone());
    let off_diagonal = Tensor::<2, Bool>::diag_mask([units, units], 0, device)
        .float()
        .cast(t_units.dtype())
        .unsqueeze_dim::<3>(0); // 1 off the diagonal
    let pair_weight = omega.clone().matmul(omega.swap_dims(1, 2)) * off_diagonal; // [B, U, U]
    let num = (pair_weight.clone() * diff.powi_scalar(2)).sum_dims_squeeze::<1, _>(&[1, 2]);
    let den = pair_weight.sum_dims_squeeze::<1, _>(&[1, 2]);
    (num, den)
}

/// `max(‖x‖, floor)` over the last dim, `[B, N, 1]`, as `√max(‖x‖², floor²)`: the same value,
/// but a zero vector (a padding unit) gets a zero gradient instead of `0 · ∞ = NaN` from `√0`.
fn floored_norm(x: Tensor<3>, floor: f64) -> Tensor<3> {
    x.powi_scalar(2).sum_dim(2).clamp_min(floor * floor).sqrt()
}

/// MTA's parameter-free token weights, detached:
///
/// ```text
/// σ_i = std(H_i) + 1e-5           (over the D features, with Bessel's correction /(D−1))
/// Q_i = H_i / σ_i                  (not centred)
/// S_ij = Q_i·Q_j / √D,  S_ij = −∞ for padding keys j and for j = i
/// A = softmax_j(S)
/// w_j = (1/n_b) Σ_{i real} A_ij    (n_b = the example's real tokens)
/// ```
///
/// `w_j` is the attention token `j` receives on average from the example's real tokens; the
/// mean runs over real query rows only, so padding the batch further changes nothing.
///
/// # Shapes
/// - `hidden`: `[batch, seq, d]` (`d ≥ 2`)
/// - `attention_mask`: `[batch, seq]`, 1 = real token, at least 2 per example
/// - output: `[batch, seq]`, 0 at padding
pub fn token_weights(hidden: Tensor<3>, attention_mask: Tensor<2>) -> Tensor<2> {
    let [batch, seq, d] = hidden.dims();
    let hidden = hidden.detach();
    let mask = attention_mask.detach();
    let device = hidden.device();
    let mean = hidden.clone().mean_dim(2);
    let var = (hidden.clone() - mean)
        .powi_scalar(2)
        .sum_dim(2)
        .div_scalar((d as f64 - 1.0).max(1.0));
    let q = hidden / var.sqrt().add_scalar(1e-5);
    let scores = q
        .clone()
        .matmul(q.swap_dims(1, 2))
        .div_scalar((d as f64).sqrt()); // [B, L, L]
    let padding_key = mask
        .clone()
        .equal_elem(0.0)
        .unsqueeze_dim::<3>(1)
        .expand([batch, seq, seq]);
    let self_key = Tensor::<2, Bool>::diag_mask([seq, seq], 0, &device)
        .bool_not()
        .unsqueeze_dim::<3>(0)
        .expand([batch, seq, seq]);
    let blocked = padding_key.bool_or(self_key);
    // Rows with every key blocked (padding rows of a 1-token example) would be NaN: they are
    // excluded below, so they get a finite stand-in first.
    let scores = scores.mask_fill(blocked.clone(), f64::NEG_INFINITY);
    let all_blocked = blocked.clone().bool_not().any_dim(2).bool_not(); // [B, L, 1]
    let scores = scores.mask_fill(all_blocked.clone().expand([batch, seq, seq]), 0.0);
    let attention = softmax(scores, 2).mask_fill(blocked, 0.0); // [B, L, L]
    let queries = mask.clone().unsqueeze_dim::<3>(2); // [B, L, 1]
    let real = mask.clone().sum_dim(1); // [B, 1]
    (attention * queries).sum_dim(1).squeeze_dim::<2>(1) / real
}

/// The teacher's per-token confidence `1 − H(p_T,j) / ln V` with `p_T,j = softmax(logits_j)`,
/// MTA's optional replacement of the teacher's token weights; detached, in `[0, 1]`.
///
/// # Shapes
/// - `teacher_logits`: `[batch, seq, vocab]` (`vocab ≥ 2`)
/// - output: `[batch, seq]`
pub fn teacher_confidence(teacher_logits: Tensor<3>) -> Tensor<2> {
    let [_, _, vocab] = teacher_logits.dims();
    let log_p = log_softmax(teacher_logits.detach(), 2);
    let p = log_p.clone().exp();
    // 0 · log 0 = 0: an underflowed probability has log −∞.
    let plogp = (p * log_p.clone()).mask_fill(log_p.is_inf(), 0.0);
    let entropy = plogp.sum_dim(2).squeeze_dim::<2>(2).neg();
    entropy
        .div_scalar((vocab as f64).ln())
        .neg()
        .add_scalar(1.0)
}
