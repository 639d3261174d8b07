//! PIC — Progressive Information Chaining (MIPIC §3, Eq. 15–17).
//!
//! A chain of `(dim, layer)` checkpoints, shallow and narrow first, deep and full width last.
//! Each link predicts the next, deeper and wider `[CLS]` prefix from the current one through a
//! small MLP, contrastively. MIPIC: arXiv 2604.24374.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::breakdown::{mean_of, LossBreakdown};
use crate::embedding::in_batch_cross_entropy;
use crate::error::{fmt_shape, MrlError};
use crate::weighting::{aggregate, Aggregation};

/// Configuration of [`PicLoss`].
#[derive(Config, Debug)]
pub struct PicConfig {
    /// `(dim, layer)` checkpoints: dims strictly increasing, layers non-decreasing, at least two.
    /// `layer` is a hidden-state index (`0` = embedding output). Default: the paper's BERT-base
    /// chain `(16,2) (32,4) (64,6) (128,8) (256,9) (512,10) (768,12)`.
    #[config(
        default = "vec![(16, 2), (32, 4), (64, 6), (128, 8), (256, 9), (512, 10), (768, 12)]"
    )]
    pub chain: Vec<(usize, usize)>,
    /// Temperature `τ` of the link InfoNCE. Default `0.05`.
    #[config(default = 0.05)]
    pub temperature: f64,
    /// `Sum` over links (paper) or `Mean` (notebook). Default `Sum`.
    #[config(default = "Aggregation::Sum")]
    pub aggregation: Aggregation,
    /// Curriculum length `W` in steps: link `i` of `n` (0-based, shallowest first) joins the
    /// loss at step `⌊i · W / n⌋`, so the chain grows from the shallow end and is complete from
    /// step `⌊(n − 1) W / n⌋` on. `0` (default, the paper) = every link from step 0.
    #[config(default = 0)]
    pub warmup_steps: usize,
}

impl PicConfig {
    /// Builds the loss and its projectors on `device`.
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`PicConfig::try_init`].
    pub fn init(&self, device: &Device) -> PicLoss {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("PicConfig: {e}"))
    }

    /// Checks the chain and the temperature.
    ///
    /// # Errors
    /// [`MrlError::InvalidChain`] (fewer than two checkpoints, a zero dim, dims not strictly
    /// increasing, layers decreasing), [`MrlError::InvalidConfig`] (temperature).
    pub fn validate(&self) -> Result<(), MrlError> {
        let err = |reason: String| MrlError::InvalidChain {
            chain: self.chain.clone(),
            reason,
        };
        if self.chain.len() < 2 {
            return Err(err(
                "at least two checkpoints are needed to form a link".into()
            ));
        }
        if self.chain.iter().any(|&(d, _)| d == 0) {
            return Err(err("dims must be positive".into()));
        }
        if let Some(w) = self.chain.windows(2).find(|w| w[0].0 >= w[1].0) {
            return Err(err(format!(
                "dims must be strictly increasing along the chain ({} is followed by {})",
                w[0].0, w[1].0
            )));
        }
        if let Some(w) = self.chain.windows(2).find(|w| w[0].1 > w[1].1) {
            return Err(err(format!(
                "layers must not decrease along the chain (layer {} is followed by {})",
                w[0].1, w[1].1
            )));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(MrlError::InvalidConfig {
                field: "temperature",
                reason: format!("must be finite and > 0, got {}", self.temperature),
            });
        }
        Ok(())
    }

    /// Builds the loss, or reports a malformed config (see [`PicConfig::validate`]).
    ///
    /// # Errors
    /// See [`PicConfig::validate`].
    pub fn try_init(&self, device: &Device) -> Result<PicLoss, MrlError> {
        self.validate()?;
        let projectors = self
            .chain
            .windows(2)
            .map(|w| PicProjectorConfig::new(w[0].0, w[1].0).init(device))
            .collect();
        Ok(PicLoss {
            projectors,
            chain: self.chain.clone(),
            temperature: self.temperature,
            aggregation: self.aggregation,
            warmup_steps: self.warmup_steps,
        })
    }
}

/// Configuration of [`PicProjector`].
#[derive(Config, Debug)]
pub struct PicProjectorConfig {
    /// Input width `d_i`.
    pub d_input: usize,
    /// Output width `d_{i+1}`.
    pub d_output: usize,
}

