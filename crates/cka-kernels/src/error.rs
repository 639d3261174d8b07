//! The typed error of every fallible CKA entry point.

use std::fmt;

/// What went wrong with the inputs of a CKA op.
///
/// Every variant names the offending argument and, where shapes are involved, the shapes that
/// were received, so that the message alone tells the caller what to fix.
#[derive(Debug, Clone, PartialEq)]
pub enum CkaError {
    /// Two arguments disagree on a dimension they must share.
    ShapeMismatch {
        /// Which arguments and which dimension.
        what: String,
        /// Every shape involved, formatted as `name [a, b, c]`.
        shapes: String,
    },
    /// A tensor has a zero-sized dimension where at least one element is required.
    Empty {
        /// The argument and its shape.
        what: String,
    },
    /// The nested-dims specification is malformed.
    InvalidDims {
        /// What is wrong with `dims`.
        reason: String,
    },
    /// The k-schedule (explicit ks or gammas / k_min) is malformed.
    InvalidSchedule {
        /// What is wrong with the schedule.
        reason: String,
    },
    /// The padding mask holds a value other than 0 or 1, or leaves an example without real rows.
    InvalidMask {
        /// What is wrong with the mask.
        reason: String,
    },
    /// A score of a real (non-padding) token is NaN or infinite, so it cannot be ranked.
    NonFiniteScore {
        /// Example index.
        example: usize,
        /// Token index.
        token: usize,
    },
}

impl fmt::Display for CkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CkaError::ShapeMismatch { what, shapes } => {
                write!(f, "shape mismatch: {what} (got {shapes})")
            }
            CkaError::Empty { what } => write!(f, "empty input: {what}"),
            CkaError::InvalidDims { reason } => write!(f, "invalid `dims`: {reason}"),
            CkaError::InvalidSchedule { reason } => write!(f, "invalid k-schedule: {reason}"),
            CkaError::InvalidMask { reason } => write!(f, "invalid `mask`: {reason}"),
            CkaError::NonFiniteScore { example, token } => write!(
                f,
                "`scores` holds a non-finite value for real token {token} of example {example}"
            ),
        }
    }
}

impl std::error::Error for CkaError {}

/// Formats a shape as `[a, b, c]`.
pub(crate) fn fmt_shape(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}
