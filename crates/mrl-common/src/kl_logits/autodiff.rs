//! `Autodiff<B>`: the forward runs `B`'s [`KlLogitsOps::kl_logits`] and the backward
//! [`KlLogitsOps::kl_logits_backward`] of `B` (state: both logits, the row log-normalisers and the
//! scale). Only the student is tracked: the teacher enters as a constant.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{unary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::{tensor::FloatTensor, AutodiffBackend, Backend};

use super::{KlFromLogits, KlLogitsOps};

#[derive(Debug)]
struct KlLogitsBackward;

impl<B: Backend + KlLogitsOps> Backward<B, 1> for KlLogitsBackward {
    /// `(student, teacher, log_norms, scale)`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (student, teacher, log_norms, scale) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::kl_logits_backward(student, teacher, log_norms, grad, scale)
        });
    }
}

impl<B: Backend + KlLogitsOps, C: CheckpointStrategy> KlLogitsOps for Autodiff<B, C> {
    fn kl_logits(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        scale: f64,
    ) -> KlFromLogits<Self> {
        let teacher = teacher.into_primitive();
        match KlLogitsBackward
            .prepare::<C>([student.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let student = student.into_primitive();
                let out = B::kl_logits(student.clone(), teacher.clone(), scale);
                let log_norms = out.log_norms;
                let values = prep.finish((student, teacher, log_norms.clone(), scale), out.values);
                KlFromLogits {
                    values,
                    log_norms: <Self as AutodiffBackend>::from_inner(log_norms),
                }
            }
            OpsKind::UnTracked(prep) => {
                let out = B::kl_logits(student.into_primitive(), teacher, scale);
                KlFromLogits {
                    values: prep.finish(out.values),
                    log_norms: <Self as AutodiffBackend>::from_inner(out.log_norms),
                }
            }
        }
    }
}
