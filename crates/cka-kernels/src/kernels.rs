//! `#[cube]` kernels of the nested-prefix CKA (forward and backward), for every CubeCL runtime.
//!
//! Layout (all contiguous): `hidden [B, K, D]`, `row_mask [B, n, K]`, `bounds [J + 1]` the block
//! boundaries `0 = b_0 < … < b_J = D` (the dims, plus `D` when the last dim is below it).
//!
//! Forward = three launches: prefix Grams (one thread per `(b, a, c)`, one pass over `D` writing
//! the Gram at every boundary), row means (one thread per `(b, i, a)`), and the per-`(b, i)`
//! reduction to CKA. Backward recomputes those and adds two launches: the block matrices `M_j`
//! (one thread per `(b, j, a, c)`) and `dH = M_j H` (one thread per `(b, a, f)`).

use burn::backend::{ops::IntTensorOps, TensorMetadata};
use burn::tensor::{Shape, TensorData};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::{calculate_cube_count_elemwise, CubeDim};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeBackend;

use crate::linear_cka::CKA_EPS;
use crate::ops::blocks;

/// Statistics stored per `(b, i)`: CKA, ‖Kx‖, ‖Ky‖, grand mean of Gx, grand mean of Gy.
const N_STATS: usize = 5;

#[cube(launch)]
fn prefix_gram_kernel<F: Float, I: Numeric>(
    hidden: &Tensor<F>,
    bounds: &Tensor<I>,
    grams: &mut Tensor<F>,
    rows: u32,
    width: u32,
    n_blocks: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let k = rows as usize;
    let d = width as usize;
    let nb = n_blocks as usize;
    let pos = ABSOLUTE_POS;
    if pos >= grams.len() / nb {
        terminate!();
    }
    let b = pos / (k * k);
    let a = (pos / k) % k;
    let c = pos % k;
    let row_a = (b * k + a) * d;
    let row_c = (b * k + c) * d;
    let mut acc = F::new(0.0);
    let mut f = 0usize;
    let mut j = 0usize;
    while j < nb {
        let end = u32::cast_from(bounds[j + 1]) as usize;
        while f < end {
            acc += hidden[row_a + f] * hidden[row_c + f];
            f += 1;
        }
        grams[((b * nb + j) * k + a) * k + c] = acc;
        j += 1;
    }
}

/// Row means `r_a = Σ_c w_c G_ac / k` of Gx (slot 0) and Gy (slot 1): `[B, n, 2, K]`.
#[cube(launch)]
fn row_mean_kernel<F: Float>(
    grams: &Tensor<F>,
    row_mask: &Tensor<F>,
    means: &mut Tensor<F>,
    rows: u32,
    n_dims: u32,
    n_blocks: u32,
    #[define(F)] _dtype: ElemType,
) {
    let k = rows as usize;
    let n = n_dims as usize;
    let nb = n_blocks as usize;
    let pos = ABSOLUTE_POS;
    if pos >= means.len() / 2 {
        terminate!();
    }
    let b = pos / (n * k);
    let i = (pos / k) % n;
    let a = pos % k;
    let mask_row = (b * n + i) * k;
    let gx = ((b * nb + i) * k + a) * k;
    let gy = ((b * nb + nb - 1) * k + a) * k;
    let mut count = F::new(0.0);
    let mut sx = F::new(0.0);
    let mut sy = F::new(0.0);
    let mut c = 0usize;
    while c < k {
        let w = row_mask[mask_row + c];
        count += w;
        sx += w * grams[gx + c];
        sy += w * grams[gy + c];
        c += 1;
    }
    let out = ((b * n + i) * 2) * k + a;
    means[out] = sx / count;
    means[out + k] = sy / count;
}

