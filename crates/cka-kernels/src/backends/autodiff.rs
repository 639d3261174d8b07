//! `Autodiff<B>`: the forward runs `B`'s implementation and the backward calls
//! [`CkaOps::nested_prefix_cka_backward`] of `B` (a fused kernel on CubeCL backends).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{unary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{tensor::FloatTensor, Backend};

use crate::CkaOps;

#[derive(Debug)]
struct NestedPrefixCkaBackward;

impl<B: Backend + CkaOps> Backward<B, 1> for NestedPrefixCkaBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, Vec<usize>, bool);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (hidden, row_mask, dims, detach_teacher) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::nested_prefix_cka_backward(hidden, row_mask, dims, grad, detach_teacher)
        });
    }
}

impl<B: Backend + CkaOps, C: CheckpointStrategy> CkaOps for Autodiff<B, C> {
    fn nested_prefix_cka(
        hidden: FloatTensor<Self>,
        row_mask: FloatTensor<Self>,
        dims: Vec<usize>,
        detach_teacher: bool,
    ) -> FloatTensor<Self> {
        // The row mask comes from a non-differentiable ranking: it is a constant here.
        let row_mask = row_mask.into_primitive();
        match NestedPrefixCkaBackward
            .prepare::<C>([hidden.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let hidden = hidden.primitive().clone();
                let out = B::nested_prefix_cka(
                    hidden.clone(),
                    row_mask.clone(),
                    dims.clone(),
                    detach_teacher,
                );
                prep.finish((hidden, row_mask, dims, detach_teacher), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::nested_prefix_cka(
                hidden.into_primitive(),
                row_mask,
                dims,
                detach_teacher,
            )),
        }
    }
}
