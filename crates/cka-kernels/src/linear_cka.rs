//! Linear CKA between two sets of row vectors, batched and padding-aware.
//!
//! Kornblith et al., "Similarity of Neural Network Representations Revisited", ICML 2019,
//! arXiv 1905.00414.

use burn::tensor::Tensor;

use crate::error::{fmt_shape, CkaError};
use crate::selection::real_lengths;

/// Guards the norms of the centred Grams: `‖K‖ = sqrt(‖K‖²_F + ε²)`.
///
/// With `ε = 1e-6` the guard is far below any real signal (a centred Gram of two tokens with
/// unit-scale features already has `‖K‖²_F ≈ 1`), and it turns the zero-variance case into the
/// defined value `CKA = 0` with a zero gradient instead of `0 / 0`.
pub const CKA_EPS: f64 = 1e-6;

/// Per-example linear CKA with tokens (rows) as samples.
///
/// For each example `b`, with `Xc`, `Yc` the columns of `x[b]`, `y[b]` centred over the real rows
/// (padding rows are dropped),
///
/// ```text
/// CKA(X, Y) = ‖Xcᵀ Yc‖²_F / (‖Xcᵀ Xc‖_F · ‖Ycᵀ Yc‖_F)
///           = ⟨Kx, Ky⟩_F / (‖Kx‖_F · ‖Ky‖_F),   Kx = Xc Xcᵀ, Ky = Yc Ycᵀ.
/// ```
///
/// The result lies in `[0, 1]`, is symmetric in `x`, `y`, equals 1 for `x == y` (unless the
/// rows have no variance), and is invariant to orthogonal transforms and isotropic scaling of
/// either side. The norms are guarded by [`CKA_EPS`]: an example whose real rows are all equal
/// (zero variance) gets `CKA = 0` and a zero gradient, never NaN.
///
/// The cheaper of the feature-space form (`n·(dx·dy + dx² + dy²)` flops) and the sample-space
/// form (`n²·(dx + dy)`) is chosen per call; both give the same value.
///
/// # Shapes
/// - `x`: `[B, n, dx]`
/// - `y`: `[B, n, dy]`
/// - `mask`: `[B, n]`, 1 for a real row and 0 for padding; `None` means every row is real.
/// - output: `[B]`
///
/// # Errors
/// [`CkaError`] when the batch or row counts differ, a dimension is zero, the mask holds values
/// other than 0/1, or an example is all padding.
///
/// # Example
/// ```
/// # #[allow(deprecated)]
/// # fn main() -> Result<(), cka_kernels::CkaError> {
/// use burn::tensor::{Device, Distribution, Tensor};
/// # #[cfg(feature = "flex")]
/// let device = Device::flex();
/// # #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
/// # let device = Device::ndarray();
/// let x = Tensor::<3>::random([2, 10, 8], Distribution::Normal(0.0, 1.0), &device);
/// let cka = cka_kernels::linear_cka(x.clone(), x, None)?;
/// assert_eq!(cka.dims(), [2]);
/// # Ok(()) }
/// ```
pub fn linear_cka(
    x: Tensor<3>,
    y: Tensor<3>,
    mask: Option<Tensor<2>>,
) -> Result<Tensor<1>, CkaError> {
    let [bx, nx, _] = x.dims();
    let [by, ny, _] = y.dims();
    if bx != by || nx != ny {
        return Err(CkaError::ShapeMismatch {
            what: "`x` and `y` must share batch and row dims".into(),
            shapes: format!("x {}, y {}", fmt_shape(&x.dims()), fmt_shape(&y.dims())),
        });
    }
    for (name, dims) in [("x", x.dims()), ("y", y.dims())] {
        if dims.contains(&0) {
            return Err(CkaError::Empty {
                what: format!("`{name}` has shape {}", fmt_shape(&dims)),
            });
        }
    }
    let mask = match mask {
        Some(mask) => {
            if mask.dims() != [bx, nx] {
                return Err(CkaError::ShapeMismatch {
                    what: "`mask` must be [B, n]".into(),
                    shapes: format!(
                        "x {}, mask {}",
                        fmt_shape(&x.dims()),
                        fmt_shape(&mask.dims())
                    ),
                });
            }
            real_lengths(&mask)?;
            mask.cast(x.dtype())
        }
        None => Tensor::<2>::ones([bx, nx], &x.device()).cast(x.dtype()),
    };
    Ok(masked_linear_cka(x, y, mask))
}

/// [`linear_cka`] without validation: `mask` `[B, n]` must be 0/1 with a real row per example.
pub(crate) fn masked_linear_cka(x: Tensor<3>, y: Tensor<3>, mask: Tensor<2>) -> Tensor<1> {
    let [batch, n, dx] = x.dims();
    let dy = y.dims()[2];
    let w = mask.unsqueeze_dim::<3>(2); // [B, n, 1]
    let count = w.clone().sum_dim(1); // [B, 1, 1]
                                      // Two passes: the second removes what f32 rounding left of the mean after the first, so
                                      // rows that are all equal (zero variance, defined CKA 0) centre to zero, not to noise.
    let centre_once = |t: Tensor<3>| {
        let mean = (t.clone() * w.clone()).sum_dim(1) / count.clone();
        (t - mean) * w.clone()
    };
    let centre = |t: Tensor<3>| centre_once(centre_once(t));
    let xc = centre(x);
    let yc = centre(y);
    let flat = |t: Tensor<3>| t.sum_dim(2).sum_dim(1).reshape([batch]);
    let sample_cost = n * n * (dx + dy);
    let feature_cost = n * (dx * dy + dx * dx + dy * dy);
    let (cross, xx, yy) = if sample_cost <= feature_cost {
        let kx = xc.clone().matmul(xc.swap_dims(1, 2));
        let ky = yc.clone().matmul(yc.swap_dims(1, 2));
        (
            flat(kx.clone() * ky.clone()),
            flat(kx.clone() * kx),
            flat(ky.clone() * ky),
        )
    } else {
        let xt = xc.clone().swap_dims(1, 2);
        let yt = yc.clone().swap_dims(1, 2);
        let xy = xt.clone().matmul(yc.clone());
        let xxt = xt.matmul(xc);
        let yyt = yt.matmul(yc);
        (
            flat(xy.clone() * xy),
            flat(xxt.clone() * xxt),
            flat(yyt.clone() * yyt),
        )
    };
    let eps2 = CKA_EPS * CKA_EPS;
    cross / ((xx + eps2).sqrt() * (yy + eps2).sqrt())
}
