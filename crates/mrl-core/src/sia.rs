//! SIA — Self-distilled Intra-relational Alignment (MIPIC §2, Eq. 4–12).
//!
//! Each truncated prefix `h[..., :d_i]` of a token state is aligned with the full width of the
//! same layer in two ways: (a) the `[CLS]` attention distribution it induces through a learnable
//! bias-free lift `P_i`, and (b) the relational structure (linear CKA) of the top-k attended
//! tokens. MIPIC: arXiv 2604.24374.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};
use cka_kernels::{top_k_cka, KSchedule, TopKCkaSpec};

use crate::breakdown::{mean_of, LossBreakdown};
use crate::error::{check_nested_dims, fmt_shape, MrlError};
use crate::weighting::{aggregate, Aggregation};
use mrl_common::NORM_EPS;

/// Added to the attention logits of padding tokens so their probability is exactly 0.
const PAD_LOGIT: f64 = -1e9;

/// How top-k CKA picks its tokens.
#[derive(Config, Debug, PartialEq)]
pub enum SiaCkaSchedule {
    /// The paper (Eq. 7–9): tokens ranked once per example by the full-width teacher scores `s_j`
    /// (so the kept sets are nested across dims), `k_i = max(k_min, ceil(γ_i · m))` with `m` the
    /// example's real length, one `γ_i` per truncated dim.
    Paper {
        /// One fraction per truncated dim, ascending with the dims (paper: `0.2 … 0.7`).
        gammas: Vec<f64>,
        /// Lower bound on `k` (paper: 8); `k` is always capped at the real length.
        k_min: usize,
    },
    /// The authors' notebook: tokens ranked per dim by the prefix's own `[CLS]` scores
    /// `h_CLS[:d] · h_j[:d]` (sets not nested), `k = max(k_min, floor(d / D · budget))`.
    Notebook {
        /// Token budget at the full width (notebook: 64).
        budget: usize,
        /// Lower bound on `k` (notebook: 8).
        k_min: usize,
    },
}

impl SiaCkaSchedule {
    /// The paper schedule for `n` truncated dims: `γ_i = 0.2 + 0.1 i` (capped at 1), `k_min = 8`.
    ///
    /// The gammas are computed as `(2 + i) / 10` so that they are the nearest doubles to
    /// `0.2, 0.3, …` (`0.2 + 0.1` is `0.30000000000000004`, which would make `ceil(γ m)` one too
    /// large whenever `0.3 m` is an integer).
    pub fn paper(n: usize) -> Self {
        SiaCkaSchedule::Paper {
            gammas: (0..n).map(|i| ((2 + i) as f64 / 10.0).min(1.0)).collect(),
            k_min: 8,
        }
    }

    /// The notebook schedule: `budget = 64`, `k_min = 8`.
    pub fn notebook() -> Self {
        SiaCkaSchedule::Notebook {
            budget: 64,
            k_min: 8,
        }
    }
}

/// How the attention scores of the SIA KL term are formed.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum AttentionScore {
    /// The paper (Eq. 4–5): scaled dot products of the raw states,
    /// `s_j = h_CLS · h_j / √D` and `s_j^(i) = h_CLS · (P_iᵀ h_j[:d_i]) / √D`.
    Scaled,
    /// Cosines, i.e. dot products of L2-normalised states: `s_j = cos(h_CLS, h_j)` and
    /// `s_j^(i) = cos(h_CLS, P_iᵀ h_j[:d_i])`, so every logit `s / τ` lies in `[−1/τ, 1/τ]`
    /// whatever the scale of the states (no `√D`). Norms are floored at `1e-12` as in
    /// `F.normalize`. Only the KL term changes: top-k CKA still ranks tokens by Eq. 4's scores.
    Cosine,
}

