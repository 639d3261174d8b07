//! What every burn-mrl crate shares, defined once.
//!
//! The losses (`mrl-core`) and the models (`models`) never depend on each other; the concepts
//! both need live here, in the lowest crate both may depend on, and they re-export them:
//!
//! | concept | items | file |
//! |---|---|---|
//! | sentence pooling over `[B, L, D]` token states and a float mask | [`Pooling`], [`pool`] | `pooling.rs` |
//! | L2 normalisation, the Matryoshka truncate-then-normalise | [`l2_normalize`], [`truncate_normalize`], [`check_dim`], [`NORM_EPS`] | `normalize.rs` |
//! | the default Matryoshka dims ladder | [`nested_dims`] | `dims.rs` |
//! | the seeded generator | [`SplitMix64`] | `rng.rs` |
//! | choosing a backend by name | [`DeviceKind`] | `device.rs` |
//! | whether a device runs on the host CPU backends | [`is_host_cpu`] | `host_device.rs` |
//! | the host-implementation building blocks (in-place f32 buffers, vectorisable `exp` and lane reductions) | [`host_math`] | `host_math.rs` |
//! | log-softmax over the last axis as one backend operation (host path on flex/ndarray) | [`log_softmax()`] | `log_softmax/` |
//! | log-probabilities at listed classes (and the rest mass) without the full log-softmax: cross-entropy and top-k distillation rows | [`log_softmax_select()`] | `log_softmax_select/` |
//! | the forward KL divergence between two softmaxes from their logits, per row, without either log-softmax: full-vocabulary distillation rows | [`kl_div_logits()`] | `kl_logits/` |
//!
//! Names parse with [`FromStr`](std::str::FromStr), print with [`Display`](std::fmt::Display)
//! and (de)serialise with serde under the same lower-case names (`mean`, `cls`, `last`;
//! `flex`, `ndarray`, `wgpu`, `cuda`), so a TOML config, the command line and a report agree;
//! pooling names are read in any case.
//! Fallible functions return [`CommonError`], which names the argument and the values received.
//!
//! # Features
//! `ndarray`, `flex` (default), `wgpu` and `cuda` forward to Burn's features of the same name
//! and decide which [`DeviceKind`]s [`DeviceKind::device`] can build; the others return an
//! error naming the missing feature.
//!
//! # Example
//! ```
//! use burn::tensor::{Tensor, TensorData};
//! use mrl_common::{nested_dims, pool, truncate_normalize, DeviceKind, Pooling};
//!
//! # #[cfg(any(feature = "flex", feature = "ndarray"))]
//! # {
//! # #[cfg(feature = "flex")]
//! let device = "flex".parse::<DeviceKind>()?.device()?;
//! # #[cfg(not(feature = "flex"))]
//! # let device = DeviceKind::Ndarray.device()?;
//! // Two sentences of three tokens, width 2; the second has one padding token.
//! let hidden = Tensor::<3>::from_data(
//!     TensorData::new(vec![1.0f32, 2., 3., 4., 5., 6., -1., 0., 1., 2., 100., 100.], [2, 3, 2]),
//!     &device,
//! );
//! let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 1., 1., 1., 1., 0.], [2, 3]), &device);
//! let pooled = pool(hidden, mask, "mean".parse::<Pooling>()?)?; // [[3, 4], [0, 1]]
//! let unit = truncate_normalize(pooled, 1)?; // [[1], [0]]: the first coordinate, normalised
//! assert_eq!(unit.dims(), [2, 1]);
//! assert_eq!(nested_dims(384), [8, 16, 32, 64, 128, 256, 384]);
//! # }
//! # Ok::<(), mrl_common::CommonError>(())
//! ```

mod device;
mod dims;
mod error;
mod host_device;
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub mod host_math;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod kl_logits;
pub mod limits;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod log_softmax;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod log_softmax_select;
mod normalize;
mod pooling;
mod rng;

pub use device::DeviceKind;
pub use dims::nested_dims;
pub use error::CommonError;
pub use host_device::{is_host_cpu, matmul_copies_transposed_operands};
pub use kl_logits::kl_div_logits;
pub use log_softmax::log_softmax;
pub use log_softmax_select::log_softmax_select;
pub use normalize::{check_dim, l2_normalize, truncate_normalize, NORM_EPS};
pub use pooling::{pool, Pooling};
pub use rng::SplitMix64;

/// Every CPU device compiled in, built explicitly (never `Device::default()`).
#[cfg(test)]
#[allow(clippy::vec_init_then_push)] // one push per compiled-in backend feature
pub(crate) fn test_devices() -> Vec<(&'static str, burn::tensor::Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    out.push(("ndarray", burn::tensor::Device::ndarray()));
    #[cfg(feature = "flex")]
    out.push(("flex", burn::tensor::Device::flex()));
    out
}

/// The values of a float tensor as `f32`.
#[cfg(test)]
pub(crate) fn test_values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}
