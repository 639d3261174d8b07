//! `kind = "mrl"` — Matryoshka Representation Learning (Kusupati et al., arXiv 2205.13147):
//! the base loss at every nested dim, `L = Σ_d w_d · L_base(normalize(e[:, :d]))`
//! (`aggregation = "mean"` divides by `Σ_d w_d`), over the last layer's pooled embeddings.
//! The loss is [`mrl_core::MatryoshkaLoss`].
//!
//! ```toml
//! [objective]
//! kind = "mrl"
//! dims = [8, 16, 32, 64, 128, 256, 384]   # default: powers of two from 8, then the width
//! temperature = 0.05                      # InfoNCE (SimCSE) temperature
//! aggregation = "sum"                     # sum | mean
//! ```

use burn::module::Module;
use mrl_core::{MatryoshkaConfig, MatryoshkaLoss, Pooling};
use serde::{Deserialize, Serialize};

use super::{
    check_positive, config_error, dims_for, loss_terms, AggregationKey, BaseLoss, ObjectiveContext,
    ObjectiveSpec, RoleOutputs, TrainObjective,
};
use crate::embedding::config::DataFormat;
use crate::error::Result;
use crate::trainer::LossTerms;

/// `[objective]` with `kind = "mrl"`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MrlSection {
    /// Nested dims, strictly increasing, ending at the hidden size. Default: every power of
    /// two from 8 below the hidden size, and the hidden size.
    #[serde(default)]
    pub dims: Option<Vec<usize>>,
    /// InfoNCE temperature (sentences). Default `0.05`.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Sum (default) or mean over dims.
    #[serde(default)]
    pub aggregation: Option<AggregationKey>,
}

/// The built MRL objective.
#[derive(Module, Debug)]
pub struct MrlObjective {
    /// The loss.
    pub loss: MatryoshkaLoss<BaseLoss>,
    /// Pooling of the last layer.
    #[module(skip)]
    pub pooling: Pooling,
}

impl MrlSection {
    /// The loss over `dims`, validated by `mrl-core`.
    fn loss(
        &self,
        format: DataFormat,
        dims: Vec<usize>,
        seed: u64,
    ) -> Result<MatryoshkaLoss<BaseLoss>> {
        check_positive("temperature", self.temperature)?;
        let base = BaseLoss::new(format, self.temperature.unwrap_or(0.05));
        MatryoshkaConfig::new()
            .with_dims(dims)
            .with_seed(seed)
            .with_aggregation(self.aggregation.unwrap_or(AggregationKey::Sum).into())
            .try_init(base)
            .map_err(config_error)
    }
}

impl ObjectiveSpec for MrlSection {
    type Objective = MrlObjective;

    fn validate(&self, format: DataFormat) -> Result<()> {
        self.loss(format, self.dims.clone().unwrap_or_else(|| vec![8]), 0)
            .map(|_| ())
    }

    fn build(&self, ctx: &ObjectiveContext) -> Result<MrlObjective> {
        let dims = dims_for(&self.dims, ctx.hidden_size)?;
        Ok(MrlObjective {
            loss: self.loss(ctx.format, dims, ctx.seed)?,
            pooling: ctx.pooling,
        })
    }
}

impl TrainObjective for MrlObjective {
    fn forward(&self, out: &RoleOutputs, step: usize) -> Result<LossTerms> {
        let inputs = out.pooled(self.pooling)?;
        Ok(loss_terms(&self.loss.try_forward(&inputs, step as u64)?))
    }

    fn dims(&self) -> Vec<usize> {
        self.loss.dims.clone()
    }
}
