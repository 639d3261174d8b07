//! The objectives `mrl train` knows, one file each. A file owns its `[objective]` section (a
//! struct the TOML deserialises into, tagged by `kind`), builds its loss from that section and
//! the model's shape ([`ObjectiveSpec`]), and runs it on a batch of backbone outputs
//! ([`TrainObjective`]). The loss itself — formula, validation, breakdown — is `mrl-core`'s;
//! errors of `mrl-core`'s validation are reported under the TOML key ([`config_error`]).
//!
//! Adding an objective: a new file here with its section and its objective, and one line in
//! the `objectives!` registration at the bottom of this file.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use mrl_core::{EmbeddingInputs, LayeredInputs, LossBreakdown, MrlError, Pooling};
use serde::{Deserialize, Serialize};

use crate::config::bad;
use crate::embedding::config::DataFormat;
use crate::error::{Result, TrainError};
use crate::trainer::LossTerms;

pub mod base_loss;
pub mod ese;
pub mod mipic;
pub mod mrl;
pub mod two_d;

pub use base_loss::BaseLoss;

/// The backbone outputs of one batch, one entry per role (SimCSE: the two dropout views of the
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

impl RoleOutputs {
    /// The labels as a tensor on the masks' device.
    pub fn label_tensor(&self) -> Option<Tensor<1>> {
        self.labels.as_ref().map(|l| {
            let device = self.masks[0].device();
            Tensor::<1>::from_data(TensorData::new(l.clone(), [l.len()]), &device)
        })
    }

    /// Every role pooled at the last layer.
    ///
    /// # Errors
    /// [`TrainError::Loss`] when the shapes do not fit the pooling.
    pub fn pooled(&self, pooling: Pooling) -> Result<EmbeddingInputs> {
        let embeddings = self
            .hidden_states
            .iter()
            .zip(&self.masks)
            .map(|(hs, mask)| {
                mrl_core::pool(
                    hs.last().expect("hidden states").clone(),
                    mask.clone(),
                    pooling,
                )
                .map_err(mrl_core::MrlError::from)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(EmbeddingInputs {
            embeddings,
            labels: self.label_tensor(),
        })
    }

    /// Every role at every layer (for layer-wise objectives).
    pub fn layered(&self) -> LayeredInputs {
        LayeredInputs {
            hidden_states: self.hidden_states.clone(),
            masks: self.masks.clone(),
            labels: self.label_tensor(),
        }
    }
}

/// What an objective is built against: the model's shape, the data and the run.
#[derive(Debug, Clone)]
pub struct ObjectiveContext {
    /// The backbone's hidden size (the widest dim).
    pub hidden_size: usize,
    /// The backbone's number of layers (hidden states `0 ..= num_layers`).
    pub num_layers: usize,
    /// The pooling the backbone is trained and evaluated with.
    pub pooling: Pooling,
    /// The data format (chooses the base loss).
    pub format: DataFormat,
    /// The run's seed (the losses' per-step sampling).
    pub seed: u64,
    /// Where the objective's own parameters (if any) are created.
    pub device: Device,
}

/// A `[objective]` section: checked without the model, built with it.
pub trait ObjectiveSpec {
    /// The objective this section builds.
    type Objective: TrainObjective;

    /// Checks what can be checked before the model is loaded (value ranges, data format).
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] naming the `objective.*` (or `data.*`) key.
    fn validate(&self, format: DataFormat) -> Result<()>;

    /// Builds the objective for the model of `ctx`.
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] naming the `objective.*` key when a value does not fit the
    /// model (dims above the hidden size, layers beyond its depth, …).
    fn build(&self, ctx: &ObjectiveContext) -> Result<Self::Objective>;
}

/// A built objective: the loss of one batch and the dims it trains.
pub trait TrainObjective: Module {
    /// The loss breakdown of one batch at 0-based `step`.
    ///
    /// # Errors
    /// [`TrainError::Loss`] when the loss rejects the shapes (a bug, or a batch of one).
    fn forward(&self, out: &RoleOutputs, step: usize) -> Result<LossTerms>;

    /// The nested dims, ascending.
    fn dims(&self) -> Vec<usize>;

    /// Backbone passes per role: two for SimCSE (two dropout views), else one.
    fn views(&self, format: DataFormat) -> usize {
        match format {
            DataFormat::Sentences => 2,
            _ => 1,
        }
    }
}

/// A loss breakdown as [`LossTerms`].
pub fn loss_terms(b: &dyn LossBreakdown) -> LossTerms {
    LossTerms {
        total: b.total(),
        terms: b.named_terms(),
        items: 0,
    }
}

/// How the terms of a multi-term loss are combined (`sum`, the paper; `mean`, the MIPIC
/// notebook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregationKey {
    /// `Σ_t w_t L_t`.
    Sum,
    /// `Σ_t w_t L_t / Σ_t w_t`.
    Mean,
}