/// One thread per `(b, i)`: centre, reduce, and write CKA and its statistics.
#[cube(launch)]
fn cka_stats_kernel<F: Float>(
    grams: &Tensor<F>,
    row_mask: &Tensor<F>,
    means: &Tensor<F>,
    stats: &mut Tensor<F>,
    cka: &mut Tensor<F>,
    rows: u32,
    n_dims: u32,
    n_blocks: u32,
    eps2: f32,
    #[define(F)] _dtype: ElemType,
) {
    let k = rows as usize;
    let n = n_dims as usize;
    let nb = n_blocks as usize;
    let pos = ABSOLUTE_POS;
    if pos >= cka.len() {
        terminate!();
    }
    let b = pos / n;
    let i = pos % n;
    let mask_row = (b * n + i) * k;
    let mean_row = ((b * n + i) * 2) * k;
    let mut count = F::new(0.0);
    let mut tx = F::new(0.0);
    let mut ty = F::new(0.0);
    let mut a = 0usize;
    while a < k {
        let w = row_mask[mask_row + a];
        count += w;
        tx += w * means[mean_row + a];
        ty += w * means[mean_row + k + a];
        a += 1;
    }
    let sx = tx / count;
    let sy = ty / count;
    let mut cross = F::new(0.0);
    let mut xx = F::new(0.0);
    let mut yy = F::new(0.0);
    let mut a = 0usize;
    while a < k {
        let wa = row_mask[mask_row + a];
        let rxa = means[mean_row + a];
        let rya = means[mean_row + k + a];
        let gx = ((b * nb + i) * k + a) * k;
        let gy = ((b * nb + nb - 1) * k + a) * k;
        let mut c = 0usize;
        while c < k {
            let w = wa * row_mask[mask_row + c];
            let kx = w * (grams[gx + c] - rxa - means[mean_row + c] + sx);
            let ky = w * (grams[gy + c] - rya - means[mean_row + k + c] + sy);
            cross += kx * ky;
            xx += kx * kx;
            yy += ky * ky;
            c += 1;
        }
        a += 1;
    }
    let nx = F::sqrt(xx + F::cast_from(eps2));
    let ny = F::sqrt(yy + F::cast_from(eps2));
    let value = cross / (nx * ny);
    cka[pos] = value;
    let s = pos * 5;
    stats[s] = value;
    stats[s + 1] = nx;
    stats[s + 2] = ny;
    stats[s + 3] = sx;
    stats[s + 4] = sy;
}

/// `M_j[a, c] = 2 (Σ_{i ≥ j} u_i ∂CKA_i/∂Gx_i + [!detach] Σ_i u_i ∂CKA_i/∂Gy_i)`: `[B, J, K, K]`.
#[cube(launch)]
fn block_matrix_kernel<F: Float>(
    grams: &Tensor<F>,
    row_mask: &Tensor<F>,
    means: &Tensor<F>,
    stats: &Tensor<F>,
    upstream: &Tensor<F>,
    blocks_out: &mut Tensor<F>,
    rows: u32,
    n_dims: u32,
    n_blocks: u32,
    detach_teacher: u32,
    #[define(F)] _dtype: ElemType,
) {
    let k = rows as usize;
    let n = n_dims as usize;
    let nb = n_blocks as usize;
    let pos = ABSOLUTE_POS;
    if pos >= blocks_out.len() {
        terminate!();
    }
    let b = pos / (nb * k * k);
    let j = (pos / (k * k)) % nb;
    let a = (pos / k) % k;
    let c = pos % k;
    let gy = grams[((b * nb + nb - 1) * k + a) * k + c];
    let mut acc = F::new(0.0);
    let mut i = 0usize;
    while i < n {
        let mask_row = (b * n + i) * k;
        let mean_row = ((b * n + i) * 2) * k;
        let s = (b * n + i) * 5;
        let value = stats[s];
        let nx = stats[s + 1];
        let ny = stats[s + 2];
        let w = row_mask[mask_row + a] * row_mask[mask_row + c];
        let gx = grams[((b * nb + i) * k + a) * k + c];
        let kx = w * (gx - means[mean_row + a] - means[mean_row + c] + stats[s + 3]);
        let ky = w * (gy - means[mean_row + k + a] - means[mean_row + k + c] + stats[s + 4]);
        let u = upstream[b * n + i];
        let nxy = nx * ny;
        if i >= j {
            acc += u * (ky / nxy - value * kx / (nx * nx));
        }
        if detach_teacher == 0 {
            acc += u * (kx / nxy - value * ky / (ny * ny));
        }
        i += 1;
    }
    blocks_out[pos] = F::new(2.0) * acc;
}

