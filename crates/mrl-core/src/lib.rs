//! Matryoshka objectives for [Burn](https://burn.dev) 0.22: MRL, ESE, 2D Matryoshka, and MIPIC.
//!
//! Every loss here takes tensors — per-layer hidden states `[B, m, D]`, an attention mask
//! `[B, m]`, pooled embeddings `[B, D]` — never a model type, so it composes with any encoder:
//! the BERT-family encoders of this workspace's `models` crate, or your own.
//!
//! | loss | file | formula | reference |
//! |---|---|---|---|
//! | [`InfoNceLoss`] | `info_nce.rs` | `−log softmax_j(cos(a_b, p_j)/τ)[b]` | SimCSE, arXiv 2104.08821 |
//! | [`MultipleNegativesRankingLoss`] | `mnrl.rs` | InfoNCE over positives + hard negatives, scale 20 | arXiv 1705.00652 |
//! | [`CosentLoss`] | `cosent.rs` | `log(1 + Σ_{y_i<y_j} exp(s_i − s_j))`, `s = 20 cos` | CoSENT (Su, 2022) |
//! | [`MatryoshkaLoss`] | `matryoshka.rs` | `Σ_d w_d L_base(norm(e[:, :d]))` | MRL, arXiv 2205.13147 |
//! | [`EseLoss`] | `ese.rs` | MRL at the last and one sampled layer, `1/(1+ln(L−l))` | ESE, arXiv 2402.14776 |
//! | [`AdaptiveLayerLoss`] | `adaptive_layer.rs` | loss at sampled layers + KL to the final layer | 2DMSE, arXiv 2402.14776 |
//! | [`SiaLoss`] | `sia.rs` | `Σ_l Σ_i λ_att KL(a_i ‖ a_D) + λ_cka (1 − CKA_topk)` | MIPIC, arXiv 2604.24374 |
//! | [`PicLoss`] | `pic.rs` | `Σ_i InfoNCE(norm(φ_i(u_i)), norm(sg(v_{i+1})))` | MIPIC, arXiv 2604.24374 |
//! | [`MipicLoss`] | `mipic.rs` | `α L_MRL + (1 − α)(L_SIA + λ_pic L_PIC)` | MIPIC, arXiv 2604.24374 |
//!
//! # Conventions
//! - Burn's: `XConfig` (`#[derive(Config)]`, defaults = the paper's) → `init()` (or
//!   `init(&device)` when the loss owns parameters: SIA lifts, PIC projectors) →
//!   `#[derive(Module)]`; per-example losses have `forward(.., Reduction)` and
//!   `forward_no_reduction`.
//! - Bad input is reported with [`MrlError`], which names the argument and the shapes: the
//!   `try_` methods return it, the plain ones panic with its message.
//! - Multi-term losses return a breakdown ([`MrlBreakdown`], [`SiaBreakdown`], [`PicBreakdown`],
//!   [`MipicBreakdown`], …): a differentiable `total` and every term as a `[1]` tensor; the
//!   [`LossBreakdown`] trait names them and reads them all as `f64` in one device sync.
//! - Modifiers that sample (dims, layers) are stateless: the subset is a function of the seed and
//!   the `step` argument, so runs replay exactly and losses shard by batch.
//! - Top-k CKA runs through [`cka_kernels::top_k_cka`]: fused `#[cube]` kernels with a
//!   hand-written backward on CubeCL devices (`wgpu` feature), the same algorithm in tensor ops
//!   on NdArray / Flex.
//!
//! # Example: MIPIC on the hidden states of an encoder
//! An encoder in train mode is run twice on the same batch (dropout makes the two SimCSE
//! views); its hidden states `H^(0) … H^(L)` and pooled vectors feed [`MipicLoss`]. With the
//! `models` crate's BERT encoder the hidden states come from its forward pass; here they are
//! random tensors of the right shapes.
//!
//! ```
//! # fn main() -> Result<(), mrl_core::MrlError> {
//! use burn::tensor::{Device, Distribution, Tensor};
//! use mrl_core::{LossBreakdown, MipicConfig, MipicView, Pooling, SiaCkaSchedule};
//!
//! # #[cfg(feature = "flex")]
//! let device = Device::flex().autodiff();
//! # #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
//! # #[allow(deprecated)]
//! # let device = Device::ndarray().autodiff();
//! // A toy 4-layer encoder of width 64: dims 8 < 16 < 32 < 64.
//! let config = MipicConfig::new()
//!     .with_hidden_size(64)
//!     .with_dims(vec![8, 16, 32, 64])
//!     .with_sia_layers(vec![2, 4])
//!     .with_chain(vec![(8, 1), (16, 2), (32, 3), (64, 4)])
//!     .with_cka_schedule(SiaCkaSchedule::paper(3));
//! let loss = config.init(&device); // lifts + projectors: train them with the encoder
//!
//! let (batch, len) = (4, 10);
//! let mask = Tensor::<2>::ones([batch, len], &device);
//! let encode = || -> Vec<Tensor<3>> {
//!     (0..=4)
//!         .map(|_| Tensor::random([batch, len, 64], Distribution::Normal(0.0, 1.0), &device).require_grad())
//!         .collect()
//! };
//! let view_a = MipicView::pooled(encode(), mask.clone(), Pooling::Cls)?;
//! let view_b = MipicView::pooled(encode(), mask.clone(), Pooling::Cls)?;
//!
//! let out = loss.try_forward(&view_a, &view_b, mask, 0)?; // at step 0
//! let _grads = out.total.backward();
//! for (name, value) in out.to_f64() {
//!     assert!(value.is_finite(), "{name}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Presets
//! [`MipicPreset`] holds the paper's settings for TinyBERT-6L, BERT-base, BGE-M3 and
//! Qwen3-Embedding-0.6B, and our MiniLM-L6 default; the same configs are TOML files under
//! `crates/mrl-core/presets/`. [`MipicConfig::notebook`] switches any of them to the authors' notebook
//! variant.
//!
//! # Features
//! `ndarray` and `flex` (default) enable those CPU backends here and in `cka-kernels`; `wgpu`
//! enables the fused CKA kernels on WebGPU/Vulkan devices, `cuda` on CUDA devices.
#![forbid(unsafe_code)]