impl PicProjectorConfig {
    /// Hidden width `max(d_i, d_{i+1}) / 2` (at least 1).
    pub fn hidden(&self) -> usize {
        (self.d_input.max(self.d_output) / 2).max(1)
    }

    /// Builds the projector with Burn's default `Linear` initialisation.
    pub fn init(&self, device: &Device) -> PicProjector {
        let h = self.hidden();
        PicProjector {
            fc1: LinearConfig::new(self.d_input, h).init(device),
            fc2: LinearConfig::new(h, self.d_output).init(device),
        }
    }
}

/// `φ(u) = W_2 ReLU(W_1 u + b_1) + b_2`, the projector of one PIC link.
#[derive(Module, Debug)]
pub struct PicProjector {
    /// `d_i → max(d_i, d_{i+1}) / 2`.
    pub fc1: Linear,
    /// `max(d_i, d_{i+1}) / 2 → d_{i+1}`.
    pub fc2: Linear,
}

impl PicProjector {
    /// # Shapes
    /// - `x`: `[B, d_i]`, output `[B, d_{i+1}]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}

/// PIC: each chain link predicts the next (deeper, wider) `[CLS]` prefix.
///
/// For consecutive checkpoints `(d_i, l_i) → (d_{i+1}, l_{i+1})`:
///
/// ```text
/// u = H^(l_i)[:, 0, :d_i],   v = stopgrad(H^(l_{i+1})[:, 0, :d_{i+1}])
/// L_chain^(i) = InfoNCE(norm(φ_i(u)), norm(v); τ)     (in-batch negatives, batch mean)
/// L_PIC = Σ_i L_chain^(i)                              (or the mean over links)
/// ```
///
/// with `φ_i` a [`PicProjector`] (hidden width `max(d_i, d_{i+1}) / 2`). Every link is active
/// from step 0 unless [`PicConfig::warmup_steps`] sets a curriculum: then link `i` of `n` starts
/// at step `⌊i · W / n⌋` ([`PicLoss::link_start`]); the links not started yet are reported with
/// `active = false` and a zero loss, and the total aggregates the active links only.
///
/// # Shapes
/// - `hidden_states[l]`: `[B, m, D]`, `B >= 2`, `D >=` the largest chain dim
#[derive(Module, Debug)]
pub struct PicLoss {
    /// One projector per link.
    pub projectors: Vec<PicProjector>,
    /// `(dim, layer)` checkpoints.
    #[module(skip)]
    pub chain: Vec<(usize, usize)>,
    /// InfoNCE temperature.
    #[module(skip)]
    pub temperature: f64,
    /// Sum or mean over links.
    #[module(skip)]
    pub aggregation: Aggregation,
    /// Curriculum length in steps (`0` = off).
    #[module(skip)]
    pub warmup_steps: usize,
}

/// One link term of PIC.
#[derive(Debug, Clone)]
pub struct PicLinkTerm {
    /// `(dim, layer)` the link starts from.
    pub from: (usize, usize),
    /// `(dim, layer)` the link predicts (detached).
    pub to: (usize, usize),
    /// `L_chain`, `[1]` (zero while the link has not started).
    pub loss: Tensor<1>,
    /// Whether the link is part of the loss at this step (see [`PicConfig::warmup_steps`]).
    pub active: bool,
}

/// The total and every link term of PIC.
#[derive(Debug, Clone)]
pub struct PicBreakdown {
    /// `L_PIC`, `[1]`, differentiable.
    pub total: Tensor<1>,
    /// One entry per link, shallow first.
    pub links: Vec<PicLinkTerm>,
}

impl LossBreakdown for PicBreakdown {
    fn total(&self) -> Tensor<1> {
        self.total.clone()
    }

