//! `Autodiff<B>`: the forward runs `B`'s [`GeluOps::gelu_exact`] and the backward calls
//! [`GeluOps::gelu_exact_backward`] of `B`.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{unary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{tensor::FloatTensor, Backend};

use super::GeluOps;

#[derive(Debug)]
struct GeluExactBackward;

impl<B: Backend + GeluOps> Backward<B, 1> for GeluExactBackward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::gelu_exact_backward(x, grad)
        });
    }
}

impl<B: Backend + GeluOps, C: CheckpointStrategy> GeluOps for Autodiff<B, C> {
    fn gelu_exact(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluExactBackward
            .prepare::<C>([tensor.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = tensor.primitive().clone();
                let out = B::gelu_exact(x.clone());
                prep.finish(x, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_exact(tensor.into_primitive())),
        }
    }
}
