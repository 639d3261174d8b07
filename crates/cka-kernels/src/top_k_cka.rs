//! Top-k CKA between truncated and full-width token states (MIPIC §2b).
//!
//! MIPIC: "Matryoshka Representation Learning via Self-Distilled Intra-Relational Alignment and
//! Progressive Information Chaining", arXiv 2604.24374, Eq. 7–12.

use burn::backend::Dispatch;
use burn::tensor::Tensor;

use crate::error::{fmt_shape, CkaError};
use crate::linear_cka::masked_linear_cka;
use crate::ops::CkaOps;
use crate::selection::TopKSelection;
use crate::spec::TopKCkaSpec;

/// Top-k CKA of every truncated dim against the full width, through the fused op.
///
/// Per example `b`, the real tokens are ranked once by `scores` (descending, ties by position),
/// so the kept sets `S_{k_1} ⊆ S_{k_2} ⊆ …` are nested when the ks grow. For truncated dim `d_i`
/// with `k_i` tokens ([`TopKCkaSpec::k_for`]):
///
/// ```text
/// X = hidden[b, S_{k_i}, :d_i]      (k_i × d_i)
/// Y = hidden[b, S_{k_i}, :]         (k_i × D)
/// CKA_i = ⟨C Xxᵀ C, C YYᵀ C⟩_F / (‖C XXᵀ C‖_F ‖C YYᵀ C‖_F),   C = I − 11ᵀ/k_i
/// ```
///
/// This calls [`CkaOps::nested_prefix_cka`]: one pass over `D` accumulates the `K × K`
/// sample-space Gram of every nested prefix (see the crate docs). On CubeCL devices it runs the
/// fused kernels; elsewhere the same algorithm in backend ops. Gradients flow into `hidden`
/// (both sides, or only the truncated side with `spec.detach_teacher`). Examples with a single
/// kept token, or with constant kept tokens, have no variance: their CKA is 0 (see
/// [`CKA_EPS`](crate::CKA_EPS)).
///
/// # Shapes
/// - `hidden`: `[B, m, D]`
/// - `mask`: `[B, m]`, 1 = real token, 0 = padding
/// - `scores`: `[B, m]` (e.g. the teacher's CLS attention scores; padding entries are ignored)
/// - output: `[B, n]` with `n = spec.dims.len()`
///
/// # Errors
/// [`CkaError`] for mismatched shapes, an invalid spec (dims not strictly increasing, a dim
/// above `D`, schedule length ≠ dims length), a mask that is not 0/1 or leaves an example all
/// padding, or a non-finite score on a real token.
///
/// # Example
/// ```
/// # fn main() -> Result<(), cka_kernels::CkaError> {
/// use burn::tensor::{Device, Distribution, Tensor};
/// use cka_kernels::{top_k_cka, KSchedule, TopKCkaSpec};
/// # #[cfg(feature = "flex")]
/// let device = Device::flex();
/// # #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
/// # #[allow(deprecated)]
/// # let device = Device::ndarray();
/// let hidden = Tensor::<3>::random([2, 12, 32], Distribution::Normal(0.0, 1.0), &device);
/// let mask = Tensor::<2>::ones([2, 12], &device);
/// let scores = Tensor::<2>::random([2, 12], Distribution::Default, &device);
/// let spec = TopKCkaSpec::new()
///     .with_dims(vec![8, 16])
///     .with_schedule(KSchedule::Gammas { gammas: vec![0.5, 0.7], k_min: 4 });
/// let cka = top_k_cka(hidden, mask, scores, &spec)?; // [2, 2]
/// assert_eq!(cka.dims(), [2, 2]);
/// # Ok(()) }
/// ```
pub fn top_k_cka(
    hidden: Tensor<3>,
    mask: Tensor<2>,
    scores: Tensor<2>,
    spec: &TopKCkaSpec,
) -> Result<Tensor<2>, CkaError> {
    let (selected, row_mask) = prepare(hidden, &mask, &scores, spec)?;
    Ok(Tensor::from_dispatch(
        <Dispatch as CkaOps>::nested_prefix_cka(
            selected.into_dispatch(),
            row_mask.into_dispatch(),
            spec.dims.clone(),
            spec.detach_teacher,
        ),
    ))
}

/// [`top_k_cka`] composed of ordinary tensor ops, one independent CKA per truncated dim.
///
/// Same inputs, outputs and errors as [`top_k_cka`]. It costs `O(n · K² · D)` instead of
/// `O(K² · D)` and differentiates through Burn's autodiff; it is the reference the fused path
/// is tested against, and works on every backend.
pub fn top_k_cka_reference(
    hidden: Tensor<3>,
    mask: Tensor<2>,
    scores: Tensor<2>,
    spec: &TopKCkaSpec,
) -> Result<Tensor<2>, CkaError> {
    let (selected, row_mask) = prepare(hidden, &mask, &scores, spec)?;
    let [batch, k, _] = selected.dims();
    let teacher = if spec.detach_teacher {
        selected.clone().detach()
    } else {
        selected.clone()
    };
    let per_dim: Vec<Tensor<1>> = spec
        .dims
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let w = row_mask
                .clone()
                .slice([0..batch, i..i + 1, 0..k])
                .reshape([batch, k]);
            let x = selected.clone().slice([0..batch, 0..k, 0..d]);
            masked_linear_cka(x, teacher.clone(), w)
        })
        .collect();
    Ok(Tensor::stack(per_dim, 1))
}

/// Validates the inputs, ranks the tokens and gathers the ranked rows `[B, K, D]`.
fn prepare(
    hidden: Tensor<3>,
    mask: &Tensor<2>,
    scores: &Tensor<2>,
    spec: &TopKCkaSpec,
) -> Result<(Tensor<3>, Tensor<3>), CkaError> {
    let [batch, len, width] = hidden.dims();
    if hidden.dims().contains(&0) {
        return Err(CkaError::Empty {
            what: format!("`hidden` has shape {}", fmt_shape(&hidden.dims())),
        });
    }
    for (name, t) in [("mask", mask), ("scores", scores)] {
        if t.dims() != [batch, len] {
            return Err(CkaError::ShapeMismatch {
                what: format!("`{name}` must be [B, m] for `hidden` [B, m, D]"),
                shapes: format!(
                    "hidden {}, {name} {}",
                    fmt_shape(&hidden.dims()),
                    fmt_shape(&t.dims())
                ),
            });
        }
    }
    spec.validate(width)?;
    let selection = TopKSelection::rank(mask, scores, spec)?;
    let device = hidden.device();
    let dtype = hidden.dtype();
    let selected = hidden
        .reshape([batch * len, width])
        .select(0, selection.gather_indices(&device))
        .reshape([batch, selection.k_max, width]);
    // CKA is invariant to a shift common to every row, so subtract the top-ranked row (real, and
    // kept by every dim): the Grams are then formed from differences, not from the raw values,
    // whose common offset would cancel in the centring only up to f32 rounding — enough to turn
    // a zero-variance example (defined CKA 0) into ±1.
    let k_max = selection.k_max;
    let first = selected.clone().slice([0..batch, 0..1, 0..width]);
    let selected = selected - first.expand([batch, k_max, width]);
    let row_mask = selection.row_masks(&device).cast(dtype);
    Ok((selected, row_mask))
}
