//! MTA — Multi-Granular Trajectory Alignment (arXiv 2605.01374): Dynamic Structural Alignment
//! (DSA) and Hidden Representation Alignment (HRA) of teacher and student hidden states pooled
//! over semantic units (words in lower layers, phrases in higher ones), over a layer schedule.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::nn::Linear;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Bool, Device, Tensor};
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
        if self.student_width == 0 {
            return Err(invalid("student_width", 0.0, "it must be > 0"));
        }
        if self.teacher_width == 0 {
            return Err(invalid("teacher_width", 0.0, "it must be > 0"));
        }
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
        if self.projector_init == ProjectorInit::Identity
            && self.student_width != self.teacher_width
        {
            return Err(invalid(
                "projector_init",
                self.student_width as f64,
                &format!(
                    "the identity projector needs student_width = teacher_width, got {} and {}",
                    self.student_width, self.teacher_width
                ),
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

/// Multi-Granular Trajectory Alignment (Yu et al., arXiv 2605.01374, ACL 2026), for a teacher
/// and a student sharing one tokenizer.
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
        Ok(MtaOutput { loss, pairs })
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
        Ok(MtaPerExample { loss, pairs })
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

    fn check(&self, input: &MtaInput) -> Result<(), DistillError> {
        let [batch, seq] = input.attention_mask.dims();
        if batch == 0 || seq == 0 {
            return Err(DistillError::Shape {
                arg: "attention_mask",
                detail: format!(
                    "expected a non-empty [batch, seq], got {}",
                    fmt_shape(&[batch, seq])
                ),
            });
        }
        let widths = (
            self.projectors[0].weight.dims()[0],
            self.projectors[0].weight.dims()[1],
        );
        let mut checks = ValueChecks::new();
        for (side, states, layer_of, width) in [
            (
                "teacher_hidden",
                &input.teacher_hidden,
                (|p: &MtaLayerPair| p.teacher_layer) as fn(&MtaLayerPair) -> usize,
                widths.1,
            ),
            (
                "student_hidden",
                &input.student_hidden,
                (|p: &MtaLayerPair| p.student_layer) as fn(&MtaLayerPair) -> usize,
                widths.0,
            ),
        ] {
            for pair in &self.pairs {
                let layer = layer_of(pair);
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
            }
        }
        // Finiteness of the states read (each layer once).
        let mut seen_t = Vec::new();
        let mut seen_s = Vec::new();
        for pair in &self.pairs {
            if !seen_t.contains(&pair.teacher_layer) {
                seen_t.push(pair.teacher_layer);
                checks.finite("teacher_hidden", &input.teacher_hidden[pair.teacher_layer]);
            }
            if !seen_s.contains(&pair.student_layer) {
                seen_s.push(pair.student_layer);
                checks.finite("student_hidden", &input.student_hidden[pair.student_layer]);
            }
        }
        // The attention mask: 0/1, at least 2 real tokens per example.
        let shape = fmt_shape(&[batch, seq]);
        let m = input.attention_mask.clone().detach();
        let not_binary = m
            .clone()
            .equal_elem(0.0)
            .bool_or(m.clone().equal_elem(1.0))
            .bool_not()
            .any()
            .float();
        let fewest = m.clone().sum_dim(1).min().reshape([1]);
        checks.add(vec![not_binary, fewest], move |v| {
            if v[0] > 0.0 {
                Err(DistillError::InvalidMask {
                    shape,
                    reason: "`attention_mask` must hold only 0 (padding) and 1 (real token)".into(),
                })
            } else if v[1] < 2.0 {
                Err(DistillError::InvalidMask {
                    shape,
                    reason: format!(
                        "an example has {} real token(s) in `attention_mask`: the token weights \
                         need at least 2 (each token attends to the others)",
                        v[1]
                    ),
                })
            } else {
                Ok(())
            }
        });
        for (arg, members) in [("words", &input.words), ("phrases", &input.phrases)] {
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
            let on_padding = (u * (m.clone().neg().add_scalar(1.0)).unsqueeze_dim::<3>(1))
                .sum()
                .reshape([1]);
            checks.add(vec![not_binary, on_padding], move |v| {
                if v[0] > 0.0 {
                    Err(DistillError::InvalidMask {
                        shape,
                        reason: format!("`{arg}` memberships must hold only 0 and 1"),
                    })
                } else if v[1] > 0.0 {
                    Err(DistillError::InvalidMask {
                        shape,
                        reason: format!(
                            "`{arg}` puts a unit member on a padding token of `attention_mask`"
                        ),
                    })
                } else {
                    Ok(())
                }
            });
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
    // Memberships per token (a token in two units counts twice).
    let count = members.clone().sum_dim(1).squeeze_dim::<2>(1); // [B, L]
    let renorm = |w: Tensor<2>| {
        let total = (w.clone() * count.clone()).sum_dim(1).clamp_min(MTA_EPS); // [B, 1]
        w / total
    };
    let w_t = renorm(w_t);
    let w_s = renorm(w_s);
    // Unit masses and unit vectors.
    let pool = |w: Tensor<2>, h: Tensor<3>| {
        let weighted = members.clone() * w.unsqueeze_dim::<3>(1); // [B, U, L]
        let mass = weighted.clone().sum_dim(2); // [B, U, 1]
        let vectors = weighted.matmul(h) / mass.clone().clamp_min(MTA_EPS); // [B, U, D]
        (mass, vectors.clone() / floored_norm(vectors, MTA_NORM_EPS))
    };
    let (omega, t_units) = pool(w_t.clone(), h_t.clone());
    let (_, s_units) = pool(w_s, h_s.clone());
    let gram = |x: Tensor<3>| x.clone().matmul(x.swap_dims(1, 2)); // [B, U, U]
    let diff = gram(s_units) - gram(t_units);
    let off_diagonal = Tensor::<2, Bool>::diag_mask([units, units], 0, &device)
        .float()
        .cast(h_t.dtype())
        .unsqueeze_dim::<3>(0); // 1 off the diagonal
    let pair_weight = omega.clone().matmul(omega.clone().swap_dims(1, 2)) * off_diagonal; // [B, U, U]
    let dsa_num = (pair_weight.clone() * diff.powi_scalar(2)).sum_dims_squeeze::<1, _>(&[1, 2]);
    let dsa_den = pair_weight.sum_dims_squeeze::<1, _>(&[1, 2]);
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
