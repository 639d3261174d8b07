//! `--device`: which Burn backend runs the model.

use burn::tensor::Device;

/// A Burn backend selectable on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// Burn's NdArray CPU backend.
    Ndarray,
    /// Burn's Flex CPU backend (pure Rust, SIMD + rayon).
    Flex,
    /// wgpu (Vulkan/Metal/DX12; lavapipe on CPU-only machines).
    Wgpu,
}

impl DeviceArg {
    /// The device, or an error naming the cargo feature that would enable it.
    pub fn device(self) -> anyhow::Result<Device> {
        match self {
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            DeviceArg::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "flex")]
            DeviceArg::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceArg::Wgpu => Ok(Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => anyhow::bail!(
                "--device {other:?} is not compiled in; rebuild with `--features {}`",
                format!("{other:?}").to_lowercase()
            ),
        }
    }
}
