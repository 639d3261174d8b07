//! `kind = "ese"` — ESE / 2DMSE-style Matryoshka over layers (Li et al., arXiv 2402.14776):
//! MRL at the last layer plus one sampled earlier layer per step, with ESE's logarithmic dim
//! weights. The loss is [`mrl_core::EseLoss`].
//!
//! ```toml
//! [objective]
//! kind = "ese"
//! dims = [8, 16, 32, 64, 128, 256, 384]   # default: powers of two from 8, then the width
//! temperature = 0.05
//! aggregation = "sum"                     # sum | mean
//! ```

use burn::module::Module;
use mrl_core::{DimWeights, EseConfig, EseLoss, Pooling};
use serde::{Deserialize, Serialize};

use super::{
    check_positive, config_error, dims_for, loss_terms, AggregationKey, BaseLoss, ObjectiveContext,
    ObjectiveSpec, RoleOutputs, TrainObjective,
};
use crate::embedding::config::DataFormat;
use crate::error::Result;
use crate::trainer::LossTerms;

/// `[objective]` with `kind = "ese"`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EseSection {
    /// Nested dims, strictly increasing, ending at the hidden size. Default: the ladder.
    #[serde(default)]
    pub dims: Option<Vec<usize>>,
    /// InfoNCE temperature (sentences). Default `0.05`.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Sum (default) or mean over dims.
    #[serde(default)]
    pub aggregation: Option<AggregationKey>,
}

/// The built ESE objective.
#[derive(Module, Debug)]
pub struct EseObjective {
    /// The loss (it pools every layer itself).
    pub loss: EseLoss<BaseLoss>,
}

impl EseSection {
    /// The loss over `dims`, validated by `mrl-core`.
    fn loss(
        &self,
        format: DataFormat,
        dims: Vec<usize>,
        pooling: Pooling,
        seed: u64,
    ) -> Result<EseLoss<BaseLoss>> {
        check_positive("temperature", self.temperature)?;
        let base = BaseLoss::new(format, self.temperature.unwrap_or(0.05));
        EseConfig::new()
            .with_dims(dims)
            .with_weights(DimWeights::EseLog)
            .with_pooling(pooling)
            .with_seed(seed)
            .with_aggregation(self.aggregation.unwrap_or(AggregationKey::Sum).into())
            .try_init(base)
            .map_err(config_error)
    }
}

impl ObjectiveSpec for EseSection {
    type Objective = EseObjective;

    fn validate(&self, format: DataFormat) -> Result<()> {
        let dims = self.dims.clone().unwrap_or_else(|| vec![8]);
        self.loss(format, dims, Pooling::Mean, 0).map(|_| ())
    }

    fn build(&self, ctx: &ObjectiveContext) -> Result<EseObjective> {
        let dims = dims_for(&self.dims, ctx.hidden_size)?;
        Ok(EseObjective {
            loss: self.loss(ctx.format, dims, ctx.pooling, ctx.seed)?,
        })
    }
}

impl TrainObjective for EseObjective {
    fn forward(&self, out: &RoleOutputs, step: usize) -> Result<LossTerms> {
        Ok(loss_terms(
            &self.loss.try_forward(&out.layered(), step as u64)?,
        ))
    }

    fn dims(&self) -> Vec<usize> {
        self.loss.matryoshka.dims.clone()
    }
}
