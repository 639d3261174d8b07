//! Nested-prefix CKA on the host: the CPU backends' (flex, ndarray) implementation of
//! [`CkaOps`](crate::CkaOps).
//!
//! The same algorithm as the portable default body and the `#[cube]` kernels (one pass over the
//! features accumulates the `K × K` Gram of every nested prefix; the backward is one more pass,
//! `dH[:, block j] = M_j H[:, block j]`), but per example in plain Rust: the Grams and the
//! backward products are GEMMs (`ndarray`/`matrixmultiply`, which picks AVX/FMA kernels at run
//! time), while the centring and the CKA statistics — `O(n · K²)` per example, negligible next
//! to the `O(K² · D)` GEMMs — are loops over `K × K` buffers instead of ~50 whole-tensor passes
//! over `[B, n, K, K]` as the default body does. Examples are split across threads.

use nd::linalg::general_mat_mul;
use nd::{Array2, ArrayView2, ArrayViewMut2, Axis, NdFloat, Slice};
use num_traits::NumCast;

use crate::linear_cka::CKA_EPS;
use crate::ops::blocks;

/// The problem: `hidden [B, K, D]`, `row_mask [B, n, K]` (0/1), `dims` (`n` increasing widths),
/// in f32 or f64 (the computation runs in the input's precision; reductions in f64).
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a, T> {
    pub hidden: &'a [T],
    pub row_mask: &'a [T],
    pub batch: usize,
    pub rows: usize,
    pub width: usize,
    pub dims: &'a [usize],
}

/// One dim's statistics on one example: the kept rows (`w = 1`), the centred Grams restricted
/// to them (`k × k`, row-major, `k` = kept rows), their norms and the CKA.
struct DimStats<T> {
    kept: Kept,
    kx: Vec<T>,
    ky: Vec<T>,
    nx: T,
    ny: T,
    cka: T,
}

/// The rows a dim keeps: a prefix `0..k` (what `top_k_cka` builds) or any index set.
enum Kept {
    Prefix(usize),
    Rows(Vec<usize>),
}

impl Kept {
    fn of<T: NdFloat>(w: &[T]) -> Self {
        let rows: Vec<usize> = (0..w.len()).filter(|&a| w[a] != T::zero()).collect();
        if rows.iter().enumerate().all(|(r, &a)| r == a) {
            Kept::Prefix(rows.len())
        } else {
            Kept::Rows(rows)
        }
    }

    fn len(&self) -> usize {
        match self {
            Kept::Prefix(k) => *k,
            Kept::Rows(rows) => rows.len(),
        }
    }

    fn row(&self, r: usize) -> usize {
        match self {
            Kept::Prefix(_) => r,
            Kept::Rows(rows) => rows[r],
        }
    }

    /// `G` restricted to the kept rows and columns, row-major.
    fn gather<T: NdFloat>(&self, g: &Array2<T>) -> Vec<T> {
        let k = self.len();
        let mut out = Vec::with_capacity(k * k);
        for r in 0..k {
            let row = g.row(self.row(r));
            let row = row.as_slice().expect("standard layout");
            match self {
                Kept::Prefix(_) => out.extend_from_slice(&row[..k]),
                Kept::Rows(rows) => out.extend(rows.iter().map(|&c| row[c])),
            }
        }
        out
    }

    /// `M[kept, kept] += scale · g` (`g` row-major `k × k`).
    fn scatter_add<T: NdFloat>(&self, m: &mut Array2<T>, g: &[T], scale: T) {
        let k = self.len();
        for r in 0..k {
            let src = &g[r * k..(r + 1) * k];
            let mut row = m.row_mut(self.row(r));
            let row = row.as_slice_mut().expect("standard layout");
            match self {
                Kept::Prefix(_) => {
                    for (x, &v) in row[..k].iter_mut().zip(src) {
                        *x += scale * v;
                    }
                }
                Kept::Rows(rows) => {
                    for (&c, &v) in rows.iter().zip(src) {
                        row[c] += scale * v;
                    }
                }
            }
        }
    }
}

/// `x` as `T` (exact for the f32/f64 values used here).
fn cast<T: NdFloat>(x: f64) -> T {
    <T as NumCast>::from(x).expect("f64 converts to f32/f64")
}

/// `Σ a_i b_i` with eight independent accumulators (vectorises; less rounding than one).
fn dot<T: NdFloat>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: T = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().fold(tail, |s, &x| s + x)
}

