//! `Autodiff<B>`: the forward runs `B`'s [`LogSoftmaxOps::log_softmax_last`] and the backward
//! [`LogSoftmaxOps::log_softmax_last_backward`] of `B` (state: the output).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{unary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{tensor::FloatTensor, Backend};

use super::LogSoftmaxOps;

#[derive(Debug)]
struct LogSoftmaxBackward;

impl<B: Backend + LogSoftmaxOps> Backward<B, 1> for LogSoftmaxBackward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let output = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::log_softmax_last_backward(output, grad)
        });
    }
}

impl<B: Backend + LogSoftmaxOps, C: CheckpointStrategy> LogSoftmaxOps for Autodiff<B, C> {
    fn log_softmax_last(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        match LogSoftmaxBackward
            .prepare::<C>([tensor.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::log_softmax_last(tensor.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::log_softmax_last(tensor.into_primitive())),
        }
    }
}
