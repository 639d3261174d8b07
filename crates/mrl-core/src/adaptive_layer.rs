//! Adaptive-layer loss and 2D Matryoshka: the loss at sampled earlier layers, plus a KL towards
//! the final layer.
//!
//! As sentence-transformers' `AdaptiveLayerLoss` / `Matryoshka2dLoss`, after "2D Matryoshka
//! Sentence Embeddings" (2DMSE), arXiv 2402.14776; MIPIC §6 baseline.

use burn::config::Config;
use burn::module::{Module, ModuleDisplay};
use burn::tensor::activation::log_softmax;
use burn::tensor::Tensor;
use mrl_common::{Pooling, SplitMix64};

use crate::breakdown::LossBreakdown;
use crate::embedding::{EmbeddingInputs, EmbeddingLoss, LayeredInputs};
use crate::error::MrlError;
use crate::matryoshka::{MatryoshkaConfig, MatryoshkaLoss};
use crate::sampling::{salt, sample_indices};

/// Weight of the loss at prior layer `l` (sentence-transformers' `layer_weighting`).
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum LayerWeighting {
    /// 1 for every layer (2DMSE, Starbucks; sentence-transformers' default).
    Uniform,
    /// `1 / (1 + ln(1 + l))` (ESE).
    Log,
    /// `1 / (1 + l)` (sentence-transformers before `layer_weighting` existed).
    Linear,
}

impl LayerWeighting {
    /// The weight of hidden-state index `l`.
    pub fn weight(self, l: usize) -> f64 {
        match self {
            LayerWeighting::Uniform => 1.0,
            LayerWeighting::Log => 1.0 / (1.0 + (1.0 + l as f64).ln()),
            LayerWeighting::Linear => 1.0 / (1.0 + l as f64),
        }
    }
}

/// Configuration of [`AdaptiveLayerLoss`] (defaults = sentence-transformers').
#[derive(Config, Debug)]
pub struct AdaptiveLayerConfig {
    /// Prior layers sampled per step (`0` = every prior layer). Default `1` (2DMSE).
    #[config(default = 1)]
    pub n_layers_per_step: usize,
    /// Weight of the final-layer loss. Default `1`.
    #[config(default = 1.0)]
    pub last_layer_weight: f64,
    /// Weight of the prior-layer losses (averaged over the sampled layers). Default `1`.
    #[config(default = 1.0)]
    pub prior_layers_weight: f64,
    /// Weight of the KL term. Default `1`.
    #[config(default = 1.0)]
    pub kl_div_weight: f64,
    /// Temperature `T` of the KL softmax; `0` disables the KL. Default `0.3`.
    #[config(default = 0.3)]
    pub kl_temperature: f64,
    /// Per-layer weighting of the prior-layer losses. Default uniform.
    #[config(default = "LayerWeighting::Uniform")]
    pub layer_weighting: LayerWeighting,
    /// Pooling of every layer's token states. Default mean.
    #[config(default = "Pooling::Mean")]
    pub pooling: Pooling,
    /// Seed of the per-step layer sampling. Default `42`.
    #[config(default = 42)]
    pub seed: u64,
}

impl AdaptiveLayerConfig {
    /// Wraps `base`.
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`AdaptiveLayerConfig::try_init`].
    pub fn init<L: EmbeddingLoss + Module>(&self, base: L) -> AdaptiveLayerLoss<L> {
        self.try_init(base)
            .unwrap_or_else(|e| panic!("AdaptiveLayerConfig: {e}"))
    }

    /// Wraps `base`, or reports a malformed config.
    ///
    /// # Errors
    /// [`MrlError::InvalidConfig`] naming the field when a weight or the KL temperature is
    /// negative or not finite.
    pub fn try_init<L: EmbeddingLoss + Module>(
        &self,
        base: L,
    ) -> Result<AdaptiveLayerLoss<L>, MrlError> {
        for (field, v) in [
            ("last_layer_weight", self.last_layer_weight),
            ("prior_layers_weight", self.prior_layers_weight),
            ("kl_div_weight", self.kl_div_weight),
            ("kl_temperature", self.kl_temperature),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(MrlError::InvalidConfig {
                    field,
                    reason: format!("must be finite and >= 0, got {v}"),
                });
            }
        }
        Ok(AdaptiveLayerLoss {
            base,
            n_layers_per_step: self.n_layers_per_step,
            last_layer_weight: self.last_layer_weight,
            prior_layers_weight: self.prior_layers_weight,
            kl_div_weight: self.kl_div_weight,
            kl_temperature: self.kl_temperature,
            layer_weighting: self.layer_weighting,
            pooling: self.pooling,
            seed: self.seed,
        })
    }
}

