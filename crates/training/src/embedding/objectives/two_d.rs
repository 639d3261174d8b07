//! `kind = "2d"` — 2D Matryoshka (sentence-transformers' `Matryoshka2dLoss`, after 2DMSE,
//! arXiv 2402.14776): per step one sampled dim and `n_layers_per_step` sampled prior layers,
//! plus a KL from each prior layer to the last (temperature `kl_temperature`). The loss is
//! [`mrl_core::AdaptiveLayerLoss`] over [`mrl_core::MatryoshkaLoss`] (`n_dims_per_step = 1`).
//!
//! ```toml
//! [objective]
//! kind = "2d"
//! dims = [8, 16, 32, 64, 128, 256, 384]   # default: powers of two from 8, then the width
//! temperature = 0.05
//! n_layers_per_step = 1
//! kl_temperature = 0.3
//! ```

use burn::module::Module;
use mrl_core::{AdaptiveLayerConfig, AdaptiveLayerLoss, MatryoshkaConfig, MatryoshkaLoss, Pooling};
use serde::{Deserialize, Serialize};

use super::{
    check_positive, config_error, dims_for, loss_terms, BaseLoss, ObjectiveContext, ObjectiveSpec,
    RoleOutputs, TrainObjective,
};
use crate::embedding::config::DataFormat;
use crate::error::Result;
use crate::trainer::LossTerms;

/// `[objective]` with `kind = "2d"`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoDSection {
    /// Nested dims, strictly increasing, ending at the hidden size. Default: the ladder.
    #[serde(default)]
    pub dims: Option<Vec<usize>>,
    /// InfoNCE temperature (sentences). Default `0.05`.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Prior layers sampled per step (`0` = every prior layer). Default `1`.
    #[serde(default)]
    pub n_layers_per_step: Option<usize>,
    /// KL temperature. Default `0.3`.
    #[serde(default)]
    pub kl_temperature: Option<f64>,
}

/// The built 2D objective.
#[derive(Module, Debug)]
pub struct TwoDObjective {
    /// The loss (it pools every layer itself).
    pub loss: AdaptiveLayerLoss<MatryoshkaLoss<BaseLoss>>,
}

impl TwoDSection {
    /// The loss over `dims`, validated by `mrl-core`.
    fn loss(
        &self,
        format: DataFormat,
        dims: Vec<usize>,
        pooling: Pooling,
        seed: u64,
    ) -> Result<AdaptiveLayerLoss<MatryoshkaLoss<BaseLoss>>> {
        check_positive("temperature", self.temperature)?;
        let base = BaseLoss::new(format, self.temperature.unwrap_or(0.05));
        let matryoshka = MatryoshkaConfig::new()
            .with_dims(dims)
            .with_n_dims_per_step(Some(1))
            .with_seed(seed)
            .try_init(base)
            .map_err(config_error)?;
        let mut config = AdaptiveLayerConfig::new()
            .with_seed(seed)
            .with_pooling(pooling);
        if let Some(n) = self.n_layers_per_step {
            config = config.with_n_layers_per_step(n);
        }
        if let Some(t) = self.kl_temperature {
            config = config.with_kl_temperature(t);
        }
        config.try_init(matryoshka).map_err(config_error)
    }
}

impl ObjectiveSpec for TwoDSection {
    type Objective = TwoDObjective;

    fn validate(&self, format: DataFormat) -> Result<()> {
        let dims = self.dims.clone().unwrap_or_else(|| vec![8]);
        self.loss(format, dims, Pooling::Mean, 0).map(|_| ())
    }

    fn build(&self, ctx: &ObjectiveContext) -> Result<TwoDObjective> {
        let dims = dims_for(&self.dims, ctx.hidden_size)?;
        Ok(TwoDObjective {
            loss: self.loss(ctx.format, dims, ctx.pooling, ctx.seed)?,
        })
    }
}

impl TrainObjective for TwoDObjective {
    fn forward(&self, out: &RoleOutputs, step: usize) -> Result<LossTerms> {
        Ok(loss_terms(
            &self.loss.try_forward(&out.layered(), step as u64)?,
        ))
    }

    fn dims(&self) -> Vec<usize> {
        self.loss.base.dims.clone()
    }
}
