//! `kind = "mipic"` — MIPIC (arXiv 2604.24374): `L = α L_MRL + (1 − α)(L_SIA + λ_pic L_PIC)` —
//! MRL over InfoNCE, SIA (attention KL + top-k CKA between each truncated dim and the full
//! width at chosen layers, through learned lifts) and PIC (InfoNCE between consecutive
//! `(dim, layer)` links of a chain, through learned projectors). The loss, its validation and
//! its breakdown are [`mrl_core::MipicLoss`]; the lifts and projectors are trained here in the
//! second parameter group (`optimizer.head_lr`).
//!
//! A named preset ([`mrl_core::MipicPreset`]: `minilm-l6`, `tinybert-6l`, `bert-base`,
//! `bge-m3`, `qwen3-embedding-0.6b`) gives dims, SIA layers and chain for its backbone; without
//! one, `dims`, `sia_layers` and `chain` must all be set. The preset is never guessed.
//!
//! ```toml
//! [objective]
//! kind = "mipic"
//! preset = "minilm-l6"
//! variant = "notebook"      # paper (default) | notebook
//! # any preset value can be overridden:
//! # dims, temperature, alpha, mrl_weight, lambda_att, att_score, lambda_cka, lambda_pic,
//! # sia_layers, chain, detach_teacher, aggregation, mrl_dims_per_step, pic_warmup_steps
//! ```
//!
//! `mrl_weight` replaces `α` as the weight of the MRL term (`1.0`: MRL at full weight, the
//! auxiliary terms added on top with `1 − α`); `att_score = "cosine"` computes the attention KL
//! on L2-normalised states instead of Eq. 4's `h_CLS · h_j / √D`. Each auxiliary term alone:
//!
//! ```toml
//! mrl_weight = 1.0
//! lambda_att = 0.0      # and lambda_cka / lambda_pic as wanted (0 switches a term off)
//! ```

use burn::module::Module;
use mrl_core::{
    AttentionScore, MipicConfig, MipicLoss, MipicPreset, MipicView, Pooling, SiaCkaSchedule,
};
use serde::{Deserialize, Serialize};

use super::{
    check_positive, config_error, loss_terms, AggregationKey, ObjectiveContext, ObjectiveSpec,
    RoleOutputs, TrainObjective,
};
use crate::config::bad;
use crate::embedding::config::DataFormat;
use crate::error::Result;
use crate::trainer::LossTerms;

/// Which MIPIC formulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MipicVariant {
    /// The paper: sums, `λ = 1`, the paper's top-k schedule.
    #[default]
    Paper,
    /// The authors' notebook: `α = 0.6`, `λ_att = 0`, `λ_cka = 0.4`, `λ_pic = 0.2`, means,
    /// `k = max(8, ⌊d/D · 64⌋)` ([`MipicConfig::notebook`]).
    Notebook,
}

/// `att_score` of `[objective]`: how the SIA attention KL scores tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttScoreKey {
    /// Eq. 4: `h_CLS · h_j / √D` (the default).
    Scaled,
    /// Cosines of the L2-normalised states.
    Cosine,
}

impl From<AttScoreKey> for AttentionScore {
    fn from(a: AttScoreKey) -> Self {
        match a {
            AttScoreKey::Scaled => AttentionScore::Scaled,
            AttScoreKey::Cosine => AttentionScore::Cosine,
        }
    }
}