/// `Σ a_i`, as [`dot`].
fn sum<T: NdFloat>(a: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let a8 = a.chunks_exact(8);
    let tail = a8.remainder().iter().fold(T::zero(), |s, &x| s + x);
    for x in a8 {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    acc.iter().fold(tail, |s, &x| s + x)
}

/// Double centring of a `k × k` Gram in place: `K_ac = G_ac − r_a − r_c + s`, `r` the row means
/// and `s` their mean (the kept rows' Gram of the column-centred features).
fn centre<T: NdFloat>(g: &mut [T], k: usize) {
    if k == 0 {
        return;
    }
    let inv = cast::<T>(1.0 / k as f64);
    let means: Vec<T> = g.chunks_exact(k).map(|row| sum(row) * inv).collect();
    let grand = sum(&means) * inv;
    for (row, &ra) in g.chunks_exact_mut(k).zip(&means) {
        let shift = ra - grand;
        for (x, &rc) in row.iter_mut().zip(&means) {
            *x = *x - shift - rc;
        }
    }
}

/// `sqrt(‖K‖²_F + ε²)`, as the other implementations.
fn frobenius<T: NdFloat>(k: &[T]) -> T {
    (dot(k, k) + cast::<T>(CKA_EPS * CKA_EPS)).sqrt()
}

impl<T: NdFloat> Problem<'_, T> {
    fn n(&self) -> usize {
        self.dims.len()
    }

    fn example(&self, b: usize) -> ArrayView2<'_, T> {
        let size = self.rows * self.width;
        ArrayView2::from_shape(
            (self.rows, self.width),
            &self.hidden[b * size..(b + 1) * size],
        )
        .expect("hidden is [B, K, D]")
    }

    fn weights(&self, b: usize, i: usize) -> &[T] {
        let start = (b * self.n() + i) * self.rows;
        &self.row_mask[start..start + self.rows]
    }

    /// One pass over the feature blocks (a GEMM per block into the running Gram), then per dim
    /// the kept rows' centred Grams and the CKA.
    fn stats(&self, b: usize) -> Vec<DimStats<T>> {
        let h = self.example(b);
        let n = self.n();
        let k = self.rows;
        let mut gram = Array2::<T>::zeros((k, k));
        let mut kx = Vec::with_capacity(n);
        let kept: Vec<Kept> = (0..n).map(|i| Kept::of(self.weights(b, i))).collect();
        for (j, (start, end)) in blocks(self.dims, self.width).into_iter().enumerate() {
            let block = h.slice_axis(Axis(1), Slice::from(start..end));
            general_mat_mul(T::one(), &block, &block.t(), T::one(), &mut gram);
            if j < n {
                kx.push(kept[j].gather(&gram));
            }
        }
        kx.into_iter()
            .zip(kept)
            .map(|(mut kx, kept)| {
                let size = kept.len();
                let mut ky = kept.gather(&gram);
                centre(&mut kx, size);
                centre(&mut ky, size);
                let (nx, ny) = (frobenius(&kx), frobenius(&ky));
                let cka = dot(&kx, &ky) / (nx * ny);
                DimStats {
                    kept,
                    kx,
                    ky,
                    nx,
                    ny,
                    cka,
                }
            })
            .collect()
    }

    /// `CKA[b, i]`, `[B, n]` row-major.
    pub(crate) fn forward(&self) -> Vec<T> {
        let n = self.n();
        let mut out = vec![T::zero(); self.batch * n];
        for_each_example(&mut out, n, |b, slot| {
            for (o, st) in slot.iter_mut().zip(self.stats(b)) {
                *o = st.cka;
            }
        });
        out
    }

    /// Gradient of `Σ grad[b, i] · CKA[b, i]` with respect to `hidden`, `[B, K, D]` row-major.
    pub(crate) fn backward(&self, grad: &[T], detach_teacher: bool) -> Vec<T> {
        let n = self.n();
        let (k, width) = (self.rows, self.width);
        let mut out = vec![T::zero(); self.batch * k * width];
        for_each_example(&mut out, k * width, |b, slot| {
            let stats = self.stats(b);
            let h = self.example(b);
            let mut dh = ArrayViewMut2::from_shape((k, width), slot).expect("[K, D]");
            // ∂CKA/∂Kx = Ky/(nx ny) − CKA·Kx/nx² (already centred, so also ∂CKA/∂Gx), added
            // into a K × K matrix at the kept rows; the factor 2 of ∂(HHᵀ) is folded in.
            let add_partial = |m: &mut Array2<T>, i: usize, x_side: bool| {
                let st = &stats[i];
                let u = grad[b * n + i] * cast::<T>(2.0);
                let (own, other, own_norm) = if x_side {
                    (&st.kx, &st.ky, st.nx)
                } else {
                    (&st.ky, &st.kx, st.ny)
                };
                let a = u / (st.nx * st.ny);
                let c = u * st.cka / (own_norm * own_norm);
                st.kept.scatter_add(m, other, a);
                st.kept.scatter_add(m, own, -c);
            };
            // Every Gram Gy_i is over all D features: their gradients add up in every block.
            let mut m = Array2::<T>::zeros((k, k));
            if !detach_teacher {
                for i in 0..n {
                    add_partial(&mut m, i, false);
                }
            }
            // Block j holds features of X_i for every i ≥ j: walk the blocks from the last,
            // accumulating the suffix sum Σ_{i ≥ j} ∂CKA_i/∂Gx_i.
            let all = blocks(self.dims, width);
            for (j, &(start, end)) in all.iter().enumerate().rev() {
                if j < n {
                    add_partial(&mut m, j, true);
                }
                let block = h.slice_axis(Axis(1), Slice::from(start..end));
                let mut target = dh.slice_axis_mut(Axis(1), Slice::from(start..end));
                general_mat_mul(T::one(), &m, &block, T::zero(), &mut target);
            }
        });
        out
    }
}

/// Runs `f(b, out[b])` for every example, the examples split across the available cores.
fn for_each_example<T: Send>(
    out: &mut [T],
    per_example: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let batch = out.len() / per_example.max(1);
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(batch.max(1));
    if threads <= 1 || per_example == 0 {
        for (b, slot) in out.chunks_mut(per_example.max(1)).enumerate() {
            f(b, slot);
        }
        return;
    }
    let per_thread = batch.div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, chunk) in out.chunks_mut(per_thread * per_example).enumerate() {
            let f = &f;
            scope.spawn(move || {
                for (i, slot) in chunk.chunks_mut(per_example).enumerate() {
                    f(t * per_thread + i, slot);
                }
            });
        }
    });
}
