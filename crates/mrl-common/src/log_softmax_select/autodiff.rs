//! `Autodiff<B>`: the forward runs `B`'s [`LogSoftmaxSelectOps::log_softmax_select`] and the
//! backward [`LogSoftmaxSelectOps::log_softmax_select_backward`] of `B` (state: the logits, the
//! ids, the row log-normalisers, the scale and the rest flag).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{unary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{
    tensor::{FloatTensor, IntTensor},
    AutodiffBackend, Backend,
};

use super::{LogSoftmaxSelectOps, LogSoftmaxSelected};

#[derive(Debug)]
struct LogSoftmaxSelectBackward;

impl<B: Backend + LogSoftmaxSelectOps> Backward<B, 1> for LogSoftmaxSelectBackward {
    /// `(logits, ids, log_norms, scale, rest)`.
    type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>, f64, bool);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (logits, ids, log_norms, scale, rest) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::log_softmax_select_backward(logits, ids, log_norms, grad, scale, rest)
        });
    }
}

impl<B: Backend + LogSoftmaxSelectOps, C: CheckpointStrategy> LogSoftmaxSelectOps
    for Autodiff<B, C>
{
    fn log_softmax_select(
        logits: FloatTensor<Self>,
        ids: IntTensor<Self>,
        scale: f64,
        rest: bool,
    ) -> LogSoftmaxSelected<Self> {
        match LogSoftmaxSelectBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let out = B::log_softmax_select(logits.clone(), ids.clone(), scale, rest);
                let log_norms = out.log_norms;
                let values = prep.finish((logits, ids, log_norms.clone(), scale, rest), out.values);
                LogSoftmaxSelected {
                    values,
                    log_norms: <Self as AutodiffBackend>::from_inner(log_norms),
                }
            }
            OpsKind::UnTracked(prep) => {
                let out = B::log_softmax_select(logits.into_primitive(), ids, scale, rest);
                LogSoftmaxSelected {
                    values: prep.finish(out.values),
                    log_norms: <Self as AutodiffBackend>::from_inner(out.log_norms),
                }
            }
        }
    }
}
