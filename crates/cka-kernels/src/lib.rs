//! Linear and top-k CKA for [Burn](https://burn.dev) 0.22, with fused CubeCL kernels.
//!
//! Centered Kernel Alignment (Kornblith et al., ICML 2019, arXiv 1905.00414) with tokens as
//! samples is the relational similarity that MIPIC (arXiv 2604.24374, §2b) uses to self-distil
//! a truncated Matryoshka prefix of each token state towards the full width:
//!
//! ```text
//! CKA(X, Y) = ‖Xcᵀ Yc‖²_F / (‖Xcᵀ Xc‖_F ‖Ycᵀ Yc‖_F) = ⟨Kx, Ky⟩ / (‖Kx‖ ‖Ky‖),  K = C XXᵀ C
//! ```
//!
//! # API
//! - [`linear_cka`]`(x [B, n, dx], y [B, n, dy], mask) -> [B]` — per-example CKA, padding-aware.
//! - [`top_k_cka`]`(hidden [B, m, D], mask, scores, &spec) -> [B, n_dims]` — the CKA of every
//!   truncated dim `d_i` over the `k_i` best-scored tokens, against the full width.
//! - [`top_k_cka_reference`] — the same, one CKA per dim in plain tensor ops (the test oracle).
//! - [`TopKCkaLoss`] — `1 − CKA` following Burn's loss conventions
//!   ([`TopKCkaLossConfig`] → `init()` → `forward(.., Reduction)` / `forward_no_reduction`).
//! - [`CkaOps`] — the backend extension behind [`top_k_cka`], for backend authors.
//!
//! All entry points return [`CkaError`] (or, for the loss module, panic with its message)
//! on bad input instead of producing NaN; zero-variance inputs have the defined value 0.
//!
//! # The nested-prefix algorithm
//! MIPIC evaluates top-k CKA for every truncated dim at every SIA layer. Done naively, dim `i`
//! costs `k_i² · D` for its own two Grams, and every dim re-reads the whole hidden state. Because
//! the token ranking is shared across dims, the kept sets are nested, so one `K × K` problem
//! (`K = max k_i`) serves every dim:
//!
//! 1. Rank each example's real tokens once by score and gather the top `K` rows: `H [K, D]`.
//! 2. Split the features at the dims, `(0, d_1], (d_1, d_2], …, (d_n, D]`, and accumulate the
//!    sample-space Gram `G_j = Σ_{f ≤ d_j} H[:, f] H[:, f]ᵀ` in one pass over `D`: every prefix
//!    Gram falls out on the way (`G_x(i) = G_i`, `G_y = G_{n+1}`).
//! 3. For dim `i`, restrict both Grams to the first `k_i` rows (a 0/1 row weight `w`), centre
//!    them (`K_ac = w_a w_c (G_ac − r_a − r_c + s)`, `r` the row means and `s` the grand mean over
//!    kept rows) and form `CKA_i = ⟨Kx, Ky⟩ / (‖Kx‖ ‖Ky‖)`.
//! 4. Backward, also one pass over `D`: with `u_i` the upstream gradient,
//!    `∂CKA_i/∂Kx = Ky/(‖Kx‖‖Ky‖) − CKA_i Kx/‖Kx‖²` (and symmetrically for `Ky`); centring is an
//!    idempotent projection so these are also the gradients with respect to the raw Grams. A
//!    feature in block `j` belongs to `X_i` for every `i ≥ j` and to every `Y_i`, so
//!    `dH[:, block j] = M_j H[:, block j]` with `M_j = 2 (Σ_{i≥j} u_i ∂CKA_i/∂Gx_i + Σ_i u_i ∂CKA_i/∂Gy_i)`.
//!
//! Cost: `O(K² · D)` per example instead of `O(n · K² · D)`.
//!
//! # Implementations
//! The same algorithm exists three times behind [`CkaOps`]:
//! - **host** (flex, ndarray): per example, the prefix Grams and the backward products are GEMMs
//!   (`matrixmultiply`, AVX/FMA picked at run time) and the centring and statistics are loops
//!   over `K × K` buffers; examples are split across the cores. The tensors are read to host
//!   memory and the result written back (both backends live there anyway).
//! - **portable** ([`CkaOps::nested_prefix_cka_portable`]): backend ops only — batched matmuls
//!   per feature block, a cumulative sum, element-wise centring over `[B, n, K, K]`. The default
//!   body for any other backend; tested against the other two.
//! - **fused** (`#[cube]` kernels, feature `cube`): kernels for the prefix Grams, the row means,
//!   the statistics, the per-block gradient matrices `M_j` and the backward products.
//!
//! # Backends and features
//! | feature | what it enables |
//! |---|---|
//! | `ndarray` (default) | [`CkaOps`] on NdArray through the host implementation |
//! | `flex` (default) | the same on Flex, Burn's default CPU backend |
//! | `wgpu` | the `#[cube]` kernels on WebGPU / Vulkan / Metal devices (tested in CI on Mesa lavapipe) |
//! | `cuda` | the `#[cube]` kernels on CUDA devices (type-checked in CI; never run: no GPU) |
//!
//! `Autodiff` of any of them uses the hand-written backward ([`CkaOps::nested_prefix_cka_backward`]).
//! The op is not registered for Burn's `fusion` wrapper yet: build wgpu/cuda with fusion off
//! (`burn` with `default-features = false`), as this workspace does.
#![forbid(unsafe_code)]

mod backends;
mod error;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;
#[cfg(feature = "cube")]
pub mod kernels;
mod linear_cka;
mod loss;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
mod ops;
mod selection;
mod spec;
mod top_k_cka;

pub use error::CkaError;
pub use linear_cka::{linear_cka, CKA_EPS};
pub use loss::{CkaImplementation, TopKCkaLoss, TopKCkaLossConfig};
pub use ops::CkaOps;
pub use selection::TopKSelection;
pub use spec::{KSchedule, TopKCkaSpec};
pub use top_k_cka::{top_k_cka, top_k_cka_reference};