/// `[objective]` with `kind = "mipic"`: a preset, the variant, then overrides.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MipicSection {
    /// A [`MipicPreset`] name. Without one, `dims`, `sia_layers` and `chain` are required.
    #[serde(default)]
    pub preset: Option<String>,
    /// `paper` (default) or `notebook`.
    #[serde(default)]
    pub variant: MipicVariant,
    /// Nested dims, strictly increasing, ending at the hidden size.
    #[serde(default)]
    pub dims: Option<Vec<usize>>,
    /// The one temperature (MRL, SIA attention, PIC). Default `0.05`.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// `α`.
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Weight of `L_MRL` instead of `α` (`1.0`: MRL at full weight, auxiliaries on top).
    #[serde(default)]
    pub mrl_weight: Option<f64>,
    /// `λ_att`.
    #[serde(default)]
    pub lambda_att: Option<f64>,
    /// `scaled` (Eq. 4, default) or `cosine` (L2-normalised states) attention-KL scores.
    #[serde(default)]
    pub att_score: Option<AttScoreKey>,
    /// `λ_cka`.
    #[serde(default)]
    pub lambda_cka: Option<f64>,
    /// `λ_pic`.
    #[serde(default)]
    pub lambda_pic: Option<f64>,
    /// SIA layers (hidden-state indices, 0 = embeddings).
    #[serde(default)]
    pub sia_layers: Option<Vec<usize>>,
    /// PIC chain of `[dim, layer]`.
    #[serde(default)]
    pub chain: Option<Vec<(usize, usize)>>,
    /// Detach the full-width side of SIA.
    #[serde(default)]
    pub detach_teacher: Option<bool>,
    /// Sum or mean over MRL dims, SIA terms and PIC links.
    #[serde(default)]
    pub aggregation: Option<AggregationKey>,
    /// MRL dims sampled per step (default: every dim; SIA and PIC keep every dim).
    #[serde(default)]
    pub mrl_dims_per_step: Option<usize>,
    /// PIC curriculum length in steps (link `i` of `n` joins at `i · W / n`). Default `0`.
    #[serde(default)]
    pub pic_warmup_steps: Option<usize>,
}

/// The built MIPIC objective (lifts and projectors are parameters).
#[derive(Module, Debug)]
pub struct MipicObjective {
    /// The loss.
    pub loss: MipicLoss,
    /// Pooling of the last layer.
    #[module(skip)]
    pub pooling: Pooling,
}

impl MipicSection {
    fn preset(&self) -> Result<Option<MipicPreset>> {
        match &self.preset {
            None => Ok(None),
            Some(name) => MipicPreset::from_name(name).map(Some).ok_or_else(|| {
                let names: Vec<&str> = MipicPreset::ALL.iter().map(|p| p.name()).collect();
                bad(
                    "objective.preset",
                    format!("unknown preset `{name}` (known: {})", names.join(", ")),
                )
            }),
        }
    }

    /// Whether dims, SIA layers and chain are all given (no preset needed).
    fn explicit(&self) -> bool {
        self.dims.is_some() && self.sia_layers.is_some() && self.chain.is_some()
    }

