//! Choosing a Burn backend by name (`--device`, `device = "..."` in a TOML config).

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::CommonError;

/// A Burn backend, by the name of the cargo feature that compiles it in.
///
/// Parsed from (and displayed as) `flex`, `ndarray`, `wgpu`, `cuda`, ignoring case; every name
/// parses whether or not its backend is compiled in, and [`DeviceKind::device`] says which
/// feature is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// Burn's Flex CPU backend (pure Rust, SIMD + rayon). The default.
    #[default]
    Flex,
    /// Burn's NdArray CPU backend (deprecated upstream in favour of Flex).
    Ndarray,
    /// wgpu: Vulkan / Metal / DX12 (Mesa lavapipe on a CPU-only machine).
    Wgpu,
    /// CUDA, device 0.
    Cuda,
}

impl DeviceKind {
    /// Every backend, in the order of the error messages.
    pub const ALL: [DeviceKind; 4] = [
        DeviceKind::Flex,
        DeviceKind::Ndarray,
        DeviceKind::Wgpu,
        DeviceKind::Cuda,
    ];

    /// The name, which is also the cargo feature that compiles the backend in.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Flex => "flex",
            DeviceKind::Ndarray => "ndarray",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }

    /// Whether this build includes the backend (the cargo feature of the same name).
    pub fn is_compiled_in(self) -> bool {
        match self {
            DeviceKind::Flex => cfg!(feature = "flex"),
            DeviceKind::Ndarray => cfg!(feature = "ndarray"),
            DeviceKind::Wgpu => cfg!(feature = "wgpu"),
            DeviceKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The backends this build includes.
    pub fn compiled_in() -> Vec<DeviceKind> {
        Self::ALL
            .into_iter()
            .filter(|d| d.is_compiled_in())
            .collect()
    }

    /// The Burn device: `Device::flex()`, `Device::ndarray()`, `Device::wgpu(default adapter)`
    /// or `Device::cuda(0)`.
    ///
    /// # Errors
    /// [`CommonError::DeviceNotCompiled`] naming the cargo feature when the backend is not
    /// compiled in.
    pub fn device(self) -> Result<Device, CommonError> {
        match self {
            #[cfg(feature = "flex")]
            DeviceKind::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            DeviceKind::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            DeviceKind::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => Ok(Device::cuda(0usize)),
            #[allow(unreachable_patterns)]
            other => Err(CommonError::DeviceNotCompiled {
                device: other,
                feature: other.name(),
            }),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceKind {
    type Err = CommonError;

    /// Parses `flex`, `ndarray`, `wgpu` or `cuda`, ignoring case.
    ///
    /// # Errors
    /// [`CommonError::UnknownName`] listing the backends compiled in (and the others with the
    /// feature they need).
    fn from_str(s: &str) -> Result<Self, CommonError> {
        let lower = s.to_ascii_lowercase();
        if let Some(kind) = Self::ALL.into_iter().find(|d| d.name() == lower) {
            return Ok(kind);
        }
        let names = |compiled: bool| -> Vec<&str> {
            Self::ALL
                .into_iter()
                .filter(|d| d.is_compiled_in() == compiled)
                .map(DeviceKind::name)
                .collect()
        };
        let compiled = names(true);
        let mut expected = if compiled.is_empty() {
            "none compiled in".to_string()
        } else {
            format!("{} (compiled in)", compiled.join(", "))
        };
        let missing = names(false);
        if !missing.is_empty() {
            expected.push_str(&format!(
                "; {} need their cargo feature",
                missing.join(", ")
            ));
        }
        Err(CommonError::UnknownName {
            what: "device",
            got: s.to_string(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_display_and_serialise_alike() {
        for d in DeviceKind::ALL {
            assert_eq!(d.to_string().parse::<DeviceKind>().unwrap(), d);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{d}\""));
            assert_eq!(serde_json::from_str::<DeviceKind>(&json).unwrap(), d);
        }
        assert_eq!("WGPU".parse::<DeviceKind>().unwrap(), DeviceKind::Wgpu);
        assert_eq!(DeviceKind::default(), DeviceKind::Flex);
    }

    #[test]
    fn unknown_names_list_the_backends_compiled_in() {
        let err = "tpu".parse::<DeviceKind>().unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("unknown device `tpu` (expected one of: "),
            "{message}"
        );
        let compiled: Vec<&str> = DeviceKind::compiled_in()
            .into_iter()
            .map(DeviceKind::name)
            .collect();
        assert!(
            message.contains(&format!("{} (compiled in)", compiled.join(", "))),
            "{message}"
        );
        assert!(serde_json::from_str::<DeviceKind>("\"tpu\"").is_err());
    }

    #[test]
    fn devices_compiled_in_are_built_the_others_name_their_feature() {
        for d in DeviceKind::ALL {
            // wgpu and cuda are not built here: creating them may probe for an adapter.
            if d.is_compiled_in() && matches!(d, DeviceKind::Flex | DeviceKind::Ndarray) {
                assert!(d.device().is_ok(), "{d}");
            } else if !d.is_compiled_in() {
                let err = d.device().unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!("device `{d}` is not compiled in; rebuild with `--features {d}`")
                );
            }
        }
        #[cfg(not(feature = "cuda"))]
        assert!(matches!(
            DeviceKind::Cuda.device(),
            Err(CommonError::DeviceNotCompiled {
                feature: "cuda",
                ..
            })
        ));
    }
}