/// `dH[b, a, f] = Σ_c M_{j(f)}[a, c] H[b, c, f]`, `j(f)` the block holding feature `f`.
#[cube(launch)]
fn grad_hidden_kernel<F: Float, I: Numeric>(
    hidden: &Tensor<F>,
    bounds: &Tensor<I>,
    blocks_in: &Tensor<F>,
    grad: &mut Tensor<F>,
    rows: u32,
    width: u32,
    n_blocks: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let k = rows as usize;
    let d = width as usize;
    let nb = n_blocks as usize;
    let pos = ABSOLUTE_POS;
    if pos >= grad.len() {
        terminate!();
    }
    let b = pos / (k * d);
    let a = (pos / d) % k;
    let f = pos % d;
    let mut j = 0usize;
    while u32::cast_from(bounds[j + 1]) as usize <= f {
        j += 1;
    }
    let m_row = ((b * nb + j) * k + a) * k;
    let mut acc = F::new(0.0);
    let mut c = 0usize;
    while c < k {
        acc += blocks_in[m_row + c] * hidden[(b * k + c) * d + f];
        c += 1;
    }
    grad[pos] = acc;
}

/// Device buffers shared by the forward and backward passes.
struct Forward {
    hidden: CubeTensor,
    row_mask: CubeTensor,
    bounds: CubeTensor,
    grams: CubeTensor,
    means: CubeTensor,
    stats: CubeTensor,
    n_blocks: usize,
}

fn launch_dims(client: &CubeTensor, total: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(&client.client, total);
    let cube_count = calculate_cube_count_elemwise(&client.client, total, cube_dim);
    (cube_count, cube_dim)
}

/// Runs the three forward launches; returns the buffers the backward needs and the CKA `[B, n]`.
fn run_forward(hidden: CubeTensor, row_mask: CubeTensor, dims: &[usize]) -> (Forward, CubeTensor) {
    let hidden = into_contiguous(hidden);
    let row_mask = into_contiguous(row_mask);
    let [batch, rows, width] = hidden.shape().dims::<3>();
    let n = dims.len();
    let mut bounds: Vec<i32> = vec![0];
    bounds.extend(blocks(dims, width).iter().map(|&(_, end)| end as i32));
    let n_blocks = bounds.len() - 1;
    let bounds =
        CubeBackend::int_from_data(TensorData::new(bounds, [n_blocks + 1]), &hidden.device);
    let client = hidden.client.clone();
    let device = hidden.device.clone();
    let dtype = hidden.dtype;
    let f_type = burn::backend::cubecl::dtype_to_storage_type(dtype);
    let i_type = burn::backend::cubecl::dtype_to_storage_type(bounds.dtype);

    let grams = empty_device_dtype(
        client.clone(),
        device.clone(),
        Shape::new([batch, n_blocks, rows, rows]),
        dtype,
    );
    let (count, dim) = launch_dims(&hidden, batch * rows * rows);
    prefix_gram_kernel::launch(
        &client,
        count,
        dim,
        hidden.clone().into_tensor_arg(),
        bounds.clone().into_tensor_arg(),
        grams.clone().into_tensor_arg(),
        rows as u32,
        width as u32,
        n_blocks as u32,
        [f_type, i_type],
    );

    let means = empty_device_dtype(
        client.clone(),
        device.clone(),
        Shape::new([batch, n, 2, rows]),
        dtype,
    );
    let (count, dim) = launch_dims(&hidden, batch * n * rows);
    row_mean_kernel::launch(
        &client,
        count,
        dim,
        grams.clone().into_tensor_arg(),
        row_mask.clone().into_tensor_arg(),
        means.clone().into_tensor_arg(),
        rows as u32,
        n as u32,
        n_blocks as u32,
        f_type,
    );

    let stats = empty_device_dtype(
        client.clone(),
        device.clone(),
        Shape::new([batch, n, N_STATS]),
        dtype,
    );
    let cka = empty_device_dtype(client.clone(), device, Shape::new([batch, n]), dtype);
    let (count, dim) = launch_dims(&hidden, batch * n);
    cka_stats_kernel::launch(
        &client,
        count,
        dim,
        grams.clone().into_tensor_arg(),
        row_mask.clone().into_tensor_arg(),
        means.clone().into_tensor_arg(),
        stats.clone().into_tensor_arg(),
        cka.clone().into_tensor_arg(),
        rows as u32,
        n as u32,
        n_blocks as u32,
        (CKA_EPS * CKA_EPS) as f32,
        f_type,
    );
    let fwd = Forward {
        hidden,
        row_mask,
        bounds,
        grams,
        means,
        stats,
        n_blocks,
    };
    (fwd, cka)
}

