//! `Autodiff<B>`: the forward runs `B`'s [`AttentionSoftmaxOps::attention_softmax`] and the
//! backward [`AttentionSoftmaxOps::attention_softmax_backward`] of `B` (state: the
//! probabilities). The mask is a constant: no gradient flows to it.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{tensor::FloatTensor, Backend};

use super::AttentionSoftmaxOps;

#[derive(Debug)]
struct AttentionSoftmaxBackward;

impl<B: Backend + AttentionSoftmaxOps> Backward<B, 1> for AttentionSoftmaxBackward {
    /// `(p, scale)`.
    type State = (FloatTensor<B>, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_scores] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (probs, scale) = ops.state;
        if let Some(node) = node_scores {
            grads.register::<B>(node.id, B::attention_softmax_backward(probs, grad, scale));
        }
    }
}

impl<B: Backend + AttentionSoftmaxOps, C: CheckpointStrategy> AttentionSoftmaxOps
    for Autodiff<B, C>
{
    fn attention_softmax(
        scores: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        let mask = mask.into_primitive();
        match AttentionSoftmaxBackward
            .prepare::<C>([scores.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let probs = B::attention_softmax(scores.into_primitive(), mask, scale);
                prep.finish((probs.clone(), scale), probs)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::attention_softmax(scores.into_primitive(), mask, scale))
            }
        }
    }
}
