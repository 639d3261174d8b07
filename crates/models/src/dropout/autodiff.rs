//! `Autodiff<B>`: the forward runs `B`'s [`DropoutOps::dropout_keyed`]; the backward is the same
//! operation with the same key applied to the incoming gradient (`∂L/∂x = ∂L/∂y ⊙ m / (1 − p)`),
//! so no mask is stored.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{unary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{tensor::FloatTensor, Backend};

use super::DropoutOps;

#[derive(Debug)]
struct DropoutKeyedBackward;

impl<B: Backend + DropoutOps> Backward<B, 1> for DropoutKeyedBackward {
    /// `(key, prob)`.
    type State = (u64, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (key, prob) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::dropout_keyed(grad, key, prob)
        });
    }
}

impl<B: Backend + DropoutOps, C: CheckpointStrategy> DropoutOps for Autodiff<B, C> {
    fn dropout_keyed(tensor: FloatTensor<Self>, key: u64, prob: f64) -> FloatTensor<Self> {
        match DropoutKeyedBackward
            .prepare::<C>([tensor.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = B::dropout_keyed(tensor.into_primitive(), key, prob);
                prep.finish((key, prob), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::dropout_keyed(tensor.into_primitive(), key, prob))
            }
        }
    }
}
