//! What an embedding loss consumes, and the trait the Matryoshka-style modifiers wrap.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use mrl_common::{l2_normalize, pool, truncate_normalize, Pooling};

use crate::error::{fmt_shape, MrlError};

/// The embeddings (and optional labels) of one batch, by role.
///
/// The meaning of the roles is the base loss's: `[anchor, positive]` for
/// [`InfoNceLoss`](crate::InfoNceLoss), `[anchor, positive, negative_1, ...]` for
/// [`MultipleNegativesRankingLoss`](crate::MultipleNegativesRankingLoss), `[sentence_1,
/// sentence_2]` plus a score per pair for [`CosentLoss`](crate::CosentLoss). Modifiers such as
/// [`MatryoshkaLoss`](crate::MatryoshkaLoss) transform every role the same way (truncate, then
/// re-normalise) and hand the result to the base loss.
#[derive(Debug, Clone)]
pub struct EmbeddingInputs {
    /// One `[B, D]` tensor per role.
    pub embeddings: Vec<Tensor<2>>,
    /// One label per example (`[B]`), for scored-pair losses such as CoSENT.
    pub labels: Option<Tensor<1>>,
}

impl EmbeddingInputs {
    /// `(anchor, positive)` pairs, e.g. the two dropout views of unsupervised SimCSE.
    pub fn pair(anchors: Tensor<2>, positives: Tensor<2>) -> Self {
        Self {
            embeddings: vec![anchors, positives],
            labels: None,
        }
    }

    /// `(anchor, positive, hard negatives...)` tuples.
    pub fn with_negatives(
        anchors: Tensor<2>,
        positives: Tensor<2>,
        negatives: Vec<Tensor<2>>,
    ) -> Self {
        let mut embeddings = vec![anchors, positives];
        embeddings.extend(negatives);
        Self {
            embeddings,
            labels: None,
        }
    }

    /// Sentence pairs with a similarity score each.
    pub fn scored_pairs(first: Tensor<2>, second: Tensor<2>, scores: Tensor<1>) -> Self {
        Self {
            embeddings: vec![first, second],
            labels: Some(scores),
        }
    }

    /// Checks that every role is `[B, D]` with the same `B` and `D`; returns `(B, D)`.
    pub fn check(&self) -> Result<(usize, usize), MrlError> {
        let first = self.embeddings.first().ok_or(MrlError::Shape {
            arg: "embeddings",
            detail: "no embedding tensor given".into(),
        })?;
        let dims = first.dims();
        if dims.contains(&0) {
            return Err(MrlError::Shape {
                arg: "embeddings",
                detail: format!("role 0 is empty: {}", fmt_shape(&dims)),
            });
        }
        if let Some((i, e)) = self
            .embeddings
            .iter()
            .enumerate()
            .find(|(_, e)| e.dims() != dims)
        {
            return Err(MrlError::Shape {
                arg: "embeddings",
                detail: format!(
                    "every role must be [B, D] = {}; role {i} is {}",
                    fmt_shape(&dims),
                    fmt_shape(&e.dims())
                ),
            });
        }
        if let Some(labels) = &self.labels {
            if labels.dims() != [dims[0]] {
                return Err(MrlError::Shape {
                    arg: "labels",
                    detail: format!(
                        "expected one label per example [{}], got {}",
                        dims[0],
                        fmt_shape(&labels.dims())
                    ),
                });
            }
        }
        Ok((dims[0], dims[1]))
    }

    /// Every role truncated to its first `d` features and L2-normalised.
    ///
    /// # Errors
    /// [`MrlError::InvalidDims`] when `d` is 0 or larger than a role's width.
    pub fn truncate_normalize(&self, d: usize) -> Result<Self, MrlError> {
        Ok(Self {
            embeddings: self
                .embeddings
                .iter()
                .map(|e| truncate_normalize(e.clone(), d))
                .collect::<Result<_, _>>()?,
            labels: self.labels.clone(),
        })
    }
}

/// A loss over the pooled embeddings of one batch.
///
/// Implemented by the base losses ([`InfoNceLoss`](crate::InfoNceLoss),
/// [`MultipleNegativesRankingLoss`](crate::MultipleNegativesRankingLoss),
/// [`CosentLoss`](crate::CosentLoss)) and by [`MatryoshkaLoss`](crate::MatryoshkaLoss) itself,
/// so modifiers compose: `AdaptiveLayerLoss<MatryoshkaLoss<MultipleNegativesRankingLoss>>` is
/// the 2D Matryoshka loss.
pub trait EmbeddingLoss {
    /// The scalar loss (`[1]`, mean over the batch where the loss is per example).
    ///
    /// `step` is the training step; losses that sample (dims, layers) derive that step's subset
    /// from it and their seed, the others ignore it.
    fn embedding_loss(&self, inputs: &EmbeddingInputs, step: u64) -> Result<Tensor<1>, MrlError>;
}

