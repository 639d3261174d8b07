//! The typed error of every fallible entry point of `mrl-core`.

use cka_kernels::CkaError;
use mrl_common::CommonError;

/// What went wrong with the inputs or the configuration of a loss.
///
/// Every variant names the offending argument and, where shapes are involved, the shapes that
/// were received, so that the message alone tells the caller what to fix. Module `forward`
/// methods panic with this message (Burn's convention); their `try_` twins return it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MrlError {
    /// An argument does not have the shape the loss needs.
    #[error("shape mismatch in `{arg}`: {detail}")]
    Shape {
        /// The offending argument.
        arg: &'static str,
        /// Expected and received shapes.
        detail: String,
    },
    /// An in-batch loss got fewer than two examples, so there is no negative.
    #[error(
        "`{arg}` has batch size {batch}; this loss uses the other rows of the batch as \
         negatives (or pairs), so it needs a batch of at least 2"
    )]
    BatchTooSmall {
        /// The offending argument.
        arg: &'static str,
        /// The batch size received.
        batch: usize,
    },
    /// The nested Matryoshka dims are malformed or do not fit the embedding width.
    #[error("invalid `{arg}` {dims:?}: {reason}")]
    InvalidDims {
        /// The offending argument (`dims`, `sia_dims`, ...).
        arg: &'static str,
        /// The dims received.
        dims: Vec<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A layer index is out of range, repeated, or the layer list is empty.
    #[error("invalid `{arg}` {layers:?}: {reason}")]
    InvalidLayers {
        /// The offending argument.
        arg: &'static str,
        /// The layers received.
        layers: Vec<usize>,
        /// What is wrong.
        reason: String,
    },
    /// The PIC chain of `(dim, layer)` checkpoints is malformed or out of range.
    #[error("invalid PIC `chain` {chain:?} (pairs are (dim, layer)): {reason}")]
    InvalidChain {
        /// The chain received.
        chain: Vec<(usize, usize)>,
        /// What is wrong.
        reason: String,
    },
    /// A scalar or list field of a config is out of its domain.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Top-k CKA rejected its inputs (see [`CkaError`]).
    #[error("top-k CKA: {0}")]
    Cka(#[from] CkaError),
}

/// The errors of the shared pooling and truncation (`mrl-common`), as the loss errors they are
/// here: a shape error stays [`MrlError::Shape`], a dim out of range is [`MrlError::InvalidDims`].
impl From<CommonError> for MrlError {
    fn from(e: CommonError) -> Self {
        match e {
            CommonError::Shape { arg, detail } => MrlError::Shape { arg, detail },
            CommonError::DimOutOfRange { d, width } => MrlError::InvalidDims {
                arg: "d",
                dims: vec![d],
                reason: format!("a dim must lie in 1..={width} (the embedding width)"),
            },
            CommonError::UnknownName { what, .. } => MrlError::InvalidConfig {
                field: what,
                reason: e.to_string(),
            },
            CommonError::DeviceNotCompiled { .. } => MrlError::InvalidConfig {
                field: "device",
                reason: e.to_string(),
            },
        }
    }
}

/// Formats a shape as `[a, b, c]`.
pub(crate) fn fmt_shape(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}

/// Checks that nested dims are non-empty, positive, strictly increasing and at most `width`.
pub(crate) fn check_nested_dims(
    arg: &'static str,
    dims: &[usize],
    width: Option<usize>,
) -> Result<(), MrlError> {
    let err = |reason: String| MrlError::InvalidDims {
        arg,
        dims: dims.to_vec(),
        reason,
    };
    if dims.is_empty() {
        return Err(err("at least one dim is required".into()));
    }
    if dims[0] == 0 {
        return Err(err("dims must be positive".into()));
    }
    if let Some(w) = dims.windows(2).find(|w| w[0] >= w[1]) {
        return Err(err(format!(
            "dims must be strictly increasing ({} is followed by {})",
            w[0], w[1]
        )));
    }
    if let Some(width) = width {
        let last = dims[dims.len() - 1];
        if last > width {
            return Err(err(format!(
                "the largest dim {last} exceeds the embedding / hidden width {width}"
            )));
        }
    }
    Ok(())
}