mod adaptive_layer;
mod breakdown;
mod cosent;
mod embedding;
mod error;
mod ese;
mod info_nce;
mod matryoshka;
mod mipic;
mod mnrl;
mod pic;
mod presets;
mod sampling;
mod sia;
mod weighting;

pub use adaptive_layer::{
    matryoshka_2d, AdaptiveLayerBreakdown, AdaptiveLayerConfig, AdaptiveLayerLoss,
    AdaptiveLayerTerm, LayerWeighting,
};
pub use breakdown::LossBreakdown;
pub use cosent::{CosentLoss, CosentLossConfig};
pub use embedding::{EmbeddingInputs, EmbeddingLoss, LayeredInputs};
pub use error::MrlError;
pub use ese::{EseBreakdown, EseConfig, EseLayerTerm, EseLoss};
pub use info_nce::{InfoNceLoss, InfoNceLossConfig};
pub use matryoshka::{DimTerm, MatryoshkaConfig, MatryoshkaLoss, MrlBreakdown};
pub use mipic::{MipicBreakdown, MipicConfig, MipicLoss, MipicView};
pub use mnrl::{MultipleNegativesRankingLoss, MultipleNegativesRankingLossConfig};
pub use pic::{PicBreakdown, PicConfig, PicLinkTerm, PicLoss, PicProjector, PicProjectorConfig};
pub use presets::MipicPreset;
pub use sia::{AttentionScore, SiaBreakdown, SiaCkaSchedule, SiaConfig, SiaLoss, SiaTerm};
pub use weighting::{Aggregation, DimWeights};

// Pooling and the Matryoshka truncation are shared with `models`: one definition, in
// `mrl-common`.
pub use mrl_common::{l2_normalize, pool, truncate_normalize, CommonError, Pooling, NORM_EPS};
