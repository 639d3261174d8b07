//! Global-norm gradient clipping: `g ← g · c / (‖g‖ + 1e-6)` when `‖g‖ > c`, with `‖g‖` the
//! norm of every gradient of the module together (as `torch.nn.utils.clip_grad_norm_`). Burn's
//! own [`GradientClipping`](burn::grad_clipping::GradientClipping) clips each tensor on its own,
//! which changes the direction of the update; this keeps it.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// `‖g‖₂` over every parameter of `module` that has a gradient in `grads` (one device sync).
pub fn global_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut sq = SquaredNorm { grads, sum: None };
    module.visit(&mut sq);
    sq.sum.map(|s| s.into_scalar::<f64>().sqrt()).unwrap_or(0.0)
}

/// Scales every gradient of `module` in `grads` so that the global norm `norm` becomes `clip`
/// (no change when `clip == 0` or `norm <= clip`). Returns whether it clipped.
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    norm: f64,
    clip: f64,
) -> bool {
    if clip <= 0.0 || norm <= clip {
        return false;
    }
    let scale = clip / (norm + 1e-6);
    module.visit(&mut ScaleGrads { grads, scale });
    true
}

/// Σ‖g‖² over a module's parameters, as a device tensor.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// Multiplies every gradient of a module by `scale`.
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    scale: f64,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register::<D>(param.id, g.mul_scalar(self.scale));
        }
    }
}
