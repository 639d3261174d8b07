//! The typed error of every fallible entry point of `distill-objectives`.

/// What went wrong with the inputs or the configuration of a distillation objective.
///
/// Every variant names the offending argument and the shapes or values received, so the message
/// alone tells the caller what to fix. The panicking methods (`forward`, `init`, …) panic with
/// this message; their `try_` twins return it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistillError {
    /// An argument does not have the shape the objective needs (this includes a student /
    /// teacher vocabulary mismatch, whose detail names both shapes).
    #[error("shape mismatch in `{arg}`: {detail}")]
    Shape {
        /// The offending argument.
        arg: &'static str,
        /// Expected and received shapes.
        detail: String,
    },
    /// A configuration value is out of its domain.
    #[error("invalid `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// The field (`temperature`, `beta`, `lambda`, `head_ratio`, `alpha`, `k`).
        field: &'static str,
        /// The value received.
        value: f64,
        /// The domain it must lie in.
        reason: String,
    },
    /// A tensor that must be finite holds NaN or ±∞.
    #[error("`{arg}` {shape} holds NaN or infinite values{detail}")]
    NonFinite {
        /// The offending argument (`student_logits`, `teacher logits`, `teacher log_probs`, …).
        arg: &'static str,
        /// Its shape, formatted `[a, b, c]`.
        shape: String,
        /// Extra context (empty, or starting with `; `).
        detail: String,
    },
    /// The mask is not 0/1 or counts no position.
    #[error("invalid `mask` {shape}: {reason}")]
    InvalidMask {
        /// The mask's shape, formatted `[a, b]`.
        shape: String,
        /// What is wrong.
        reason: String,
    },
    /// Token ids (top-k teacher ids or cross-entropy targets) are out of the vocabulary or
    /// repeated.
    #[error("invalid `{arg}` {shape}: {reason}")]
    InvalidIds {
        /// The offending argument (`teacher ids`, `targets`).
        arg: &'static str,
        /// Its shape, formatted `[a, b, c]`.
        shape: String,
        /// What is wrong, with the offending values.
        reason: String,
    },
    /// Top-k teacher values that are finite but do not describe a distribution this divergence
    /// can use (not normalised, or zero mass outside the top-k under a reverse-KL term).
    #[error("invalid top-k teacher `{arg}` {shape}: {reason}")]
    InvalidTeacher {
        /// The offending argument (`log_probs`, `tail_log_mass`).
        arg: &'static str,
        /// Its shape, formatted `[a, b]` or `[a, b, c]`.
        shape: String,
        /// What is wrong.
        reason: String,
    },
    /// A vocabulary or a vocabulary map for cross-tokenizer distillation is unusable (empty,
    /// an id listed twice, a gap in the ids, ids past the logits' vocabulary).
    #[error("invalid vocabulary `{arg}`: {reason}")]
    InvalidVocabulary {
        /// The offending argument (`student vocabulary`, `teacher vocabulary`, `pairs`, …).
        arg: &'static str,
        /// What is wrong, with the offending values.
        reason: String,
    },
    /// A divergence name that [`Divergence`](crate::Divergence) does not know.
    #[error("unknown divergence `{got}`; expected one of {expected}")]
    UnknownDivergence {
        /// The name received.
        got: String,
        /// The accepted names.
        expected: String,
    },
}

/// Formats a shape as `[a, b, c]`.
pub(crate) fn fmt_shape(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}
