//! The backend extension behind [`top_k_cka`](crate::top_k_cka): nested-prefix CKA.
//!
//! `nested_prefix_cka(H, W, dims)` computes, for every example `b` and truncated dim `i`,
//! `CKA(H[b, rows_i, :d_i], H[b, rows_i, :])` where `rows_i = {a : W[b, i, a] = 1}`. Three
//! implementations:
//! - the portable one, written with backend primitive ops — the default method bodies, for any
//!   backend without an override, and always callable as
//!   [`CkaOps::nested_prefix_cka_portable`] / [`CkaOps::nested_prefix_cka_portable_backward`];
//! - flex and ndarray: a host implementation (module `host`: per-example GEMMs and loops);
//! - CubeCL backends (feature `cube`): fused `#[cube]` kernels (module `kernels`).
//!
//! `Autodiff<B>` runs `B`'s forward and routes the backward pass to
//! [`CkaOps::nested_prefix_cka_backward`] of `B`.

use burn::backend::TensorMetadata;
use burn::backend::{backend_extension, tensor::FloatTensor, Backend};
use burn::tensor::{Shape, Slice};

use crate::linear_cka::CKA_EPS;

/// Nested-prefix CKA as a backend operation (forward and hand-written backward).
///
/// Shapes: `hidden [B, K, D]` (rows already ranked), `row_mask [B, n, K]` (0/1), `dims` the `n`
/// strictly increasing truncated widths (each `<= D`); output `[B, n]`.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Cube: cfg(feature = "cube"),
    Autodiff,
)]
pub trait CkaOps: Backend {
    /// `CKA(H[rows_i, :d_i], H[rows_i, :])` for every example and truncated dim: `[B, n]`.
    ///
    /// `detach_teacher` only matters under autodiff: the full-width side then carries no
    /// gradient.
    ///
    /// Default: [`CkaOps::nested_prefix_cka_portable`].
    fn nested_prefix_cka(
        hidden: FloatTensor<Self>,
        row_mask: FloatTensor<Self>,
        dims: Vec<usize>,
        detach_teacher: bool,
    ) -> FloatTensor<Self> {
        let _ = detach_teacher;
        Self::nested_prefix_cka_portable(hidden, row_mask, dims)
    }

    /// Gradient of `Σ_{b,i} grad[b, i] · CKA[b, i]` with respect to `hidden`: `[B, K, D]`.
    ///
    /// One pass over the features: for features in `(d_{j-1}, d_j]`,
    /// `dH = M_j H` with `M_j = 2 (Σ_{i ≥ j} ∂CKA_i/∂Gx_i + Σ_i ∂CKA_i/∂Gy_i)`.
    ///
    /// Default: [`CkaOps::nested_prefix_cka_portable_backward`].
    fn nested_prefix_cka_backward(
        hidden: FloatTensor<Self>,
        row_mask: FloatTensor<Self>,
        dims: Vec<usize>,
        grad: FloatTensor<Self>,
        detach_teacher: bool,
    ) -> FloatTensor<Self> {
        Self::nested_prefix_cka_portable_backward(hidden, row_mask, dims, grad, detach_teacher)
    }

    /// The portable forward, composed of backend ops (batched matmuls over the feature blocks, a
    /// cumulative sum, element-wise centring over `[B, n, K, K]`): the fallback body of
    /// [`CkaOps::nested_prefix_cka`] for backends without their own. It stays callable where a
    /// backend overrides that method (flex and ndarray run a host implementation, CubeCL
    /// backends fused kernels), so tests and benchmarks can compare the implementations; under
    /// `Autodiff` it is differentiated op by op. Not meant to be overridden.
    fn nested_prefix_cka_portable(
        hidden: FloatTensor<Self>,
        row_mask: FloatTensor<Self>,
        dims: Vec<usize>,
    ) -> FloatTensor<Self> {
        let stats = NestedStats::<Self>::compute(&hidden, row_mask, &dims);
        let [batch, n, _, _] = stats.cka.shape().dims::<4>();
        Self::float_reshape(stats.cka, Shape::new([batch, n]))
    }