/// Hidden states of every layer for each role, for losses that look below the last layer.
#[derive(Debug, Clone)]
pub struct LayeredInputs {
    /// `hidden_states[role][l]`: `[B, m_role, D]` for `l = 0` (embedding output) ..= `L`.
    pub hidden_states: Vec<Vec<Tensor<3>>>,
    /// `masks[role]`: `[B, m_role]`, 1 = real token.
    pub masks: Vec<Tensor<2>>,
    /// Optional per-example labels `[B]` (CoSENT).
    pub labels: Option<Tensor<1>>,
}

impl LayeredInputs {
    /// Checks that every role has the same number of layers (at least 2) and masks that fit;
    /// returns the number of hidden states `L + 1`.
    pub fn check(&self) -> Result<usize, MrlError> {
        if self.hidden_states.is_empty() || self.hidden_states.len() != self.masks.len() {
            return Err(MrlError::Shape {
                arg: "masks",
                detail: format!(
                    "one mask per role is required: {} roles of hidden states, {} masks",
                    self.hidden_states.len(),
                    self.masks.len()
                ),
            });
        }
        let n = self.hidden_states[0].len();
        if n < 2 {
            return Err(MrlError::InvalidLayers {
                arg: "hidden_states",
                layers: vec![n],
                reason: "at least two hidden states (an earlier layer and the last) are required"
                    .into(),
            });
        }
        for (r, (layers, mask)) in self.hidden_states.iter().zip(&self.masks).enumerate() {
            if layers.len() != n {
                return Err(MrlError::Shape {
                    arg: "hidden_states",
                    detail: format!(
                        "role 0 has {n} hidden states, role {r} has {}",
                        layers.len()
                    ),
                });
            }
            let dims = layers[0].dims();
            if let Some((l, h)) = layers.iter().enumerate().find(|(_, h)| h.dims() != dims) {
                return Err(MrlError::Shape {
                    arg: "hidden_states",
                    detail: format!(
                        "role {r}: layer 0 is {}, layer {l} is {}",
                        fmt_shape(&dims),
                        fmt_shape(&h.dims())
                    ),
                });
            }
            if mask.dims() != [dims[0], dims[1]] {
                return Err(MrlError::Shape {
                    arg: "masks",
                    detail: format!(
                        "role {r}: mask {} does not match hidden states {}",
                        fmt_shape(&mask.dims()),
                        fmt_shape(&dims)
                    ),
                });
            }
        }
        Ok(n)
    }

    /// The pooled embeddings of every role at hidden state `layer`.
    pub fn pooled_at(&self, layer: usize, pooling: Pooling) -> Result<EmbeddingInputs, MrlError> {
        let embeddings = self
            .hidden_states
            .iter()
            .zip(&self.masks)
            .map(|(layers, mask)| pool(layers[layer].clone(), mask.clone(), pooling))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EmbeddingInputs {
            embeddings,
            labels: self.labels.clone(),
        })
    }
}

/// `−log softmax_j(scale · cos(a_b, c_j))[b]` per anchor `b`: cross-entropy over the cosine
/// logits against `candidates`, whose row `b` is the positive of anchor `b`.
///
/// `anchors` `[B, d]`, `candidates` `[N, d]` with `N >= B`; output `[B]`.
pub(crate) fn in_batch_cross_entropy(
    anchors: Tensor<2>,
    candidates: Tensor<2>,
    scale: f64,
) -> Tensor<1> {
    let [batch, _] = anchors.dims();
    let logits = l2_normalize(anchors)
        .matmul(l2_normalize(candidates).transpose())
        .mul_scalar(scale); // [B, N]
    let device = logits.device();
    let diagonal = Tensor::<1, Int>::arange(0..batch as i64, &device).reshape([batch, 1]);
    log_softmax(logits, 1)
        .gather(1, diagonal)
        .reshape([batch])
        .neg()
}

/// Checks an in-batch pair `[B, d]`: same shape, `B >= 2`, `d >= 1`.
pub(crate) fn check_in_batch_pair(
    first_arg: &'static str,
    first: &Tensor<2>,
    second_arg: &'static str,
    second: &Tensor<2>,
) -> Result<(), MrlError> {
    let [batch, width] = first.dims();
    if width == 0 {
        return Err(MrlError::Shape {
            arg: first_arg,
            detail: format!("embedding width is 0: {}", fmt_shape(&first.dims())),
        });
    }
    if second.dims() != [batch, width] {
        return Err(MrlError::Shape {
            arg: second_arg,
            detail: format!(
                "expected {} like `{first_arg}`, got {}",
                fmt_shape(&first.dims()),
                fmt_shape(&second.dims())
            ),
        });
    }
    if batch < 2 {
        return Err(MrlError::BatchTooSmall {
            arg: first_arg,
            batch,
        });
    }
    Ok(())
}
