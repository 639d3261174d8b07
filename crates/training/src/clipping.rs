//! Global-norm gradient clipping: `g ← g · c / (‖g‖ + 1e-6)` when `‖g‖ > c`, with `‖g‖` the
//! norm of every gradient of the module together (as `torch.nn.utils.clip_grad_norm_`). Burn's
//! own [`GradientClipping`](burn::grad_clipping::GradientClipping) clips each tensor on its own,
//! which changes the direction of the update; this keeps it.
//!
//! On flex and ndarray f32 gradients both passes work on each gradient's own buffer, split across
//! the cores: the norm sums `g²` per block in f64 lanes and adds the blocks in order (the same
//! bits on every run), and clipping multiplies in place. Other backends and dtypes use tensor
//! operations (the norm as one `[1, n] · [n, 1]` product per gradient).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

/// Elements per parallel task of the host passes.
const BLOCK: usize = 1 << 15;

/// `‖g‖₂` over every parameter of `module` that has a gradient in `grads` (one device sync).
///
/// `grads` is taken mutably because on the CPU backends each gradient is taken out, read in its
/// own buffer and put back unchanged.
pub fn global_norm<M: Module>(module: &M, grads: &mut GradientsParams) -> f64 {
    let mut sq = SquaredNorm {
        grads,
        sum: None,
        host: 0.0,
    };
    module.visit(&mut sq);
    let device = sq.sum.map(|s| s.into_scalar::<f64>()).unwrap_or(0.0);
    (device + sq.host).sqrt()
}

/// Whether `g` takes the host passes: an f32 tensor on a CPU backend. Its `into_data` is then its
/// own buffer (no copy: a gradient taken out of [`GradientsParams`] is uniquely owned), and
/// `Tensor::from_data` hands the buffer back without a copy.
fn host_values<const D: usize>(g: &Tensor<D>) -> bool {
    models::is_host_cpu(&g.device()) && g.dtype() == DType::F32
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

/// Σ‖g‖² over a module's parameters: the host gradients' part in `host`, the others' as a
/// device tensor.
struct SquaredNorm<'a> {
    grads: &'a mut GradientsParams,
    sum: Option<Tensor<1>>,
    host: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = self.grads.remove::<D>(param.id) else {
            return;
        };
        let g = if host_values(&g) {
            let device = g.device();
            let data = g.into_data();
            let values = data.as_slice::<f32>().expect("checked f32");
            // Blocks in parallel, their sums added in block order: the same bits on every run.
            let blocks: Vec<f64> = values
                .par_chunks(BLOCK)
                .map(|block| mrl_common::host_math::sum_f64(block, |x| x * x))
                .collect();
            self.host += blocks.iter().sum::<f64>();
            Tensor::from_data(data, &device)
        } else {
            // ‖g‖² as the product of the flattened `[1, n]` and `[n, 1]` views: one read of the
            // gradient, no n-element temporary (`g²` would allocate and fill a copy of every
            // gradient on every step, 270 MB for a 10-layer SmolLM2 student).
            let n = g.shape().num_elements();
            let s = g
                .clone()
                .reshape([1, n])
                .matmul(g.clone().reshape([n, 1]))
                .reshape([1]);
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
            g
        };
        self.grads.register::<D>(param.id, g);
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
            let g = if host_values(&g) {
                let device = g.device();
                let mut data = g.into_data();
                // The product `mul_scalar` computes: the scale as f32, times each element.
                let scale = self.scale as f32;
                data.as_mut_slice::<f32>()
                    .expect("checked f32")
                    .par_chunks_mut(BLOCK)
                    .for_each(|block| block.iter_mut().for_each(|v| *v *= scale));
                Tensor::from_data(data, &device)
            } else {
                g.mul_scalar(self.scale)
            };
            self.grads.register::<D>(param.id, g);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    /// `‖g‖₂` in f64 from the gradients' values.
    fn f64_norm(grads: &[Tensor<1>]) -> f64 {
        grads
            .iter()
            .flat_map(|g| g.to_data().convert::<f64>().try_to_vec::<f64>().unwrap())
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn the_global_norm_covers_every_gradient_and_clipping_scales_it_to_the_limit() {
        let device = Device::flex().autodiff();
        let linear = LinearConfig::new(300, 70).init(&device);
        let x = Tensor::<2>::random([5, 300], Distribution::Normal(0.0, 2.0), &device);
        let loss = linear.forward(x).powi_scalar(2).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &linear);
        let flat = |grads: &GradientsParams| {
            let bias = linear.bias.as_ref().unwrap();
            vec![
                grads
                    .get::<2>(linear.weight.id)
                    .unwrap()
                    .flatten::<1>(0, 1)
                    .inner(),
                grads.get::<1>(bias.id).unwrap().inner(),
            ]
        };
        let want = f64_norm(&flat(&grads));
        let norm = global_norm(&linear, &mut grads);
        assert!(((norm - want) / want).abs() < 1e-5, "{norm} vs {want}");

        assert!(
            !clip_global_norm(&linear, &mut grads, norm, 0.0),
            "0 = no clipping"
        );
        assert!(!clip_global_norm(&linear, &mut grads, norm, norm * 2.0));
        assert!(clip_global_norm(&linear, &mut grads, norm, norm / 4.0));
        let clipped = f64_norm(&flat(&grads));
        assert!(
            ((clipped - norm / 4.0) / norm).abs() < 1e-5,
            "{clipped} vs {}",
            norm / 4.0
        );
    }

    /// The host passes against the tensor operations they replace, on both CPU backends: the
    /// norm to f32 rounding of the squares (it adds in f64), clipping bit for bit, and the norm
    /// leaves the gradients as they were and gives the same bits twice.
    #[test]
    fn host_passes_agree_with_the_tensor_operations() {
        let mut devices = Vec::new();
        #[cfg(feature = "flex")]
        devices.push(Device::flex().autodiff());
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        // Burn deprecates ndarray; the CI tests it as a supported backend.
        devices.push(Device::ndarray().autodiff());
        for device in devices {
            // 120 000 weights: several parallel blocks, and a tail.
            let linear = LinearConfig::new(400, 300).init(&device);
            let x = Tensor::<2>::random([7, 400], Distribution::Normal(0.0, 3.0), &device);
            let loss = linear.forward(x).powi_scalar(2).sum();
            let mut grads = GradientsParams::from_grads(loss.backward(), &linear);
            let bias = linear.bias.as_ref().unwrap();
            let weight = |grads: &GradientsParams| grads.get::<2>(linear.weight.id).unwrap();
            let before = weight(&grads).into_data();

            let norm = global_norm(&linear, &mut grads);
            let want = f64_norm(&[
                weight(&grads).flatten::<1>(0, 1).inner(),
                grads.get::<1>(bias.id).unwrap().inner(),
            ]);
            assert!(
                ((norm - want) / want).abs() < 1e-7,
                "{device:?}: {norm} vs {want}"
            );
            assert_eq!(
                weight(&grads).into_data(),
                before,
                "{device:?}: gradient changed"
            );
            assert_eq!(global_norm(&linear, &mut grads).to_bits(), norm.to_bits());

            let clip = norm / 3.0;
            let scale = clip / (norm + 1e-6);
            let want = weight(&grads).inner().mul_scalar(scale).into_data();
            assert!(clip_global_norm(&linear, &mut grads, norm, clip));
            assert_eq!(weight(&grads).inner().into_data(), want, "{device:?}");
        }
    }
}
