//! The loss of a run, built from `[objective]` and the encoder's shape, and its forward pass
//! over one batch of encoder outputs.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use mrl_core::{
    matryoshka_2d, AdaptiveLayerLoss, Aggregation, CosentLoss, CosentLossConfig, DimWeights,
    EmbeddingInputs, EmbeddingLoss, EseConfig, EseLoss, InfoNceLoss, InfoNceLossConfig,
    LayeredInputs, LossBreakdown, MatryoshkaConfig, MatryoshkaLoss, MipicConfig, MipicLoss,
    MipicPreset, MipicView, MrlError, MultipleNegativesRankingLoss,
    MultipleNegativesRankingLossConfig, Pooling, SiaCkaSchedule,
};

use crate::config::{DataFormat, ObjectiveKind, ObjectiveSection};
use crate::error::{Result, TrainError};

/// The base loss under the Matryoshka modifiers, chosen by the data format: InfoNCE for
/// sentences (SimCSE), MNRL for pairs and triplets, CoSENT for scored pairs.
#[derive(Module, Debug)]
pub struct BaseLoss {
    /// InfoNCE (SimCSE).
    pub info_nce: InfoNceLoss,
    /// Multiple-negatives ranking.
    pub mnrl: MultipleNegativesRankingLoss,
    /// CoSENT.
    pub cosent: CosentLoss,
    /// Which of the three is used.
    #[module(skip)]
    pub format: DataFormat,
}

impl EmbeddingLoss for BaseLoss {
    fn embedding_loss(
        &self,
        inputs: &EmbeddingInputs,
        step: u64,
    ) -> std::result::Result<Tensor<1>, MrlError> {
        match self.format {
            DataFormat::Sentences => self.info_nce.embedding_loss(inputs, step),
            DataFormat::Pairs | DataFormat::Triplets => self.mnrl.embedding_loss(inputs, step),
            DataFormat::ScoredPairs => self.cosent.embedding_loss(inputs, step),
        }
    }
}

/// The loss of a run.
#[derive(Debug)]
pub enum Objective {
    /// Matryoshka over the base loss.
    Mrl(MatryoshkaLoss<BaseLoss>),
    /// ESE.
    Ese(EseLoss<BaseLoss>),
    /// 2D Matryoshka.
    TwoD(AdaptiveLayerLoss<MatryoshkaLoss<BaseLoss>>),
    /// MIPIC (has trainable lifts and projectors).
    Mipic(MipicLoss),
}

/// The encoder outputs of one batch, one entry per role (SimCSE: the two dropout views of the
/// same sentences).
#[derive(Debug, Clone)]
pub struct RoleOutputs {
    /// `hidden_states[role][l]`: `[B, m_role, D]`, `l = 0 ..= L`.
    pub hidden_states: Vec<Vec<Tensor<3>>>,
    /// `masks[role]`: `[B, m_role]`, 1 for a real token.
    pub masks: Vec<Tensor<2>>,
    /// Scores of scored pairs, `[B]`.
    pub labels: Option<Vec<f32>>,
}

/// What a loss returns: the differentiable total and every term by name.
pub struct LossTerms {
    /// `[1]`, differentiable.
    pub total: Tensor<1>,
    /// `(name, [1])` for the total and every term (see [`LossBreakdown::named_terms`]).
    pub terms: Vec<(String, Tensor<1>)>,
}

fn bad(key: &str, message: impl Into<String>) -> TrainError {
    TrainError::ConfigValue {
        key: format!("objective.{key}"),
        message: message.into(),
    }
}

/// The hidden size, then every power of two below it down to 8, ascending.
pub fn default_dims(hidden_size: usize) -> Vec<usize> {
    let mut dims = vec![hidden_size];
    let mut p = 8;
    while p < hidden_size {
        dims.push(p);
        p *= 2;
    }
    dims.sort_unstable();
    dims
}

fn parse_aggregation(s: &Option<String>) -> Option<Aggregation> {
    s.as_deref().map(|a| match a {
        "mean" => Aggregation::Mean,
        _ => Aggregation::Sum,
    })
}

