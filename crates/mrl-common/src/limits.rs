//! The domains of the numeric settings every command shares, checked in one place: the CLI's
//! flag parsers and the training configs call these, so `--max-length 1` is refused by `eval`
//! exactly as `model.max_length = 1` is by `train`.
//!
//! Each check returns the reason as text (`"must be an integer ≥ 2, got 1"`); the caller names
//! the flag or the config key.

/// The smallest truncation length: a BERT-family input needs `[CLS]` and `[SEP]`.
pub const MIN_MAX_LENGTH: usize = 2;

/// `value ≥ min`, for integers given as text or already parsed (negative text is reported as
/// such, not as a parse error).
pub fn check_at_least(value: i128, min: i128) -> Result<(), String> {
    if value < min {
        Err(format!("must be an integer ≥ {min}, got {value}"))
    } else {
        Ok(())
    }
}

/// A truncation length in tokens: at least [`MIN_MAX_LENGTH`].
pub fn check_max_length(value: usize) -> Result<(), String> {
    check_at_least(value as i128, MIN_MAX_LENGTH as i128)
}

/// A list of Matryoshka dims to evaluate or train: not empty, every dim ≥ 1, no dim twice.
/// (Whether they fit the model is [`crate::check_dim`]'s job, once the width is known.)
pub fn check_dims(dims: &[usize]) -> Result<(), String> {
    if dims.is_empty() {
        return Err("must list at least one dim".into());
    }
    if dims.contains(&0) {
        return Err(format!("dims must be ≥ 1, got {dims:?}"));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(d) = dims.iter().find(|d| !seen.insert(**d)) {
        return Err(format!("dim {d} is listed twice in {dims:?}"));
    }
    Ok(())
}

/// A sampling temperature: finite and ≥ 0 (0 is greedy decoding).
pub fn check_temperature(value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "must be a finite number ≥ 0 (0 = greedy), got {value}"
        ))
    }
}

/// A nucleus-sampling mass: in (0, 1].
pub fn check_top_p(value: f64) -> Result<(), String> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(format!("must be in (0, 1], got {value}"))
    }
}

/// A finite number above 0 (a strength, a rate).
pub fn check_positive(value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("must be a finite number > 0, got {value}"))
    }
}

/// A finite number in `[min, max]` (either bound may be infinite).
pub fn check_range(value: f64, min: f64, max: f64) -> Result<(), String> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(format!(
            "must be a finite number in [{min}, {max}], got {value}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_below_the_minimum_name_the_minimum_and_the_value() {
        assert!(check_at_least(1, 1).is_ok());
        assert_eq!(
            check_at_least(-5, 1).unwrap_err(),
            "must be an integer ≥ 1, got -5"
        );
        assert!(check_max_length(2).is_ok());
        assert!(check_max_length(1).unwrap_err().contains("≥ 2"));
    }

    #[test]
    fn dims_must_be_non_empty_positive_and_distinct() {
        assert!(check_dims(&[384, 8]).is_ok());
        assert!(check_dims(&[]).is_err());
        assert!(check_dims(&[8, 0]).unwrap_err().contains("≥ 1"));
        assert!(check_dims(&[8, 16, 8])
            .unwrap_err()
            .contains("dim 8 is listed twice"));
    }

    #[test]
    fn sampling_values_outside_their_domain_are_refused() {
        assert!(check_temperature(0.0).is_ok() && check_temperature(0.7).is_ok());
        for bad in [-0.1, f64::NAN, f64::INFINITY] {
            assert!(check_temperature(bad).is_err(), "{bad}");
        }
        assert!(check_top_p(1.0).is_ok() && check_top_p(0.5).is_ok());
        for bad in [0.0, 1.5, -1.0, f64::NAN] {
            assert!(check_top_p(bad).is_err(), "{bad}");
        }
        assert!(check_range(0.5, 0.0, 1.0).is_ok());
        assert!(check_range(f64::NAN, 0.0, 1.0).is_err());
        assert!(check_range(2.0, 0.0, f64::INFINITY).is_ok());
        assert!(check_positive(1e-9).is_ok());
        for bad in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            assert!(check_positive(bad).is_err(), "{bad}");
        }
    }
}