/// 2D Matryoshka (sentence-transformers' `Matryoshka2dLoss`): one sampled dim and one sampled
/// prior layer per step, over `base`.
///
/// `AdaptiveLayerLoss(MatryoshkaLoss(base, dims, n_dims_per_step = 1), n_layers_per_step = 1)`.
pub fn matryoshka_2d<L: EmbeddingLoss + Module + ModuleDisplay>(
    base: L,
    dims: Vec<usize>,
    seed: u64,
) -> AdaptiveLayerLoss<MatryoshkaLoss<L>> {
    let matryoshka = MatryoshkaConfig::new()
        .with_dims(dims)
        .with_n_dims_per_step(Some(1))
        .with_seed(seed)
        .init(base);
    AdaptiveLayerConfig::new().with_seed(seed).init(matryoshka)
}

/// The loss at the final layer and at sampled prior layers, with a KL towards the final layer.
///
/// With `S` the prior layers sampled at this step (hidden-state indices in `0 … L−1`, drawn from
/// `(seed, step)`), `e^(l)` the pooled embeddings of every role at layer `l` concatenated
/// (`N` rows) and `T` the KL temperature:
///
/// ```text
/// L = w_last · L_base(e^(L))
///   + Σ_{l ∈ S} [ w(l) · w_prior / |S| · L_base(e^(l))
///               + w_kl · T · (1/N) Σ_rows KL(softmax(stopgrad(e^(L)) / T) ‖ softmax(e^(l) / T)) ]
/// ```
///
/// exactly as sentence-transformers (KL over the feature axis of the full-width pooled
/// embeddings, `batchmean`, final layer detached, multiplied by `T`).
///
/// # Shapes
/// [`LayeredInputs`]: per role, `[B, m, D]` for every hidden state `0 ..= L`, and a `[B, m]` mask.
#[derive(Module, Debug)]
pub struct AdaptiveLayerLoss<L> {
    /// The wrapped loss (a [`MatryoshkaLoss`] for 2D Matryoshka).
    pub base: L,
    /// Prior layers per step (`0` = all).
    #[module(skip)]
    pub n_layers_per_step: usize,
    /// Weight of the final-layer loss.
    #[module(skip)]
    pub last_layer_weight: f64,
    /// Weight of the prior-layer losses.
    #[module(skip)]
    pub prior_layers_weight: f64,
    /// Weight of the KL.
    #[module(skip)]
    pub kl_div_weight: f64,
    /// KL temperature (0 = off).
    #[module(skip)]
    pub kl_temperature: f64,
    /// Per-layer weighting.
    #[module(skip)]
    pub layer_weighting: LayerWeighting,
    /// Pooling.
    #[module(skip)]
    pub pooling: Pooling,
    /// Seed of the layer sampling.
    #[module(skip)]
    pub seed: u64,
}

/// One sampled prior layer.
#[derive(Debug, Clone)]
pub struct AdaptiveLayerTerm {
    /// Hidden-state index.
    pub layer: usize,
    /// `w(l)` of the layer weighting.
    pub weight: f64,
    /// The base loss at this layer (unweighted), `[1]`.
    pub loss: Tensor<1>,
    /// The KL towards the final layer (unweighted, before `× T`), `[1]`; `None` when `T = 0`.
    pub kl: Option<Tensor<1>>,
}