/// Fused forward: `[B, n]` CKA values (see the crate docs for the algorithm).
pub fn nested_prefix_cka(hidden: CubeTensor, row_mask: CubeTensor, dims: &[usize]) -> CubeTensor {
    run_forward(hidden, row_mask, dims).1
}

/// Fused backward: the gradient with respect to `hidden` `[B, K, D]` for upstream `grad [B, n]`.
pub fn nested_prefix_cka_backward(
    hidden: CubeTensor,
    row_mask: CubeTensor,
    dims: &[usize],
    grad: CubeTensor,
    detach_teacher: bool,
) -> CubeTensor {
    let (fwd, _) = run_forward(hidden, row_mask, dims);
    let upstream = into_contiguous(grad);
    let [batch, rows, width] = fwd.hidden.shape().dims::<3>();
    let n = dims.len();
    let client = fwd.hidden.client.clone();
    let device = fwd.hidden.device.clone();
    let dtype = fwd.hidden.dtype;
    let f_type = burn::backend::cubecl::dtype_to_storage_type(dtype);
    let i_type = burn::backend::cubecl::dtype_to_storage_type(fwd.bounds.dtype);

    let matrices = empty_device_dtype(
        client.clone(),
        device.clone(),
        Shape::new([batch, fwd.n_blocks, rows, rows]),
        dtype,
    );
    let (count, dim) = launch_dims(&fwd.hidden, batch * fwd.n_blocks * rows * rows);
    block_matrix_kernel::launch(
        &client,
        count,
        dim,
        fwd.grams.into_tensor_arg(),
        fwd.row_mask.into_tensor_arg(),
        fwd.means.into_tensor_arg(),
        fwd.stats.into_tensor_arg(),
        upstream.into_tensor_arg(),
        matrices.clone().into_tensor_arg(),
        rows as u32,
        n as u32,
        fwd.n_blocks as u32,
        u32::from(detach_teacher),
        f_type,
    );

    let out = empty_device_dtype(
        client.clone(),
        device,
        Shape::new([batch, rows, width]),
        dtype,
    );
    let (count, dim) = launch_dims(&fwd.hidden, batch * rows * width);
    grad_hidden_kernel::launch(
        &client,
        count,
        dim,
        fwd.hidden.into_tensor_arg(),
        fwd.bounds.into_tensor_arg(),
        matrices.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        rows as u32,
        width as u32,
        fwd.n_blocks as u32,
        [f_type, i_type],
    );
    out
}