impl From<AggregationKey> for mrl_core::Aggregation {
    fn from(a: AggregationKey) -> Self {
        match a {
            AggregationKey::Sum => mrl_core::Aggregation::Sum,
            AggregationKey::Mean => mrl_core::Aggregation::Mean,
        }
    }
}

/// The `objective.*` key an `mrl-core` error is about, and the error under that key.
pub fn config_error(e: MrlError) -> TrainError {
    let field = match &e {
        MrlError::InvalidDims { .. } => "dims",
        MrlError::InvalidLayers { arg, .. } if *arg == "layers" => "sia_layers",
        MrlError::InvalidLayers { arg, .. } => arg,
        MrlError::InvalidChain { .. } => "chain",
        MrlError::InvalidConfig { field, .. } => field,
        MrlError::Shape { arg, .. } | MrlError::BatchTooSmall { arg, .. } => arg,
        MrlError::Cka(_) => "dims",
    };
    bad(&format!("objective.{field}"), e.to_string())
}

/// A positive, finite value (InfoNCE panics on any other temperature).
pub(crate) fn check_positive(key: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(bad(
            &format!("objective.{key}"),
            format!("must be > 0, got {v}"),
        )),
        _ => Ok(()),
    }
}

/// Dims of a section, or the ladder of the model, checked against the hidden size.
pub(crate) fn dims_for(dims: &Option<Vec<usize>>, hidden_size: usize) -> Result<Vec<usize>> {
    let dims = dims
        .clone()
        .unwrap_or_else(|| mrl_common::nested_dims(hidden_size));
    if dims.last() != Some(&hidden_size) {
        return Err(bad(
            "objective.dims",
            format!(
                "must end at the model's hidden size {hidden_size} (the full-width embedding), got {dims:?}"
            ),
        ));
    }
    Ok(dims)
}

/// Registers the objectives: the `[objective]` section enum (tagged by `kind`) and the built
/// objective enum (a Burn module), with their dispatch.
macro_rules! objectives {
    ($( $variant:ident => $kind:literal, $section:ty, $objective:ty; )+) => {
        /// `[objective]`: `kind` chooses the objective; the other keys are that objective's.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum ObjectiveSection {
            $(
                #[doc = concat!("`kind = \"", $kind, "\"`.")]
                #[serde(rename = $kind)]
                $variant($section),
            )+
        }

        /// A built objective (its parameters, if any, are trained with the backbone in a
        /// second parameter group).
        #[derive(Module, Debug)]
        #[allow(clippy::large_enum_variant)]
        pub enum Objective {
            $(
                #[doc = concat!("Built from `kind = \"", $kind, "\"`.")]
                $variant($objective),
            )+
        }

        impl ObjectiveSection {
            /// The `kind` of this section.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( ObjectiveSection::$variant(_) => $kind, )+
                }
            }

            /// Every `kind`, for messages.
            pub const KINDS: &'static [&'static str] = &[$( $kind ),+];

            /// See [`ObjectiveSpec::validate`].
            ///
            /// # Errors
            /// As [`ObjectiveSpec::validate`].
            pub fn validate(&self, format: DataFormat) -> Result<()> {
                match self {
                    $( ObjectiveSection::$variant(s) => s.validate(format), )+
                }
            }

            /// See [`ObjectiveSpec::build`].
            ///
            /// # Errors
            /// As [`ObjectiveSpec::build`].
            pub fn build(&self, ctx: &ObjectiveContext) -> Result<Objective> {
                Ok(match self {
                    $( ObjectiveSection::$variant(s) => Objective::$variant(s.build(ctx)?), )+
                })
            }
        }

        impl Objective {
            /// See [`TrainObjective::forward`].
            ///
            /// # Errors
            /// As [`TrainObjective::forward`].
            pub fn forward(&self, out: &RoleOutputs, step: usize) -> Result<LossTerms> {
                match self {
                    $( Objective::$variant(o) => o.forward(out, step), )+
                }
            }

            /// See [`TrainObjective::dims`].
            pub fn dims(&self) -> Vec<usize> {
                match self {
                    $( Objective::$variant(o) => o.dims(), )+
                }
            }

            /// See [`TrainObjective::views`].
            pub fn views(&self, format: DataFormat) -> usize {
                match self {
                    $( Objective::$variant(o) => o.views(format), )+
                }
            }
        }
    };
}

objectives! {
    Mrl => "mrl", mrl::MrlSection, mrl::MrlObjective;
    Ese => "ese", ese::EseSection, ese::EseObjective;
    TwoD => "2d", two_d::TwoDSection, two_d::TwoDObjective;
    Mipic => "mipic", mipic::MipicSection, mipic::MipicObjective;
}
