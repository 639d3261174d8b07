//! MIPIC: MRL + SIA + PIC (MIPIC §4, Eq. 18).
//!
//! "MIPIC: Matryoshka Representation Learning via Self-Distilled Intra-Relational Alignment and
//! Progressive Information Chaining", arXiv 2604.24374 (ACL 2026 Findings).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use mrl_common::{pool, Pooling};

use crate::breakdown::LossBreakdown;
use crate::embedding::EmbeddingInputs;
use crate::error::{check_nested_dims, fmt_shape, MrlError};
use crate::info_nce::{InfoNceLoss, InfoNceLossConfig};
use crate::matryoshka::{MatryoshkaConfig, MatryoshkaLoss, MrlBreakdown};
use crate::pic::{PicBreakdown, PicConfig, PicLoss};
use crate::sia::{
    check_hidden_states, AttentionScore, SiaBreakdown, SiaCkaSchedule, SiaConfig, SiaLoss,
};
use crate::weighting::{Aggregation, DimWeights};

/// Configuration of [`MipicLoss`]; the defaults are the paper's BERT-base setting.
///
/// Named presets for the paper's backbones and for MiniLM-L6 are in
/// [`MipicPreset`](crate::MipicPreset) and as TOML under `crates/mrl-core/presets/`.
#[derive(Config, Debug)]
pub struct MipicConfig {
    /// Hidden width `D` of the encoder.
    #[config(default = 768)]
    pub hidden_size: usize,
    /// Nested Matryoshka dims, strictly increasing, ending at `D`. Default `16 … 512, 768`.
    #[config(default = "vec![16, 32, 64, 128, 256, 512, 768]")]
    pub dims: Vec<usize>,
    /// Weights of the MRL per-dim terms. Default uniform.
    #[config(default = "DimWeights::Uniform")]
    pub dim_weights: DimWeights,
    /// `α` of `L = α L_MRL + (1 − α)(L_SIA + λ_pic L_PIC)`. Default `0.4` (BERT-base, TinyBERT).
    #[config(default = 0.4)]
    pub alpha: f64,
    /// The weight of `L_MRL` when it should not be `α`: `L = w_MRL L_MRL + (1 − α)(L_SIA +
    /// λ_pic L_PIC)`. `None` (default) is Eq. 18's convex combination, `w_MRL = α`;
    /// `Some(1.0)` keeps the MRL term at full weight and adds the auxiliary terms on top.
    #[config(default = "None")]
    pub mrl_weight: Option<f64>,
    /// The one temperature `τ` (MRL InfoNCE, SIA attention softmax, PIC InfoNCE). Default `0.05`.
    #[config(default = 0.05)]
    pub temperature: f64,
    /// SIA layers (hidden-state indices, `0` = embedding output). Default `2, 4, 6, 8, 9, 10, 12`.
    #[config(default = "vec![2, 4, 6, 8, 9, 10, 12]")]
    pub sia_layers: Vec<usize>,
    /// `λ_att`. Default `1` (paper); `0` in the notebook (and then no lifts are built).
    #[config(default = 1.0)]
    pub lambda_att: f64,
    /// Scores of the SIA attention KL: [`AttentionScore::Scaled`] (default, Eq. 4) or
    /// [`AttentionScore::Cosine`] (L2-normalised states).
    #[config(default = "AttentionScore::Scaled")]
    pub att_score: AttentionScore,
    /// `λ_cka`. Default `1` (paper); `0.4` in the notebook.
    #[config(default = 1.0)]
    pub lambda_cka: f64,
    /// `λ_pic`. Default `1` (paper); `0.2` in the notebook.
    #[config(default = 1.0)]
    pub lambda_pic: f64,
    /// Top-k token selection; its gammas follow the truncated dims (every dim `< D`).
    /// Default: the paper schedule for six truncated dims.
    #[config(
        default = "SiaCkaSchedule::Paper { gammas: vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7], k_min: 8 }"
    )]
    pub cka_schedule: SiaCkaSchedule,
    /// Detach the full-width side of SIA. Default `false`.
    #[config(default = false)]
    pub detach_teacher: bool,
    /// PIC `(dim, layer)` chain. Default: the paper's BERT-base chain.
    #[config(
        default = "vec![(16, 2), (32, 4), (64, 6), (128, 8), (256, 9), (512, 10), (768, 12)]"
    )]
    pub chain: Vec<(usize, usize)>,
    /// `Sum` (paper) or `Mean` (notebook) for the MRL dims, SIA (layer, dim) terms and PIC links.
    #[config(default = "Aggregation::Sum")]
    pub aggregation: Aggregation,
    /// Pooling the encoder's sentence vector should use (read by [`MipicView::pooled`]; the
    /// loss itself takes pooled vectors). Default `Cls` (paper).
    #[config(default = "Pooling::Cls")]
    pub pooling: Pooling,
    /// When set, the MRL term uses only this many dims per step, drawn without replacement from
    /// `(seed, step)` (as sentence-transformers' `n_dims_per_step`); SIA and PIC keep every
    /// dim. Default: every dim every step (the paper).
    #[config(default = "None")]
    pub mrl_dims_per_step: Option<usize>,
    /// PIC curriculum length in steps ([`PicConfig::warmup_steps`]). Default `0` (the paper:
    /// every link from step 0).
    #[config(default = 0)]
    pub pic_warmup_steps: usize,
    /// Seed of the per-step sampling. Default `42` (MIPIC Table 7).
    #[config(default = 42)]
    pub seed: u64,
}