    /// The portable backward (see [`CkaOps::nested_prefix_cka_portable`]): the fallback body of
    /// [`CkaOps::nested_prefix_cka_backward`]. Not meant to be overridden.
    fn nested_prefix_cka_portable_backward(
        hidden: FloatTensor<Self>,
        row_mask: FloatTensor<Self>,
        dims: Vec<usize>,
        grad: FloatTensor<Self>,
        detach_teacher: bool,
    ) -> FloatTensor<Self> {
        let stats = NestedStats::<Self>::compute(&hidden, row_mask, &dims);
        stats.backward(&hidden, &dims, grad, detach_teacher)
    }
}

/// Feature boundaries `0 = d_0 < d_1 < … < d_n <= D`, plus `D` when `d_n < D`.
pub(crate) fn blocks(dims: &[usize], width: usize) -> Vec<(usize, usize)> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(dims);
    if *bounds.last().expect("non-empty") < width {
        bounds.push(width);
    }
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Centred Grams and CKA statistics of the nested-prefix problem, `[B, n, K, K]` / `[B, n, 1, 1]`.
struct NestedStats<B: Backend> {
    kx: FloatTensor<B>,
    ky: FloatTensor<B>,
    nx: FloatTensor<B>,
    ny: FloatTensor<B>,
    cka: FloatTensor<B>,
}

fn feature_block<B: Backend>(hidden: &FloatTensor<B>, start: usize, end: usize) -> FloatTensor<B> {
    let [batch, rows, _] = hidden.shape().dims::<3>();
    B::float_slice(
        hidden.clone(),
        &[
            Slice::from(0..batch),
            Slice::from(0..rows),
            Slice::from(start..end),
        ],
    )
}

fn sum_last2<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_sum_dim(B::float_sum_dim(t, 3), 2)
}

impl<B: Backend> NestedStats<B> {
    fn compute(hidden: &FloatTensor<B>, row_mask: FloatTensor<B>, dims: &[usize]) -> Self {
        let [batch, rows, width] = hidden.shape().dims::<3>();
        let n = dims.len();
        // One pass over D: the Gram of each feature block, then a prefix sum over blocks gives
        // the Gram of every nested prefix.
        let deltas: Vec<FloatTensor<B>> = blocks(dims, width)
            .into_iter()
            .map(|(start, end)| {
                let block = feature_block::<B>(hidden, start, end);
                let gram = B::float_matmul(block.clone(), B::float_swap_dims(block, 1, 2));
                B::float_reshape(gram, Shape::new([batch, 1, rows, rows]))
            })
            .collect();
        let n_blocks = deltas.len();
        let prefix = B::float_cumsum(B::float_cat(deltas, 1), 1);
        let slice_blocks = |range: std::ops::Range<usize>| {
            B::float_slice(
                prefix.clone(),
                &[
                    Slice::from(0..batch),
                    Slice::from(range),
                    Slice::from(0..rows),
                    Slice::from(0..rows),
                ],
            )
        };
        let gx = slice_blocks(0..n);
        let gy = slice_blocks(n_blocks - 1..n_blocks);

        let wa = B::float_reshape(row_mask.clone(), Shape::new([batch, n, rows, 1]));
        let wc = B::float_reshape(row_mask, Shape::new([batch, n, 1, rows]));
        let count = B::float_sum_dim(wa.clone(), 2); // [B, n, 1, 1]
        let centre = |g: FloatTensor<B>| {
            // K_ac = w_a w_c (G_ac - r_a - r_c + s), r_a = Σ_c w_c G_ac / k, s = Σ_a w_a r_a / k.
            let r = B::float_div(
                B::float_sum_dim(B::float_mul(g.clone(), wc.clone()), 3),
                count.clone(),
            );
            let s = B::float_div(
                B::float_sum_dim(B::float_mul(r.clone(), wa.clone()), 2),
                count.clone(),
            );
            let rt = B::float_swap_dims(r.clone(), 2, 3);
            let centred = B::float_add(B::float_sub(B::float_sub(g, r), rt), s);
            B::float_mul(B::float_mul(centred, wa.clone()), wc.clone())
        };
        let kx = centre(gx);
        let ky = centre(gy);
        let eps2 = CKA_EPS * CKA_EPS;
        let norm = |k: &FloatTensor<B>| {
            B::float_sqrt(B::float_add_scalar(
                sum_last2::<B>(B::float_mul(k.clone(), k.clone())),
                eps2.into(),
            ))
        };
        let nx = norm(&kx);
        let ny = norm(&ky);
        let cross = sum_last2::<B>(B::float_mul(kx.clone(), ky.clone()));
        let cka = B::float_div(cross, B::float_mul(nx.clone(), ny.clone()));
        Self {
            kx,
            ky,
            nx,
            ny,
            cka,
        }
    }