impl Objective {
    /// Builds the loss for an encoder of `hidden_size` and `num_layers`, trained on `format`,
    /// pooling with `pooling`; MIPIC's lifts and projectors are created on `device`.
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] naming the `objective.*` key when the preset or an override
    /// does not fit the model (hidden size, layers) or the loss rejects it.
    pub fn build(
        section: &ObjectiveSection,
        format: DataFormat,
        hidden_size: usize,
        num_layers: usize,
        pooling: Pooling,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let temperature = section.temperature.unwrap_or(0.05);
        let dims = section
            .dims
            .clone()
            .unwrap_or_else(|| default_dims(hidden_size));
        if section.kind != ObjectiveKind::Mipic {
            if let Some(&d) = dims.iter().find(|&&d| d > hidden_size) {
                return Err(bad(
                    "dims",
                    format!("dim {d} exceeds the model's hidden size {hidden_size}"),
                ));
            }
        }
        let base = BaseLoss {
            info_nce: InfoNceLossConfig::new()
                .with_temperature(temperature)
                .init(),
            mnrl: MultipleNegativesRankingLossConfig::new().init(),
            cosent: CosentLossConfig::new().init(),
            format,
        };
        let aggregation = parse_aggregation(&section.aggregation).unwrap_or(Aggregation::Sum);
        let wrap = |key: &'static str| move |e: MrlError| bad(key, e.to_string());
        Ok(match section.kind {
            ObjectiveKind::Mrl => Objective::Mrl(
                MatryoshkaConfig::new()
                    .with_dims(dims)
                    .with_seed(seed)
                    .with_aggregation(aggregation)
                    .try_init(base)
                    .map_err(wrap("dims"))?,
            ),
            ObjectiveKind::Ese => Objective::Ese(
                EseConfig::new()
                    .with_dims(dims)
                    .with_weights(DimWeights::EseLog)
                    .with_pooling(pooling)
                    .with_seed(seed)
                    .with_aggregation(aggregation)
                    .try_init(base)
                    .map_err(wrap("dims"))?,
            ),
            ObjectiveKind::TwoD => {
                let mut loss = matryoshka_2d(base, dims, seed);
                loss.pooling = pooling;
                if let Some(n) = section.n_layers_per_step {
                    loss.n_layers_per_step = n;
                }
                if let Some(t) = section.kl_temperature {
                    loss.kl_temperature = t;
                }
                Objective::TwoD(loss)
            }
            ObjectiveKind::Mipic => Objective::Mipic(
                mipic_config(section, hidden_size, num_layers, pooling)?
                    .with_seed(seed)
                    .try_init(device)
                    .map_err(wrap("preset"))?,
            ),
        })
    }

    /// Whether the objective has its own trainable parameters (MIPIC lifts and projectors).
    pub fn head(&self) -> Option<&MipicLoss> {
        match self {
            Objective::Mipic(m) => Some(m),
            _ => None,
        }
    }

    /// The loss of one batch at `step`.
    ///
    /// # Errors
    /// [`TrainError::Loss`] when the loss rejects the shapes (a bug, or a batch of one).
    pub fn forward(&self, out: &RoleOutputs, pooling: Pooling, step: u64) -> Result<LossTerms> {
        let labels = out.labels.as_ref().map(|l| {
            let device = out.masks[0].device();
            Tensor::<1>::from_data(TensorData::new(l.clone(), [l.len()]), &device)
        });
        let pooled = || -> Result<EmbeddingInputs> {
            let embeddings = out
                .hidden_states
                .iter()
                .zip(&out.masks)
                .map(|(hs, mask)| {
                    mrl_core::pool(
                        hs.last().expect("hidden states").clone(),
                        mask.clone(),
                        pooling,
                    )
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(EmbeddingInputs {
                embeddings,
                labels: labels.clone(),
            })
        };
        let layered = || LayeredInputs {
            hidden_states: out.hidden_states.clone(),
            masks: out.masks.clone(),
            labels: labels.clone(),
        };
        let terms = |b: &dyn LossBreakdown| LossTerms {
            total: b.total(),
            terms: b.named_terms(),
        };
        Ok(match self {
            Objective::Mrl(loss) => terms(&loss.try_forward(&pooled()?, step)?),
            Objective::Ese(loss) => terms(&loss.try_forward(&layered(), step)?),
            Objective::TwoD(loss) => terms(&loss.try_forward(&layered(), step)?),
            Objective::Mipic(loss) => {
                let view = |r: usize| {
                    MipicView::pooled(out.hidden_states[r].clone(), out.masks[r].clone(), pooling)
                };
                let (a, b) = (view(0)?, view(1)?);
                terms(&loss.try_forward(&a, &b, out.masks[0].clone(), step as usize)?)
            }
        })
    }

    /// Number of encoder passes per batch for `format` with this objective: SimCSE runs the
    /// same sentences twice (two dropout views).
    pub fn views(format: DataFormat) -> usize {
        match format {
            DataFormat::Sentences => 2,
            _ => 1,
        }
    }
}

/// The MIPIC config of `[objective]`: the preset (default `minilm-l6` for a 384-wide model),
/// the variant, then every override.
///
/// # Errors
/// [`TrainError::ConfigValue`] when no preset fits, the preset's hidden size differs from the
/// model's, or the result does not validate (dims, SIA layers or chain out of range).
pub fn mipic_config(
    section: &ObjectiveSection,
    hidden_size: usize,
    num_layers: usize,
    model_pooling: Pooling,
) -> Result<MipicConfig> {
    let explicit =
        section.dims.is_some() && section.sia_layers.is_some() && section.chain.is_some();
    let preset = match &section.preset {
        Some(name) => Some(
            MipicPreset::from_name(name)
                .ok_or_else(|| bad("preset", format!("unknown preset `{name}`")))?,
        ),
        None if hidden_size == 384 => Some(MipicPreset::MiniLmL6),
        None if explicit => None,
        None => {
            return Err(bad(
                "preset",
                format!(
                    "no default MIPIC preset for hidden size {hidden_size}; set `preset`, or \
                     all of `dims`, `sia_layers` and `chain`"
                ),
            ))
        }
    };
    let preset_name = preset.map(|p| p.name()).unwrap_or("(none)");
    if let Some(p) = preset {
        let preset_hidden = p.config().hidden_size;
        if preset_hidden != hidden_size && !explicit {
            return Err(bad(
                "preset",
                format!(
                    "preset `{}` is for hidden size {preset_hidden}, the model has {hidden_size}; \
                     set `dims`, `sia_layers` and `chain` for this model",
                    p.name()
                ),
            ));
        }
    }
    let mut config = preset.map(|p| p.config()).unwrap_or_else(MipicConfig::new);
    if section.variant.as_deref() == Some("notebook") {
        config = config.notebook();
    }
    config = config.with_hidden_size(hidden_size);
    if let Some(dims) = &section.dims {
        let truncated = dims.iter().filter(|&&d| d < hidden_size).count();
        config = config.with_dims(dims.clone());
        if let SiaCkaSchedule::Paper { gammas, .. } = &config.cka_schedule {
            if gammas.len() != truncated {
                config = config.with_cka_schedule(SiaCkaSchedule::paper(truncated));
            }
        }
    }
    if let Some(v) = section.temperature {
        config = config.with_temperature(v);
    }
    if let Some(v) = section.alpha {
        config = config.with_alpha(v);
    }
    if let Some(v) = section.lambda_att {
        config = config.with_lambda_att(v);
    }
    if let Some(v) = section.lambda_cka {
        config = config.with_lambda_cka(v);
    }
    if let Some(v) = section.lambda_pic {
        config = config.with_lambda_pic(v);
    }
    if let Some(v) = &section.sia_layers {
        config = config.with_sia_layers(v.clone());
    }
    if let Some(v) = &section.chain {
        config = config.with_chain(v.clone());
    }
    if let Some(v) = section.detach_teacher {
        config = config.with_detach_teacher(v);
    }
    if let Some(n) = section.mrl_dims_per_step {
        config = config.with_mrl_dims_per_step(Some(n));
    }
    if let Some(w) = section.pic_warmup_steps {
        config = config.with_pic_warmup_steps(w);
    }
    if let Some(a) = parse_aggregation(&section.aggregation) {
        config = config.with_aggregation(a);
    }
    config = config.with_pooling(model_pooling);
    if let Some(&l) = config
        .sia_layers
        .iter()
        .chain(config.chain.iter().map(|(_, l)| l))
        .find(|&&l| l > num_layers)
    {
        return Err(bad(
            "preset",
            format!("preset `{preset_name}` uses layer {l}, the model has {num_layers} layers"),
        ));
    }
    config
        .validate()
        .map_err(|e| bad("preset", format!("preset `{preset_name}`: {e}")))?;
    Ok(config)
}
