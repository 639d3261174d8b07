//! Dropout as a backend operation whose mask is a pure function of a key, with a multi-core
//! host path on the CPU backends.
//!
//! `y = x ⊙ m / (1 − p)` with `m_i ~ Bernoulli(1 − p)` independently per element
//! (Srivastava et al., *Dropout*, JMLR 2014; Hinton et al., arXiv:1207.0580), and
//! `∂L/∂x = ∂L/∂y ⊙ m / (1 − p)`.
//!
//! Burn's [`Dropout`] draws the mask element by element from one ChaCha generator on one core,
//! then multiplies twice (mask, then `1 / (1 − p)`). Here, on flex and ndarray f32 tensors, the
//! mask is a counter-based hash: element `i` (row-major index) is kept when
//! `h(key, i) ≥ ⌊p · 2³²⌉`, with `h` two rounds of the MurmurHash3 32-bit finaliser over
//! `i · 0x9E3779B9 ⊕ key`. That lets every core fill its own chunk, the forward pass is one
//! vectorised read and write, and the backward pass regenerates the same mask from the key
//! instead of storing it (it is the forward operation applied to the gradient). The key is
//! drawn from the device's generator, so runs are a function of the device seed as with Burn's
//! dropout, and the result does not depend on the number of threads. Other backends (CubeCL,
//! other dtypes) run Burn's [`Dropout`] unchanged.
//!
//! [`Dropout`]: burn::nn::Dropout

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{backend_extension, tensor::FloatTensor, Backend, Dispatch};
use burn::nn::Dropout;
use burn::tensor::{Distribution, Tensor};

use mrl_common::is_host_cpu;

/// Keyed dropout as a backend operation (the backward is the same operation on the gradient).
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait DropoutOps: Backend {
    /// `x ⊙ m(key) / (1 − prob)` with the mask of [`keep`] (row-major element indices).
    ///
    /// The default body computes the mask with the backend's own operations: it is the
    /// reference the host paths are tested against, not a fast path.
    fn dropout_keyed(tensor: FloatTensor<Self>, key: u64, prob: f64) -> FloatTensor<Self> {
        portable::dropout_keyed::<Self>(tensor, key, prob)
    }
}

/// Whether element `index` is kept by the mask of `key` at drop probability `prob`:
/// `h(key, index) ≥ threshold(prob)` (see the module docs).
pub fn keep(key: u64, index: u32, prob: f64) -> bool {
    mask_hash(key, index) >= threshold(prob)
}

/// `⌊p · 2³²⌉`, capped at `2³² − 1` (an element is kept when its hash is at least this, so the
/// keep probability is `1 − threshold / 2³²`).
pub(crate) fn threshold(prob: f64) -> u32 {
    (prob * 4_294_967_296.0).round().min(u32::MAX as f64) as u32
}

/// The MurmurHash3 32-bit finaliser (a bijection on `u32`).
#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// `h(key, i) = fmix32(fmix32(i · 0x9E3779B9 ⊕ key_lo) ⊕ key_hi)`.
#[inline(always)]
pub(crate) fn mask_hash(key: u64, index: u32) -> u32 {
    let (lo, hi) = (key as u32, (key >> 32) as u32);
    fmix32(fmix32(index.wrapping_mul(0x9E37_79B9) ^ lo) ^ hi)
}

/// Applies `dropout`'s probability to `x` as Burn's [`Dropout::forward`] would (identity when
/// the layer is frozen, the device does not record gradients, or the probability is 0), with the
/// keyed mask of this module: on flex and ndarray f32 tensors the multi-core host path, on every
/// other backend Burn's own dropout.
///
/// # Shapes
/// - `x`: any shape `[d_1, …, d_D]` with fewer than 2³² elements
/// - output: the same shape
///
/// # Example
/// ```
/// use burn::nn::DropoutConfig;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// device.seed(42);
/// let x = Tensor::<2>::ones([4, 256], &device);
/// let y = models::dropout(&DropoutConfig::new(0.25).init(), x);
/// let kept = y.into_data().iter::<f32>().filter(|v| *v != 0.0).count();
/// assert!((640..900).contains(&kept)); // about 3/4 of 1024, each kept value 4/3
/// ```
pub fn dropout<const D: usize>(dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if !dropout.training.is_enabled() || !x.device().is_autodiff() || dropout.prob == 0.0 {
        return x;
    }
    if !is_host_cpu(&x.device()) {
        return dropout.forward(x);
    }
    let key = draw_key(&x);
    dropout_keyed(x, key, dropout.prob)
}

/// `x ⊙ m(key) / (1 − prob)`, differentiable, on every backend (the host path on flex and
/// ndarray): the operation [`dropout`] runs with a key drawn from the device's generator.
///
/// # Shapes
/// - `x`: any shape with fewer than 2³² elements; output: the same shape
///
/// # Panics
/// If `prob` is not in `[0, 1)`, or `x` has 2³² elements or more.
pub fn dropout_keyed<const D: usize>(x: Tensor<D>, key: u64, prob: f64) -> Tensor<D> {
    assert!(
        prob.is_finite() && (0.0..1.0).contains(&prob),
        "dropout_keyed: `prob` must be in [0, 1), got {prob}"
    );
    let elements = x.shape().num_elements();
    assert!(
        u32::try_from(elements).is_ok(),
        "dropout_keyed: `x` {:?} has {elements} elements; at most 2^32 - 1 are supported",
        x.dims()
    );
    Tensor::from_dispatch(<Dispatch as DropoutOps>::dropout_keyed(
        x.into_dispatch(),
        key,
        prob,
    ))
}

/// A 48-bit key from the device's seeded generator (two uniform f32 draws), mixed to 64 bits.
fn draw_key<const D: usize>(x: &Tensor<D>) -> u64 {
    let draws = Tensor::<1>::random([2], Distribution::Default, &x.device())
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("two f32 draws");
    let raw = (u64::from(draws[0].to_bits()) << 32) | u64::from(draws[1].to_bits());
    mrl_common::SplitMix64::new(raw).next_u64()
}

/// The default body: the mask built from backend operations (the row-major index as an int
/// tensor, the hash computed on the host, uploaded), then one multiplication.
mod portable {
    use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
    use burn::tensor::TensorData;

    use super::keep;

    pub(super) fn dropout_keyed<B: Backend>(
        tensor: FloatTensor<B>,
        key: u64,
        prob: f64,
    ) -> FloatTensor<B> {
        let (shape, device, dtype) = (tensor.shape(), tensor.device(), tensor.dtype());
        let scale = (1.0 / (1.0 - prob)) as f32;
        let mask: Vec<f32> = (0..shape.num_elements() as u32)
            .map(|i| if keep(key, i, prob) { scale } else { 0.0 })
            .collect();
        let mask = B::float_from_data(TensorData::new(mask, shape).convert_dtype(dtype), &device);
        B::float_mul(tensor, mask)
    }
}
