//! `Autodiff<B>`: the forward runs `B`'s [`EmbeddingOps::embedding_lookup`] and the backward
//! [`EmbeddingOps::embedding_lookup_backward`] of `B` (state: the ids and the table's row count).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{
    tensor::{FloatTensor, IntTensor},
    Backend, TensorMetadata,
};

use super::EmbeddingOps;

#[derive(Debug)]
struct EmbeddingBackward;

impl<B: Backend + EmbeddingOps> Backward<B, 1> for EmbeddingBackward {
    /// `(ids, rows of the table)`.
    type State = (IntTensor<B>, usize);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_weights] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (ids, rows) = ops.state;
        if let Some(node) = node_weights {
            grads.register::<B>(node.id, B::embedding_lookup_backward(grad, ids, rows));
        }
    }
}

impl<B: Backend + EmbeddingOps, C: CheckpointStrategy> EmbeddingOps for Autodiff<B, C> {
    fn embedding_lookup(weights: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self> {
        match EmbeddingBackward
            .prepare::<C>([weights.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let rows = weights.shape()[0];
                let out = B::embedding_lookup(weights.into_primitive(), ids.clone());
                prep.finish((ids, rows), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::embedding_lookup(weights.into_primitive(), ids))
            }
        }
    }
}