/// The total and every term of an adaptive-layer loss.
#[derive(Debug, Clone)]
pub struct AdaptiveLayerBreakdown {
    /// Total, `[1]`, differentiable.
    pub total: Tensor<1>,
    /// The base loss at the final layer (unweighted), `[1]`.
    pub last_layer: Tensor<1>,
    /// The sampled prior layers, ascending.
    pub layers: Vec<AdaptiveLayerTerm>,
}

impl LossBreakdown for AdaptiveLayerBreakdown {
    fn total(&self) -> Tensor<1> {
        self.total.clone()
    }

    fn named_terms(&self) -> Vec<(String, Tensor<1>)> {
        let mut out = vec![
            ("adaptive/total".to_string(), self.total.clone()),
            ("adaptive/last_layer".to_string(), self.last_layer.clone()),
        ];
        for t in &self.layers {
            out.push((format!("adaptive/layer_{}/loss", t.layer), t.loss.clone()));
            if let Some(kl) = &t.kl {
                out.push((format!("adaptive/layer_{}/kl", t.layer), kl.clone()));
            }
        }
        out
    }
}

impl<L: EmbeddingLoss + Module> AdaptiveLayerLoss<L> {
    /// The prior layers (hidden-state indices `< last`) used at `step`, ascending.
    pub fn sampled_layers(&self, last: usize, step: u64) -> Vec<usize> {
        let k = if self.n_layers_per_step == 0 {
            last
        } else {
            self.n_layers_per_step
        };
        sample_indices(
            last,
            k,
            &mut SplitMix64::for_step(self.seed, step, salt::LAYERS),
        )
    }

    /// The loss at `step`.
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`AdaptiveLayerLoss::try_forward`].
    pub fn forward(&self, inputs: &LayeredInputs, step: u64) -> AdaptiveLayerBreakdown {
        self.try_forward(inputs, step)
            .unwrap_or_else(|e| panic!("AdaptiveLayerLoss: {e}"))
    }

    /// [`AdaptiveLayerLoss::forward`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::Shape`] / [`MrlError::InvalidLayers`] for malformed inputs, and the errors of
    /// the base loss.
    pub fn try_forward(
        &self,
        inputs: &LayeredInputs,
        step: u64,
    ) -> Result<AdaptiveLayerBreakdown, MrlError> {
        let last = inputs.check()? - 1;
        let final_inputs = inputs.pooled_at(last, self.pooling)?;
        let last_layer = self.base.embedding_loss(&final_inputs, step)?;
        let mut total = last_layer.clone().mul_scalar(self.last_layer_weight);
        let t = self.kl_temperature;
        let teacher_log_p =
            (t > 0.0).then(|| log_softmax(concat_rows(&final_inputs).div_scalar(t), 1).detach());
        let layers_used = self.sampled_layers(last, step);
        let count = layers_used.len() as f64;
        let mut layers = Vec::with_capacity(layers_used.len());
        for layer in layers_used {
            let layer_inputs = inputs.pooled_at(layer, self.pooling)?;
            let loss = self.base.embedding_loss(&layer_inputs, step)?;
            let weight = self.layer_weighting.weight(layer);
            total = total
                + loss
                    .clone()
                    .mul_scalar(weight / count * self.prior_layers_weight);
            let kl = teacher_log_p.as_ref().map(|lp| {
                let student = concat_rows(&layer_inputs);
                let rows = student.dims()[0] as f64;
                let lq = log_softmax(student.div_scalar(t), 1);
                (lp.clone().exp() * (lp.clone() - lq))
                    .sum()
                    .div_scalar(rows)
            });
            if let Some(kl) = &kl {
                total = total + kl.clone().mul_scalar(t * self.kl_div_weight);
            }
            layers.push(AdaptiveLayerTerm {
                layer,
                weight,
                loss,
                kl,
            });
        }
        Ok(AdaptiveLayerBreakdown {
            total,
            last_layer,
            layers,
        })
    }
}

/// Every role's embeddings stacked along the rows.
fn concat_rows(inputs: &EmbeddingInputs) -> Tensor<2> {
    Tensor::cat(inputs.embeddings.clone(), 0)
}