/// Configuration of [`SiaLoss`].
#[derive(Config, Debug)]
pub struct SiaConfig {
    /// Hidden width `D` of the encoder (the lifts map `d_i → D`).
    pub hidden_size: usize,
    /// Hidden-state indices the loss is applied at (`0` = embedding output, `L` = last layer).
    /// Default: the paper's BERT-base layers `2, 4, 6, 8, 9, 10, 12`.
    #[config(default = "vec![2, 4, 6, 8, 9, 10, 12]")]
    pub layers: Vec<usize>,
    /// The truncated dims `d_i < D`, strictly increasing. Default: `16 … 512` (paper).
    #[config(default = "vec![16, 32, 64, 128, 256, 512]")]
    pub dims: Vec<usize>,
    /// Temperature `τ` of the attention softmax. Default `0.05` (paper's single `τ`).
    #[config(default = 0.05)]
    pub temperature: f64,
    /// Weight `λ_att` of the attention KL. Default `1` (paper); `0` reproduces the notebook,
    /// and then no lifts are created.
    #[config(default = 1.0)]
    pub lambda_att: f64,
    /// Scores of the attention KL: [`AttentionScore::Scaled`] (default, the paper) or
    /// [`AttentionScore::Cosine`] (L2-normalised states).
    #[config(default = "AttentionScore::Scaled")]
    pub att_score: AttentionScore,
    /// Weight `λ_cka` of the top-k CKA term. Default `1` (paper); the notebook uses `0.4`.
    #[config(default = 1.0)]
    pub lambda_cka: f64,
    /// Token selection of top-k CKA. Default: the paper's schedule for six truncated dims.
    #[config(
        default = "SiaCkaSchedule::Paper { gammas: vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7], k_min: 8 }"
    )]
    pub cka_schedule: SiaCkaSchedule,
    /// When true the full-width (teacher) side carries no gradient: the teacher attention
    /// distribution `a_D` and the CKA target `Y`. Default `false` (both references let it flow).
    #[config(default = false)]
    pub detach_teacher: bool,
    /// `Sum` over (layer, dim) (paper) or `Mean` (notebook). Default `Sum`.
    #[config(default = "Aggregation::Sum")]
    pub aggregation: Aggregation,
    /// Initialiser of the lifts `P_i`. Default: Burn's `Linear` default (Kaiming uniform).
    #[config(
        default = "Initializer::KaimingUniform { gain: 0.577_350_269_189_625_8, fan_out_only: false }"
    )]
    pub lift_initializer: Initializer,
}

