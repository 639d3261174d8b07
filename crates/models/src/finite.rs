//! Every loaded weight is finite: one check shared by every loader (safetensors, GGUF,
//! training checkpoints).
//!
//! A single NaN in one weight makes every output NaN in PyTorch, but not always here: Burn
//! flex's fused attention treats a score row that is all NaN like a fully masked row and returns
//! zeros for it, so a NaN query weight yields finite, wrong embeddings. Checking the weights when
//! they are loaded turns that into an error naming the tensor and the file.

use std::path::Path;

use burn::store::{bridge, ModuleSnapshot};

use crate::error::{ModelError, Result};

/// Checks that every float tensor of `module` is finite. `name` maps a module path (Burn's
/// naming) to the name the file uses, for the error.
///
/// # Errors
/// [`ModelError::NonFiniteWeight`] for the first tensor (in module order) holding a NaN or an
/// infinity, with how many of its values are not finite.
pub fn check_finite_weights<M: ModuleSnapshot>(
    module: &M,
    file: &Path,
    name: impl Fn(&str) -> String,
) -> Result<()> {
    for tensor in module.collect(None, None, true) {
        if !tensor.dtype.is_float() {
            continue;
        }
        let data = bridge::to_data(&tensor).map_err(|e| ModelError::Weights {
            path: file.to_path_buf(),
            message: format!("cannot read back {}: {e}", tensor.name),
        })?;
        check_finite_values(data.iter::<f32>(), file, || name(&tensor.name))?;
    }
    Ok(())
}

/// How many of `values` are NaN or infinite.
pub fn count_non_finite(values: &[f32]) -> usize {
    values.iter().filter(|v| !v.is_finite()).count()
}

/// Checks one tensor's values (already on the host), naming it with `name()` on failure.
///
/// # Errors
/// [`ModelError::NonFiniteWeight`] when a value is NaN or infinite.
pub fn check_finite_values(
    values: impl IntoIterator<Item = f32>,
    file: &Path,
    name: impl FnOnce() -> String,
) -> Result<()> {
    let mut count = 0usize;
    let mut first = None;
    for v in values {
        if !v.is_finite() {
            count += 1;
            first.get_or_insert(v);
        }
    }
    match first {
        None => Ok(()),
        Some(value) => Err(ModelError::NonFiniteWeight {
            path: file.to_path_buf(),
            tensor: name(),
            count,
            value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_values_pass_and_the_first_bad_one_is_named() {
        let file = Path::new("w.safetensors");
        assert!(check_finite_values([1.0, -2.0, 0.0], file, || "t".into()).is_ok());
        let err =
            check_finite_values([1.0, f32::NAN, f32::INFINITY], file, || "t".into()).unwrap_err();
        assert!(matches!(
            err,
            ModelError::NonFiniteWeight { count: 2, ref tensor, .. } if tensor == "t"
        ));
        let message = err.to_string();
        assert!(
            message.contains("w.safetensors") && message.contains("NaN"),
            "{message}"
        );
    }
}
