//! The error of every fallible function of this crate.

use crate::device::DeviceKind;

/// What went wrong: an unknown name, a tensor of the wrong shape, a Matryoshka dim out of range,
/// or a backend that is not compiled in. Every variant names the argument and the values received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommonError {
    /// A name that is not one of the allowed values (a pooling mode, a device).
    #[error("unknown {what} `{got}` (expected one of: {expected})")]
    UnknownName {
        /// What was being parsed (`pooling`, `device`).
        what: &'static str,
        /// The text received.
        got: String,
        /// The allowed values.
        expected: String,
    },
    /// A tensor argument does not have the shape the function needs.
    #[error("shape mismatch in `{arg}`: {detail}")]
    Shape {
        /// The offending argument.
        arg: &'static str,
        /// Expected and received shapes.
        detail: String,
    },
    /// A Matryoshka dim outside `1..=width`.
    #[error("embedding dim {d} is out of range: it must lie in 1..={width} (the embedding width)")]
    DimOutOfRange {
        /// The dim asked for.
        d: usize,
        /// The width of the embeddings (the model's hidden size).
        width: usize,
    },
    /// The backend exists but this build does not include it.
    #[error("device `{device}` is not compiled in; rebuild with `--features {feature}`")]
    DeviceNotCompiled {
        /// The device asked for.
        device: DeviceKind,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
}

/// Formats a shape as `[a, b, c]`.
pub(crate) fn fmt_shape(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}