    /// The `MipicConfig` for a model of `hidden_size`, `num_layers`, pooling `pooling`: the
    /// preset, the variant, then every override; validated by `mrl-core`.
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`](crate::TrainError::ConfigValue) naming the key.
    pub fn config(
        &self,
        hidden_size: usize,
        num_layers: usize,
        pooling: Pooling,
    ) -> Result<MipicConfig> {
        self.checked_config(hidden_size, Some(num_layers), pooling)
    }

    /// [`MipicSection::config`]; without `num_layers` the layers are not checked against a
    /// model (config-time validation).
    fn checked_config(
        &self,
        hidden_size: usize,
        num_layers: Option<usize>,
        pooling: Pooling,
    ) -> Result<MipicConfig> {
        check_positive("temperature", self.temperature)?;
        let preset = self.preset()?;
        let preset_name = preset.map(|p| p.name()).unwrap_or("(none)");
        if let Some(p) = preset {
            let preset_hidden = p.config().hidden_size;
            if preset_hidden != hidden_size && !self.explicit() {
                return Err(bad(
                    "objective.preset",
                    format!(
                        "preset `{}` is for hidden size {preset_hidden}, the model has \
                         {hidden_size}; set `dims`, `sia_layers` and `chain` for this model",
                        p.name()
                    ),
                ));
            }
        }
        let mut config = preset.map(|p| p.config()).unwrap_or_else(MipicConfig::new);
        if self.variant == MipicVariant::Notebook {
            config = config.notebook();
        }
        config = config.with_hidden_size(hidden_size);
        if let Some(dims) = &self.dims {
            let truncated = dims.iter().filter(|&&d| d < hidden_size).count();
            config = config.with_dims(dims.clone());
            if let SiaCkaSchedule::Paper { gammas, .. } = &config.cka_schedule {
                if gammas.len() != truncated {
                    config = config.with_cka_schedule(SiaCkaSchedule::paper(truncated));
                }
            }
        }
        if let Some(v) = self.temperature {
            config = config.with_temperature(v);
        }
        if let Some(v) = self.alpha {
            config = config.with_alpha(v);
        }
        if let Some(v) = self.mrl_weight {
            config = config.with_mrl_weight(Some(v));
        }
        if let Some(v) = self.lambda_att {
            config = config.with_lambda_att(v);
        }
        if let Some(v) = self.att_score {
            config = config.with_att_score(v.into());
        }
        if let Some(v) = self.lambda_cka {
            config = config.with_lambda_cka(v);
        }
        if let Some(v) = self.lambda_pic {
            config = config.with_lambda_pic(v);
        }
        if let Some(v) = &self.sia_layers {
            config = config.with_sia_layers(v.clone());
        }
        if let Some(v) = &self.chain {
            config = config.with_chain(v.clone());
        }
        if let Some(v) = self.detach_teacher {
            config = config.with_detach_teacher(v);
        }
        if let Some(n) = self.mrl_dims_per_step {
            config = config.with_mrl_dims_per_step(Some(n));
        }
        if let Some(w) = self.pic_warmup_steps {
            config = config.with_pic_warmup_steps(w);
        }
        if let Some(a) = self.aggregation {
            config = config.with_aggregation(a.into());
        }
        config = config.with_pooling(pooling);
        if let Some((num_layers, &l)) = num_layers.and_then(|n| {
            config
                .sia_layers
                .iter()
                .chain(config.chain.iter().map(|(_, l)| l))
                .find(|&&l| l > n)
                .map(|l| (n, l))
        }) {
            let key = if self.sia_layers.as_ref().is_some_and(|v| v.contains(&l)) {
                "objective.sia_layers"
            } else if self
                .chain
                .as_ref()
                .is_some_and(|c| c.iter().any(|p| p.1 == l))
            {
                "objective.chain"
            } else {
                "objective.preset"
            };
            return Err(bad(
                key,
                format!(
                    "layer {l} does not exist: the model has {num_layers} layers (preset \
                     `{preset_name}`)"
                ),
            ));
        }
        config.validate().map_err(config_error)?;
        Ok(config)
    }
}

impl ObjectiveSpec for MipicSection {
    type Objective = MipicObjective;

    fn validate(&self, format: DataFormat) -> Result<()> {
        let preset = self.preset()?;
        if format != DataFormat::Sentences {
            return Err(bad(
                "data.format",
                format!("MIPIC trains on unlabeled sentences (SimCSE views); got {format:?}"),
            ));
        }
        // The width the values are checked against before the model is loaded: the preset's,
        // else the widest dim (the model's is checked again when the objective is built).
        let hidden = match (preset, self.dims.as_ref().and_then(|d| d.last())) {
            (_, Some(&d)) if self.explicit() => d,
            (Some(p), _) => p.config().hidden_size,
            _ => {
                return Err(bad(
                    "objective.preset",
                    format!(
                        "set a preset (one of: {}) or all of `dims`, `sia_layers` and `chain`",
                        MipicPreset::ALL
                            .iter()
                            .map(|p| p.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        self.checked_config(hidden, None, Pooling::Mean).map(|_| ())
    }

    fn build(&self, ctx: &ObjectiveContext) -> Result<MipicObjective> {
        let loss = self
            .config(ctx.hidden_size, ctx.num_layers, ctx.pooling)?
            .with_seed(ctx.seed)
            .try_init(&ctx.device)
            .map_err(config_error)?;
        Ok(MipicObjective {
            loss,
            pooling: ctx.pooling,
        })
    }
}

impl TrainObjective for MipicObjective {
    fn forward(&self, out: &RoleOutputs, step: usize) -> Result<LossTerms> {
        let view = |r: usize| {
            MipicView::pooled(
                out.hidden_states[r].clone(),
                out.masks[r].clone(),
                self.pooling,
            )
        };
        let (a, b) = (view(0)?, view(1)?);
        Ok(loss_terms(&self.loss.try_forward(
            &a,
            &b,
            out.masks[0].clone(),
            step,
        )?))
    }

    fn dims(&self) -> Vec<usize> {
        self.loss.mrl.dims.clone()
    }
}