impl SiaConfig {
    /// Builds the loss with its lifts on `device`.
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`SiaConfig::try_init`].
    pub fn init(&self, device: &Device) -> SiaLoss {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("SiaConfig: {e}"))
    }

    /// Checks the config against itself (hidden-state counts are checked at forward time).
    ///
    /// # Errors
    /// [`MrlError::InvalidDims`] (not strictly increasing, a dim `>= hidden_size`),
    /// [`MrlError::InvalidLayers`] (empty or repeated), [`MrlError::InvalidConfig`] (schedule
    /// length, temperature, negative weights).
    pub fn validate(&self) -> Result<(), MrlError> {
        check_nested_dims("sia dims", &self.dims, Some(self.hidden_size))?;
        if *self.dims.last().expect("non-empty") >= self.hidden_size {
            return Err(MrlError::InvalidDims {
                arg: "sia dims",
                dims: self.dims.clone(),
                reason: format!(
                    "SIA aligns truncated dims with the full width; every dim must be < hidden_size = {}",
                    self.hidden_size
                ),
            });
        }
        check_distinct_layers("sia layers", &self.layers)?;
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(MrlError::InvalidConfig {
                field: "temperature",
                reason: format!("must be finite and > 0, got {}", self.temperature),
            });
        }
        for (field, v) in [
            ("lambda_att", self.lambda_att),
            ("lambda_cka", self.lambda_cka),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(MrlError::InvalidConfig {
                    field,
                    reason: format!("must be finite and >= 0, got {v}"),
                });
            }
        }
        match &self.cka_schedule {
            SiaCkaSchedule::Paper { gammas, k_min } => {
                if gammas.len() != self.dims.len() {
                    return Err(MrlError::InvalidConfig {
                        field: "cka_schedule",
                        reason: format!(
                            "{} gammas for {} truncated dims (gammas {gammas:?}, dims {:?}); \
                             use SiaCkaSchedule::paper(n) for the paper's sequence",
                            gammas.len(),
                            self.dims.len(),
                            self.dims
                        ),
                    });
                }
                self.paper_spec(gammas.clone(), *k_min)
                    .validate(self.hidden_size)?;
            }
            SiaCkaSchedule::Notebook { budget, k_min } => {
                if *budget == 0 || *k_min == 0 {
                    return Err(MrlError::InvalidConfig {
                        field: "cka_schedule",
                        reason: format!("budget ({budget}) and k_min ({k_min}) must be >= 1"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Builds the loss, or reports a malformed config (see [`SiaConfig::validate`]).
    ///
    /// # Errors
    /// See [`SiaConfig::validate`].
    pub fn try_init(&self, device: &Device) -> Result<SiaLoss, MrlError> {
        self.validate()?;
        let lifts = if self.lambda_att > 0.0 {
            self.layers
                .iter()
                .flat_map(|_| self.dims.iter())
                .map(|&d| {
                    LinearConfig::new(d, self.hidden_size)
                        .with_bias(false)
                        .with_initializer(self.lift_initializer.clone())
                        .init(device)
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(SiaLoss {
            lifts,
            hidden_size: self.hidden_size,
            layers: self.layers.clone(),
            dims: self.dims.clone(),
            temperature: self.temperature,
            lambda_att: self.lambda_att,
            att_score: self.att_score,
            lambda_cka: self.lambda_cka,
            cka_schedule: self.cka_schedule.clone(),
            detach_teacher: self.detach_teacher,
            aggregation: self.aggregation,
        })
    }

    fn paper_spec(&self, gammas: Vec<f64>, k_min: usize) -> TopKCkaSpec {
        TopKCkaSpec::new()
            .with_dims(self.dims.clone())
            .with_schedule(KSchedule::Gammas { gammas, k_min })
            .with_detach_teacher(self.detach_teacher)
    }
}

pub(crate) fn check_distinct_layers(arg: &'static str, layers: &[usize]) -> Result<(), MrlError> {
    if layers.is_empty() {
        return Err(MrlError::InvalidLayers {
            arg,
            layers: layers.to_vec(),
            reason: "at least one layer is required".into(),
        });
    }
    let mut sorted = layers.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(MrlError::InvalidLayers {
            arg,
            layers: layers.to_vec(),
            reason: format!("layer {} is listed twice", w[0]),
        });
    }
    Ok(())
}

/// SIA: attention-distribution KL and top-k CKA between truncated and full-width token states.
///
/// For every SIA layer `l` and truncated dim `d_i < D`, with `h = H^(l)` and `h_CLS = h[:, 0]`:
///
/// ```text
/// s_j      = h_CLS · h_j / √D,                       a_D = softmax_j(s / τ)        (teacher)
/// s_j^(i)  = h_CLS · (P_iᵀ h_j[:d_i]) / √D,          a_i = softmax_j(s^(i) / τ)    (student)
/// L_att^(i,l) = mean_b KL(a_i ‖ a_D)                                              (Eq. 4–6)
/// L_CKA^(i,l) = mean_b [1 − CKA(h[S_k, :d_i], h[S_k, :])]                          (Eq. 7–12)
/// L_SIA = Σ_l Σ_i (λ_att L_att^(i,l) + λ_cka L_CKA^(i,l))      (or the mean over (l, i))
/// ```
///
/// With [`AttentionScore::Cosine`] both scores are cosines instead: `s_j = cos(h_CLS, h_j)`,
/// `s_j^(i) = cos(h_CLS, P_iᵀ h_j[:d_i])` (no `√D`).
///
/// `j` runs over real tokens only (padding gets probability 0, and is never selected by top-k),
/// `P_i ∈ R^{d_i × D}` is a bias-free learnable lift (one per (layer, dim), stored as the
/// weight `[d_i, D]` of a bias-free [`Linear`]), and `S_k` are the top-`k_i` tokens by `s_j`
/// (see [`SiaCkaSchedule`]). Top-k CKA runs through [`cka_kernels::top_k_cka`] (fused kernels
/// on CubeCL devices). The student score is computed as `(P_i h_CLS) · h_j[:d_i]`, which is the
/// same number at `O(B·d_i·(D + m))` instead of `O(B·m·d_i·D)`.
///
/// # Shapes
/// - `hidden_states[l]`: `[B, m, D]` for every hidden state `l = 0 ..= L`
/// - `mask`: `[B, m]`, 1 = real token, 0 = padding
#[derive(Module, Debug)]
pub struct SiaLoss {
    /// Lifts `P_i`, `lifts[layer_idx * n_dims + dim_idx]` (empty when `λ_att = 0`).
    pub lifts: Vec<Linear>,
    /// Hidden width `D`.
    #[module(skip)]
    pub hidden_size: usize,
    /// SIA layers (hidden-state indices).
    #[module(skip)]
    pub layers: Vec<usize>,
    /// Truncated dims `d_i < D`.
    #[module(skip)]
    pub dims: Vec<usize>,
    /// Attention temperature `τ`.
    #[module(skip)]
    pub temperature: f64,
    /// `λ_att`.
    #[module(skip)]
    pub lambda_att: f64,
    /// Scores of the attention KL.
    #[module(skip)]
    pub att_score: AttentionScore,
    /// `λ_cka`.
    #[module(skip)]
    pub lambda_cka: f64,
    /// Token selection of top-k CKA.
    #[module(skip)]
    pub cka_schedule: SiaCkaSchedule,
    /// Whether the full-width side is detached.
    #[module(skip)]
    pub detach_teacher: bool,
    /// Sum or mean over (layer, dim).
    #[module(skip)]
    pub aggregation: Aggregation,
}

/// The SIA terms of one (layer, dim).
#[derive(Debug, Clone)]
pub struct SiaTerm {
    /// Hidden-state index `l`.
    pub layer: usize,
    /// Truncated dim `d_i`.
    pub dim: usize,
    /// `L_att^(i,l)` (batch-mean KL), `[1]`; `None` when `λ_att = 0`.
    pub att_kl: Option<Tensor<1>>,
    /// `L_CKA^(i,l) = 1 − CKA` (batch mean), `[1]`; `None` when `λ_cka = 0`.
    pub cka_loss: Option<Tensor<1>>,
}

/// The total and every (layer, dim) term of SIA.
#[derive(Debug, Clone)]
pub struct SiaBreakdown {
    /// `L_SIA`, `[1]`, differentiable.
    pub total: Tensor<1>,
    /// One entry per (layer, dim), layers outer.
    pub terms: Vec<SiaTerm>,
}

impl LossBreakdown for SiaBreakdown {
    fn total(&self) -> Tensor<1> {
        self.total.clone()
    }

    fn named_terms(&self) -> Vec<(String, Tensor<1>)> {
        let mut out = vec![("sia/total".to_string(), self.total.clone())];
        for t in &self.terms {
            if let Some(kl) = &t.att_kl {
                out.push((
                    format!("sia/layer_{}/dim_{}/att_kl", t.layer, t.dim),
                    kl.clone(),
                ));
            }
            if let Some(c) = &t.cka_loss {
                out.push((
                    format!("sia/layer_{}/dim_{}/cka", t.layer, t.dim),
                    c.clone(),
                ));
            }
        }
        out
    }
}

impl SiaBreakdown {
    /// The term-wise mean of the breakdowns of several views (same config, same layout).
    pub(crate) fn average(views: Vec<SiaBreakdown>) -> SiaBreakdown {
        let total = mean_of(views.iter().map(|v| v.total.clone()).collect());
        let terms = (0..views[0].terms.len())
            .map(|k| {
                let first = &views[0].terms[k];
                let avg = |get: fn(&SiaTerm) -> Option<Tensor<1>>| {
                    get(first).map(|_| {
                        mean_of(
                            views
                                .iter()
                                .map(|v| get(&v.terms[k]).expect("same layout"))
                                .collect(),
                        )
                    })
                };
                SiaTerm {
                    layer: first.layer,
                    dim: first.dim,
                    att_kl: avg(|t| t.att_kl.clone()),
                    cka_loss: avg(|t| t.cka_loss.clone()),
                }
            })
            .collect();
        SiaBreakdown { total, terms }
    }
}

/// Checks `hidden_states` (non-empty, one shape `[B, m, D]`) and `mask` `[B, m]`.
pub(crate) fn check_hidden_states(
    hidden_states: &[Tensor<3>],
    mask: &Tensor<2>,
) -> Result<[usize; 3], MrlError> {
    let first = hidden_states.first().ok_or(MrlError::Shape {
        arg: "hidden_states",
        detail: "no hidden state given".into(),
    })?;
    let dims = first.dims();
    if dims.contains(&0) {
        return Err(MrlError::Shape {
            arg: "hidden_states",
            detail: format!("hidden state 0 is empty: {}", fmt_shape(&dims)),
        });
    }
    if let Some((l, h)) = hidden_states
        .iter()
        .enumerate()
        .find(|(_, h)| h.dims() != dims)
    {
        return Err(MrlError::Shape {
            arg: "hidden_states",
            detail: format!(
                "every hidden state must be [B, m, D] = {}; hidden state {l} is {}",
                fmt_shape(&dims),
                fmt_shape(&h.dims())
            ),
        });
    }
    if mask.dims() != [dims[0], dims[1]] {
        return Err(MrlError::Shape {
            arg: "mask",
            detail: format!(
                "expected [B, m] = {} for hidden states {}, got {}",
                fmt_shape(&[dims[0], dims[1]]),
                fmt_shape(&dims),
                fmt_shape(&mask.dims())
            ),
        });
    }
    Ok(dims)
}

impl SiaLoss {
    /// SIA of one forward pass (one SimCSE view).
    ///
    /// # Shapes
    /// - `hidden_states[l]`: `[B, m, D]`, `l = 0 ..= L`, with `D = hidden_size`
    /// - `mask`: `[B, m]` (0/1, at least one real token per example; token 0 is the `[CLS]`)
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`SiaLoss::try_forward`].
    pub fn forward(&self, hidden_states: &[Tensor<3>], mask: Tensor<2>) -> SiaBreakdown {
        self.try_forward(hidden_states, mask)
            .unwrap_or_else(|e| panic!("SiaLoss: {e}"))
    }

    /// [`SiaLoss::forward`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::Shape`] (shapes differ, `D ≠ hidden_size`), [`MrlError::InvalidLayers`] (a
    /// SIA layer `>=` the number of hidden states), [`MrlError::Cka`] (mask not 0/1, an example
    /// all padding).
    pub fn try_forward(
        &self,
        hidden_states: &[Tensor<3>],
        mask: Tensor<2>,
    ) -> Result<SiaBreakdown, MrlError> {
        let [batch, len, width] = check_hidden_states(hidden_states, &mask)?;
        if width != self.hidden_size {
            return Err(MrlError::Shape {
                arg: "hidden_states",
                detail: format!(
                    "hidden width D = {width} but the SIA lifts were built for hidden_size = {}",
                    self.hidden_size
                ),
            });
        }
        if let Some(&l) = self.layers.iter().find(|&&l| l >= hidden_states.len()) {
            return Err(MrlError::InvalidLayers {
                arg: "sia layers",
                layers: self.layers.clone(),
                reason: format!(
                    "layer {l} does not exist: {} hidden states were given (indices 0..={})",
                    hidden_states.len(),
                    hidden_states.len() - 1
                ),
            });
        }
        let n = self.dims.len();
        let mut terms = Vec::with_capacity(self.layers.len() * n);
        for (li, &l) in self.layers.iter().enumerate() {
            let h = hidden_states[l].clone();
            let dtype = h.dtype();
            let mask_f = mask.clone().cast(dtype);
            let cls = h.clone().slice([0..batch, 0..1, 0..width]); // [B, 1, D]
            let inv_sqrt_d = 1.0 / (width as f64).sqrt();
            // h_CLS · h_j, [B, m]
            let teacher_dots = h
                .clone()
                .matmul(cls.clone().swap_dims(1, 2))
                .reshape([batch, len]);
            // s_j = h_CLS · h_j / √D  (Eq. 4), [B, m]
            let teacher_scores = teacher_dots.clone().mul_scalar(inv_sqrt_d);
            let pad_bias = mask_f.clone().sub_scalar(1.0).mul_scalar(-PAD_LOGIT);
            // ‖h_j‖ and ‖h_CLS‖ for cosine scores, [B, m] and [B, 1].
            let norms =
                (self.lambda_att > 0.0 && self.att_score == AttentionScore::Cosine).then(|| {
                    let n = (h.clone() * h.clone())
                        .sum_dim(2)
                        .clamp_min(NORM_EPS * NORM_EPS)
                        .sqrt()
                        .reshape([batch, len]);
                    let n_cls = n.clone().slice([0..batch, 0..1]);
                    (n, n_cls)
                });
            let teacher_log_p = if self.lambda_att > 0.0 {
                let att_teacher = match &norms {
                    // cos(h_CLS, h_j) = (h_CLS · h_j) / (‖h_CLS‖ ‖h_j‖)
                    Some((n, n_cls)) => teacher_dots / (n.clone() * n_cls.clone()),
                    None => teacher_scores.clone(),
                };
                let lt = log_softmax(
                    att_teacher.div_scalar(self.temperature) + pad_bias.clone(),
                    1,
                );
                Some(if self.detach_teacher { lt.detach() } else { lt })
            } else {
                None
            };
            let cka_losses = if self.lambda_cka > 0.0 {
                Some(self.cka_losses(&h, &mask, &cls, teacher_scores.clone())?)
            } else {
                None
            };
            for (i, &d) in self.dims.iter().enumerate() {
                let att_kl = teacher_log_p.as_ref().map(|lt| {
                    let lift = self.lifts[li * n + i].weight.val(); // P_i: [d_i, D]
                                                                    // P_i h_CLS: [B, d_i]
                    let q = cls
                        .clone()
                        .reshape([batch, width])
                        .matmul(lift.clone().transpose());
                    let prefix = h.clone().slice([0..batch, 0..len, 0..d]); // h_j[:d_i]
                    let dots = prefix
                        .clone()
                        .matmul(q.reshape([batch, d, 1]))
                        .reshape([batch, len]); // h_CLS · (P_iᵀ h_j[:d_i])
                    let student_scores = match &norms {
                        Some((_, n_cls)) => {
                            // ‖P_iᵀ h_j[:d_i]‖² = h_j[:d_i] (P_i P_iᵀ) h_j[:d_i]ᵀ, [B, m]
                            let gram = lift.clone().matmul(lift.clone().transpose()); // [d_i, d_i]
                            let lifted_sq = (prefix.clone().matmul(gram.unsqueeze::<3>()) * prefix)
                                .sum_dim(2)
                                .reshape([batch, len]);
                            dots / (lifted_sq.clamp_min(NORM_EPS * NORM_EPS).sqrt() * n_cls.clone())
                        }
                        None => dots.mul_scalar(inv_sqrt_d),
                    };
                    let ls = log_softmax(
                        student_scores.div_scalar(self.temperature) + pad_bias.clone(),
                        1,
                    );
                    // KL(a_i ‖ a_D) = Σ_j a_i (log a_i − log a_D), real tokens only.
                    (ls.clone().exp() * (ls - lt.clone()) * mask_f.clone())
                        .sum_dim(1)
                        .mean()
                });
                terms.push(SiaTerm {
                    layer: l,
                    dim: d,
                    att_kl,
                    cka_loss: cka_losses.as_ref().map(|c| c[i].clone()),
                });
            }
        }
        let total = self.aggregate(&terms, &hidden_states[0]);
        Ok(SiaBreakdown { total, terms })
    }

    /// `1 − CKA` per truncated dim (batch mean), `n × [1]`.
    fn cka_losses(
        &self,
        h: &Tensor<3>,
        mask: &Tensor<2>,
        cls: &Tensor<3>,
        teacher_scores: Tensor<2>,
    ) -> Result<Vec<Tensor<1>>, MrlError> {
        let [batch, len, width] = h.dims();
        let n = self.dims.len();
        let one_minus_mean = |cka: Tensor<2>, cols: usize| -> Vec<Tensor<1>> {
            let loss = cka.mean_dim(0).neg().add_scalar(1.0); // [1, cols]
            (0..cols)
                .map(|i| loss.clone().slice([0..1, i..i + 1]).reshape([1]))
                .collect()
        };
        match &self.cka_schedule {
            SiaCkaSchedule::Paper { gammas, k_min } => {
                let spec = TopKCkaSpec::new()
                    .with_dims(self.dims.clone())
                    .with_schedule(KSchedule::Gammas {
                        gammas: gammas.clone(),
                        k_min: *k_min,
                    })
                    .with_detach_teacher(self.detach_teacher);
                let cka = top_k_cka(h.clone(), mask.clone(), teacher_scores.detach(), &spec)?;
                Ok(one_minus_mean(cka, n))
            }
            SiaCkaSchedule::Notebook { budget, k_min } => {
                let mut out = Vec::with_capacity(n);
                for &d in &self.dims {
                    let k = (d * budget / width).max(*k_min);
                    let prefix = h.clone().slice([0..batch, 0..len, 0..d]);
                    let scores = prefix
                        .matmul(cls.clone().slice([0..batch, 0..1, 0..d]).swap_dims(1, 2))
                        .reshape([batch, len])
                        .detach();
                    let spec = TopKCkaSpec::new()
                        .with_dims(vec![d])
                        .with_schedule(KSchedule::Explicit(vec![k]))
                        .with_detach_teacher(self.detach_teacher);
                    let cka = top_k_cka(h.clone(), mask.clone(), scores, &spec)?;
                    out.extend(one_minus_mean(cka, 1));
                }
                Ok(out)
            }
        }
    }

    fn aggregate(&self, terms: &[SiaTerm], like: &Tensor<3>) -> Tensor<1> {
        let mut values = Vec::new();
        let mut weights = Vec::new();
        for t in terms {
            if let Some(kl) = &t.att_kl {
                values.push(kl.clone());
                weights.push(self.lambda_att);
            }
            if let Some(c) = &t.cka_loss {
                values.push(c.clone());
                weights.push(self.lambda_cka);
            }
        }
        if values.is_empty() {
            return Tensor::zeros([1], (&like.device(), like.dtype()));
        }
        let sum = aggregate(values, &weights, Aggregation::Sum);
        match self.aggregation {
            Aggregation::Sum => sum,
            Aggregation::Mean => sum.div_scalar(terms.len() as f64),
        }
    }
}