impl MipicConfig {
    /// The notebook variant of this config: `0.6 L_MRL + 0.4 (0 · L_att + 0.4 L_CKA + 0.2 L_PIC)`,
    /// means instead of sums, per-dim top-k with `k = max(8, floor(d/D · 64))`.
    pub fn notebook(self) -> Self {
        self.with_alpha(0.6)
            .with_lambda_att(0.0)
            .with_lambda_cka(0.4)
            .with_lambda_pic(0.2)
            .with_aggregation(Aggregation::Mean)
            .with_cka_schedule(SiaCkaSchedule::notebook())
    }

    /// The truncated dims `d_i < D` that SIA aligns.
    pub fn sia_dims(&self) -> Vec<usize> {
        self.dims
            .iter()
            .copied()
            .filter(|&d| d < self.hidden_size)
            .collect()
    }

    /// The SIA part of this config.
    pub fn sia_config(&self) -> SiaConfig {
        SiaConfig::new(self.hidden_size)
            .with_layers(self.sia_layers.clone())
            .with_dims(self.sia_dims())
            .with_temperature(self.temperature)
            .with_lambda_att(self.lambda_att)
            .with_att_score(self.att_score)
            .with_lambda_cka(self.lambda_cka)
            .with_cka_schedule(self.cka_schedule.clone())
            .with_detach_teacher(self.detach_teacher)
            .with_aggregation(self.aggregation)
    }

    /// The PIC part of this config.
    pub fn pic_config(&self) -> PicConfig {
        PicConfig::new()
            .with_chain(self.chain.clone())
            .with_temperature(self.temperature)
            .with_aggregation(self.aggregation)
            .with_warmup_steps(self.pic_warmup_steps)
    }

    /// The MRL part of this config.
    pub fn mrl_config(&self) -> MatryoshkaConfig {
        MatryoshkaConfig::new()
            .with_dims(self.dims.clone())
            .with_weights(self.dim_weights.clone())
            .with_aggregation(self.aggregation)
            .with_n_dims_per_step(self.mrl_dims_per_step)
            .with_seed(self.seed)
    }

    /// Checks the config.
    ///
    /// # Errors
    /// [`MrlError::InvalidDims`] (dims not strictly increasing or `> hidden_size`, no truncated
    /// dim), [`MrlError::InvalidConfig`] (`α ∉ [0, 1]`, negative `λ` or `mrl_weight`), and the errors of
    /// [`SiaConfig::validate`] and [`PicConfig::validate`]; a chain dim above `hidden_size` is
    /// [`MrlError::InvalidChain`].
    pub fn validate(&self) -> Result<(), MrlError> {
        check_nested_dims("dims", &self.dims, Some(self.hidden_size))?;
        if !(self.alpha.is_finite() && (0.0..=1.0).contains(&self.alpha)) {
            return Err(MrlError::InvalidConfig {
                field: "alpha",
                reason: format!("must lie in [0, 1], got {}", self.alpha),
            });
        }
        if let Some(w) = self.mrl_weight {
            if !(w.is_finite() && w >= 0.0) {
                return Err(MrlError::InvalidConfig {
                    field: "mrl_weight",
                    reason: format!("must be finite and >= 0, got {w}"),
                });
            }
        }
        if !(self.lambda_pic.is_finite() && self.lambda_pic >= 0.0) {
            return Err(MrlError::InvalidConfig {
                field: "lambda_pic",
                reason: format!("must be finite and >= 0, got {}", self.lambda_pic),
            });
        }
        if self.mrl_dims_per_step == Some(0) {
            return Err(MrlError::InvalidConfig {
                field: "mrl_dims_per_step",
                reason: "must be >= 1 (or None for every dim)".into(),
            });
        }
        if self.sia_dims().is_empty() {
            return Err(MrlError::InvalidDims {
                arg: "dims",
                dims: self.dims.clone(),
                reason: format!(
                    "SIA needs at least one truncated dim < hidden_size = {}",
                    self.hidden_size
                ),
            });
        }
        self.sia_config().validate()?;
        self.pic_config().validate()?;
        if let Some(&(d, l)) = self.chain.iter().find(|&&(d, _)| d > self.hidden_size) {
            return Err(MrlError::InvalidChain {
                chain: self.chain.clone(),
                reason: format!(
                    "checkpoint ({d}, {l}): dim {d} exceeds hidden_size {}",
                    self.hidden_size
                ),
            });
        }
        Ok(())
    }

