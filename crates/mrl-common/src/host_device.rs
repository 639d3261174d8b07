//! Which devices run on the CPU backends that have this crate's host implementations.

use burn::backend::DispatchDevice;
use burn::tensor::Device;

/// Whether `device` is flex or ndarray (also under autodiff): the backends whose element-wise
/// kernels run on the host thread that calls them, and for which the burn-mrl backend
/// operations ([`crate::log_softmax()`], `models::gelu_exact`, `models::layer_norm`, …) have
/// host implementations (the sentence encoder runs one batch per core there, and training's
/// fused AdamW takes its host path).
pub fn is_host_cpu(device: &Device) -> bool {
    match device.clone().without_autodiff().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        DispatchDevice::NdArray(_) => true,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether `device`'s matrix product copies an operand that is not laid out row-major (a
/// transposed view) before multiplying: ndarray's does (`as_standard_layout`), flex's GEMM reads
/// the strides in place, and the other backends are taken not to copy. Models pick the
/// arrangement of a product by it, e.g. the tied output head of `models::llama`.
pub fn matmul_copies_transposed_operands(device: &Device) -> bool {
    match device.clone().without_autodiff().as_dispatch() {
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        DispatchDevice::NdArray(_) => true,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "ndarray")]
    #[test]
    #[allow(deprecated)]
    fn ndarray_copies_transposed_operands_also_under_autodiff() {
        assert!(matmul_copies_transposed_operands(&Device::ndarray()));
        assert!(matmul_copies_transposed_operands(
            &Device::ndarray().autodiff()
        ));
        assert!(is_host_cpu(&Device::ndarray().autodiff()));
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_reads_transposed_operands_in_place() {
        assert!(!matmul_copies_transposed_operands(&Device::flex()));
        assert!(!matmul_copies_transposed_operands(
            &Device::flex().autodiff()
        ));
        assert!(is_host_cpu(&Device::flex()));
    }
}
