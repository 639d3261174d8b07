//! `Autodiff<B>`: the forward runs `B`'s [`RmsNormOps::rms_norm_fused`] and the backward
//! [`RmsNormOps::rms_norm_backward`] of `B` (state: the input and `w`).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{tensor::FloatTensor, Backend};

use super::RmsNormOps;

#[derive(Debug)]
struct RmsNormBackward;

impl<B: Backend + RmsNormOps> Backward<B, 2> for RmsNormBackward {
    /// `(x, w, ε)`.
    type State = (FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, epsilon) = ops.state;
        let out = B::rms_norm_backward(x, weight, grad, epsilon);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, out.x);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, out.weight);
        }
    }
}

impl<B: Backend + RmsNormOps, C: CheckpointStrategy> RmsNormOps for Autodiff<B, C> {
    fn rms_norm_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        match RmsNormBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let out = B::rms_norm_fused(x.clone(), weight.clone(), epsilon);
                prep.finish((x, weight, epsilon), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::rms_norm_fused(
                x.into_primitive(),
                weight.into_primitive(),
                epsilon,
            )),
        }
    }
}
