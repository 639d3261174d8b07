//! CubeCL backends (wgpu, cuda, …): the fused `#[cube]` kernels of [`crate::kernels`].

use burn::backend::tensor::FloatTensor;
use burn_cubecl::CubeBackend;

use crate::{kernels, CkaOps};

impl CkaOps for CubeBackend {
    fn nested_prefix_cka(
        hidden: FloatTensor<Self>,
        row_mask: FloatTensor<Self>,
        dims: Vec<usize>,
        _detach_teacher: bool,
    ) -> FloatTensor<Self> {
        kernels::nested_prefix_cka(hidden, row_mask, &dims)
    }

    fn nested_prefix_cka_backward(
        hidden: FloatTensor<Self>,
        row_mask: FloatTensor<Self>,
        dims: Vec<usize>,
        grad: FloatTensor<Self>,
        detach_teacher: bool,
    ) -> FloatTensor<Self> {
        kernels::nested_prefix_cka_backward(hidden, row_mask, &dims, grad, detach_teacher)
    }
}