    fn backward(
        self,
        hidden: &FloatTensor<B>,
        dims: &[usize],
        grad: FloatTensor<B>,
        detach_teacher: bool,
    ) -> FloatTensor<B> {
        let [batch, rows, width] = hidden.shape().dims::<3>();
        let n = dims.len();
        let u = B::float_reshape(grad, Shape::new([batch, n, 1, 1]));
        let nxy = B::float_mul(self.nx.clone(), self.ny.clone());
        // ∂CKA/∂Kx = Ky/(nx ny) − CKA·Kx/nx²; centring is idempotent, so ∂/∂Gx is the same.
        let partial = |other: &FloatTensor<B>, own: &FloatTensor<B>, own_norm: &FloatTensor<B>| {
            let cross = B::float_div(other.clone(), nxy.clone());
            let own_sq = B::float_mul(own_norm.clone(), own_norm.clone());
            let self_term = B::float_div(B::float_mul(own.clone(), self.cka.clone()), own_sq);
            B::float_mul(B::float_sub(cross, self_term), u.clone())
        };
        let g_x = partial(&self.ky, &self.kx, &self.nx); // [B, n, K, K]
                                                         // Features in block j belong to X_i for every i >= j: a reverse prefix sum over i.
        let total = B::float_sum_dim(g_x.clone(), 1);
        let cumulative = B::float_cumsum(g_x.clone(), 1);
        let suffix = B::float_add(B::float_sub(total, cumulative), g_x);
        let g_y = if detach_teacher {
            None
        } else {
            Some(B::float_sum_dim(partial(&self.kx, &self.ky, &self.ny), 1)) // [B, 1, K, K]
        };
        let pieces: Vec<FloatTensor<B>> = blocks(dims, width)
            .into_iter()
            .enumerate()
            .map(|(j, (start, end))| {
                let block = feature_block::<B>(hidden, start, end);
                let x_part = (j < n).then(|| {
                    B::float_slice(
                        suffix.clone(),
                        &[
                            Slice::from(0..batch),
                            Slice::from(j..j + 1),
                            Slice::from(0..rows),
                            Slice::from(0..rows),
                        ],
                    )
                });
                let m = match (x_part, g_y.clone()) {
                    (Some(x), Some(y)) => B::float_add(x, y),
                    (Some(x), None) => x,
                    (None, Some(y)) => y,
                    // Detached teacher: the features past the last dim get no gradient.
                    (None, None) => return B::float_mul_scalar(block, 0.0f64.into()),
                };
                let m = B::float_mul_scalar(
                    B::float_reshape(m, Shape::new([batch, rows, rows])),
                    2.0f64.into(),
                );
                B::float_matmul(m, block)
            })
            .collect();
        B::float_cat(pieces, 2)
    }
}