    /// Builds the loss (lifts and projectors on `device`).
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`MipicConfig::try_init`].
    pub fn init(&self, device: &Device) -> MipicLoss {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("MipicConfig: {e}"))
    }

    /// Builds the loss, or reports a malformed config (see [`MipicConfig::validate`]).
    ///
    /// # Errors
    /// See [`MipicConfig::validate`].
    pub fn try_init(&self, device: &Device) -> Result<MipicLoss, MrlError> {
        self.validate()?;
        let base = InfoNceLossConfig::new()
            .with_temperature(self.temperature)
            .init();
        Ok(MipicLoss {
            mrl: self.mrl_config().try_init(base)?,
            sia: self.sia_config().try_init(device)?,
            pic: self.pic_config().try_init(device)?,
            hidden_size: self.hidden_size,
            alpha: self.alpha,
            mrl_weight: self.mrl_weight.unwrap_or(self.alpha),
            lambda_pic: self.lambda_pic,
        })
    }
}

/// One SimCSE view: the encoder's hidden states and its pooled sentence vectors.
#[derive(Debug, Clone)]
pub struct MipicView {
    /// `[B, m, D]` for every hidden state `l = 0 ..= L` (`0` = embedding output).
    pub hidden_states: Vec<Tensor<3>>,
    /// `[B, D]` pooled last-layer vectors (CLS by default; mean pooling is the caller's choice).
    pub pooled: Tensor<2>,
}

impl MipicView {
    /// A view whose `pooled` vectors are pooled from its last hidden state.
    ///
    /// # Errors
    /// [`MrlError::Shape`] when `hidden_states` is empty or `mask` does not fit.
    pub fn pooled(
        hidden_states: Vec<Tensor<3>>,
        mask: Tensor<2>,
        pooling: Pooling,
    ) -> Result<Self, MrlError> {
        let last = hidden_states.last().cloned().ok_or(MrlError::Shape {
            arg: "hidden_states",
            detail: "no hidden state given".into(),
        })?;
        let pooled = pool(last, mask, pooling)?;
        Ok(Self {
            hidden_states,
            pooled,
        })
    }
}

/// The total and every term of MIPIC.
#[derive(Debug, Clone)]
pub struct MipicBreakdown {
    /// `w_MRL L_MRL + (1 − α)(L_SIA + λ_pic L_PIC)` (`w_MRL = α` unless
    /// [`MipicConfig::mrl_weight`] is set), `[1]`, differentiable.
    pub total: Tensor<1>,
    /// MRL (SimCSE InfoNCE at every nested dim, view A as anchors and view B as positives).
    pub mrl: MrlBreakdown,
    /// SIA, averaged over the two views.
    pub sia: SiaBreakdown,
    /// PIC, averaged over the two views.
    pub pic: PicBreakdown,
}

impl LossBreakdown for MipicBreakdown {
    fn total(&self) -> Tensor<1> {
        self.total.clone()
    }

    fn named_terms(&self) -> Vec<(String, Tensor<1>)> {
        let mut out = vec![("total".to_string(), self.total.clone())];
        out.extend(self.mrl.named_terms());
        out.extend(self.sia.named_terms());
        out.extend(self.pic.named_terms());
        out
    }
}

