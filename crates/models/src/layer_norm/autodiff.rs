//! `Autodiff<B>`: the forward runs `B`'s [`LayerNormOps::layer_norm_fused`] and the backward
//! [`LayerNormOps::layer_norm_backward`] of `B` (state: the input and `γ`).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{tensor::FloatTensor, Backend};

use super::LayerNormOps;

#[derive(Debug)]
struct LayerNormBackward;

impl<B: Backend + LayerNormOps> Backward<B, 3> for LayerNormBackward {
    /// `(x, γ, ε)`.
    type State = (FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, epsilon) = ops.state;
        let out = B::layer_norm_backward(x, gamma, grad, epsilon);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, out.x);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, out.gamma);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, out.beta);
        }
    }
}

impl<B: Backend + LayerNormOps, C: CheckpointStrategy> LayerNormOps for Autodiff<B, C> {
    fn layer_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, gamma, beta) = (
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                );
                let out = B::layer_norm_fused(x.clone(), gamma.clone(), beta, epsilon);
                prep.finish((x, gamma, epsilon), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_fused(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
            )),
        }
    }
}