    fn named_terms(&self) -> Vec<(String, Tensor<1>)> {
        let mut out = vec![("pic/total".to_string(), self.total.clone())];
        out.extend(self.links.iter().map(|t| {
            (
                format!("pic/link_{}@{}->{}@{}", t.from.0, t.from.1, t.to.0, t.to.1),
                t.loss.clone(),
            )
        }));
        out
    }
}

impl PicBreakdown {
    /// The term-wise mean of the breakdowns of several views.
    pub(crate) fn average(views: Vec<PicBreakdown>) -> PicBreakdown {
        let total = mean_of(views.iter().map(|v| v.total.clone()).collect());
        let links = (0..views[0].links.len())
            .map(|k| PicLinkTerm {
                from: views[0].links[k].from,
                to: views[0].links[k].to,
                loss: mean_of(views.iter().map(|v| v.links[k].loss.clone()).collect()),
                active: views[0].links[k].active,
            })
            .collect();
        PicBreakdown { total, links }
    }
}

impl PicLoss {
    /// The step at which link `i` (0-based, shallowest first) joins the loss:
    /// `⌊i · warmup_steps / n_links⌋` (0 for every link without a curriculum).
    pub fn link_start(&self, i: usize) -> usize {
        i * self.warmup_steps / self.projectors.len().max(1)
    }

    /// PIC of one forward pass (one SimCSE view) at training step `step` (the step only
    /// matters with a curriculum, [`PicConfig::warmup_steps`]).
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`PicLoss::try_forward`].
    pub fn forward(&self, hidden_states: &[Tensor<3>], step: usize) -> PicBreakdown {
        self.try_forward(hidden_states, step)
            .unwrap_or_else(|e| panic!("PicLoss: {e}"))
    }

    /// [`PicLoss::forward`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::Shape`] (hidden states of different shapes), [`MrlError::InvalidChain`] (a
    /// chain layer `>=` the number of hidden states, a chain dim `>` D),
    /// [`MrlError::BatchTooSmall`] (`B < 2`).
    pub fn try_forward(
        &self,
        hidden_states: &[Tensor<3>],
        step: usize,
    ) -> Result<PicBreakdown, MrlError> {
        let first = hidden_states.first().ok_or(MrlError::Shape {
            arg: "hidden_states",
            detail: "no hidden state given".into(),
        })?;
        let [batch, len, width] = first.dims();
        if let Some((l, h)) = hidden_states
            .iter()
            .enumerate()
            .find(|(_, h)| h.dims() != [batch, len, width])
        {
            return Err(MrlError::Shape {
                arg: "hidden_states",
                detail: format!(
                    "every hidden state must be {}; hidden state {l} is {}",
                    fmt_shape(&[batch, len, width]),
                    fmt_shape(&h.dims())
                ),
            });
        }
        if let Some(&(d, l)) = self.chain.iter().find(|&&(_, l)| l >= hidden_states.len()) {
            return Err(MrlError::InvalidChain {
                chain: self.chain.clone(),
                reason: format!(
                    "checkpoint ({d}, {l}): layer {l} does not exist, {} hidden states were given \
                     (indices 0..={})",
                    hidden_states.len(),
                    hidden_states.len().saturating_sub(1)
                ),
            });
        }
        if let Some(&(d, l)) = self.chain.iter().find(|&&(d, _)| d > width) {
            return Err(MrlError::InvalidChain {
                chain: self.chain.clone(),
                reason: format!("checkpoint ({d}, {l}): dim {d} exceeds the hidden width {width}"),
            });
        }
        if batch < 2 {
            return Err(MrlError::BatchTooSmall {
                arg: "hidden_states",
                batch,
            });
        }
        let cls_prefix = |l: usize, d: usize| -> Tensor<2> {
            hidden_states[l]
                .clone()
                .slice([0..batch, 0..1, 0..d])
                .reshape([batch, d])
        };
        let links: Vec<PicLinkTerm> = self
            .chain
            .windows(2)
            .zip(&self.projectors)
            .enumerate()
            .map(|(i, (w, projector))| {
                let (from, to) = (w[0], w[1]);
                if step < self.link_start(i) {
                    let device = first.device();
                    let loss = Tensor::<1>::zeros([1], (&device, first.dtype()));
                    return PicLinkTerm {
                        from,
                        to,
                        loss,
                        active: false,
                    };
                }
                let u = cls_prefix(from.1, from.0);
                let v = cls_prefix(to.1, to.0).detach();
                let loss =
                    in_batch_cross_entropy(projector.forward(u), v, 1.0 / self.temperature).mean();
                PicLinkTerm {
                    from,
                    to,
                    loss,
                    active: true,
                }
            })
            .collect();
        let active: Vec<Tensor<1>> = links
            .iter()
            .filter(|t| t.active)
            .map(|t| t.loss.clone())
            .collect();
        let weights = vec![1.0; active.len()];
        let total = aggregate(active, &weights, self.aggregation);
        Ok(PicBreakdown { total, links })
    }
}