/// MIPIC: Matryoshka InfoNCE plus SIA and PIC self-distillation (Eq. 18).
///
/// ```text
/// L = α · L_MRL + (1 − α) · (L_SIA + λ_pic · L_PIC)
/// L_MRL = Σ_d w_d InfoNCE(norm(z_A[:, :d]), norm(z_B[:, :d]); τ)
/// L_SIA = ½ (L_SIA(view A) + L_SIA(view B)),   L_PIC = ½ (L_PIC(view A) + L_PIC(view B))
/// ```
///
/// With [`MipicConfig::mrl_weight`] set, `α · L_MRL` becomes `w_MRL · L_MRL` (e.g. `1`: MRL at
/// full weight, the auxiliary terms on top).
///
/// `z_A`, `z_B` are the pooled vectors of the two dropout views of the same sentences; see
/// [`SiaLoss`] and [`PicLoss`] for the two self-distillation terms. The paper uses `λ_pic = 1`,
/// sums, `α = 0.4` or `0.5`; [`MipicConfig::notebook`] switches to the authors' notebook.
///
/// # Shapes
/// - each view: `hidden_states[l]` `[B, m, D]` for `l = 0 ..= L`; `pooled` `[B, D]`
/// - `mask`: `[B, m]` shared by both views (same tokens), `B >= 2`
#[derive(Module, Debug)]
pub struct MipicLoss {
    /// Matryoshka InfoNCE over the pooled vectors.
    pub mrl: MatryoshkaLoss<InfoNceLoss>,
    /// SIA with its lifts.
    pub sia: SiaLoss,
    /// PIC with its projectors.
    pub pic: PicLoss,
    /// Hidden width `D`.
    #[module(skip)]
    pub hidden_size: usize,
    /// `α`.
    #[module(skip)]
    pub alpha: f64,
    /// `w_MRL` ([`MipicConfig::mrl_weight`], `α` unless set).
    #[module(skip)]
    pub mrl_weight: f64,
    /// `λ_pic`.
    #[module(skip)]
    pub lambda_pic: f64,
}

impl MipicLoss {
    /// The MIPIC loss of one batch at training step `step` and all its terms (the step only
    /// matters with [`MipicConfig::mrl_dims_per_step`] or [`MipicConfig::pic_warmup_steps`]).
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`MipicLoss::try_forward`].
    pub fn forward(
        &self,
        view_a: &MipicView,
        view_b: &MipicView,
        mask: Tensor<2>,
        step: usize,
    ) -> MipicBreakdown {
        self.try_forward(view_a, view_b, mask, step)
            .unwrap_or_else(|e| panic!("MipicLoss: {e}"))
    }

    /// [`MipicLoss::forward`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::Shape`] (views with different layer counts or shapes, pooled not `[B, D]`,
    /// mask not `[B, m]`), [`MrlError::BatchTooSmall`] (`B < 2`), and the errors of the parts
    /// (layers / chain out of range, mask not 0/1).
    pub fn try_forward(
        &self,
        view_a: &MipicView,
        view_b: &MipicView,
        mask: Tensor<2>,
        step: usize,
    ) -> Result<MipicBreakdown, MrlError> {
        let dims_a = check_hidden_states(&view_a.hidden_states, &mask)?;
        let dims_b = check_hidden_states(&view_b.hidden_states, &mask)?;
        if view_a.hidden_states.len() != view_b.hidden_states.len() || dims_a != dims_b {
            return Err(MrlError::Shape {
                arg: "view_b",
                detail: format!(
                    "the two views must have the same hidden states: view A has {} of {}, view B {} of {}",
                    view_a.hidden_states.len(),
                    fmt_shape(&dims_a),
                    view_b.hidden_states.len(),
                    fmt_shape(&dims_b)
                ),
            });
        }
        let [batch, _, width] = dims_a;
        for (arg, view) in [("view_a.pooled", view_a), ("view_b.pooled", view_b)] {
            if view.pooled.dims() != [batch, width] {
                return Err(MrlError::Shape {
                    arg,
                    detail: format!(
                        "expected [B, D] = {}, got {}",
                        fmt_shape(&[batch, width]),
                        fmt_shape(&view.pooled.dims())
                    ),
                });
            }
        }
        if batch < 2 {
            return Err(MrlError::BatchTooSmall { arg: "mask", batch });
        }
        let mrl = self.mrl.try_forward(
            &EmbeddingInputs::pair(view_a.pooled.clone(), view_b.pooled.clone()),
            step as u64,
        )?;
        let sia = SiaBreakdown::average(vec![
            self.sia.try_forward(&view_a.hidden_states, mask.clone())?,
            self.sia.try_forward(&view_b.hidden_states, mask)?,
        ]);
        let pic = PicBreakdown::average(vec![
            self.pic.try_forward(&view_a.hidden_states, step)?,
            self.pic.try_forward(&view_b.hidden_states, step)?,
        ]);
        let total = mrl.total.clone().mul_scalar(self.mrl_weight)
            + (sia.total.clone() + pic.total.clone().mul_scalar(self.lambda_pic))
                .mul_scalar(1.0 - self.alpha);
        Ok(MipicBreakdown {
            total,
            mrl,
            sia,
            pic,
        })
    }
}
