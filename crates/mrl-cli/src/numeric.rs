//! The value parsers of every numeric flag: one per kind of value, shared by every command
//! that takes it, built on [`mrl_common::limits`] (which the training configs use too).
//!
//! Each parser reads the text itself, so a negative number given as a value (`--dim -5`) is
//! reported as out of range, not as an unknown argument (the subcommands also set clap's
//! `allow_negative_numbers`), and clap names the flag: `invalid value '-5' for '--dim <DIM>':
//! must be an integer ≥ 1, got -5`.

use mrl_common::limits;

/// Parses an integer as `i128` first, so negative and oversized values get a clear message.
fn integer<T: TryFrom<i128>>(text: &str, min: i128) -> Result<T, String> {
    let value: i128 = text
        .trim()
        .parse()
        .map_err(|_| format!("must be an integer ≥ {min}, got `{text}`"))?;
    limits::check_at_least(value, min)?;
    T::try_from(value).map_err(|_| format!("{value} is too large"))
}

/// An integer ≥ 1 (sizes, counts of steps and tokens, a dim).
pub fn positive(text: &str) -> Result<usize, String> {
    integer(text, 1)
}

/// An integer ≥ 1, as `u64` (`--stop-after`).
pub fn positive_u64(text: &str) -> Result<u64, String> {
    integer(text, 1)
}

/// An integer ≥ 0 (an n-gram size where 0 turns the ban off).
pub fn non_negative(text: &str) -> Result<usize, String> {
    integer(text, 0)
}

/// A seed: an integer in `0..=u64::MAX`.
pub fn seed(text: &str) -> Result<u64, String> {
    integer(text, 0)
}

/// A truncation length in tokens, ≥ [`limits::MIN_MAX_LENGTH`].
pub fn max_length(text: &str) -> Result<usize, String> {
    let value = integer::<usize>(text, limits::MIN_MAX_LENGTH as i128)?;
    limits::check_max_length(value)?;
    Ok(value)
}

fn float(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("must be a number, got `{text}`"))
}

/// A sampling temperature: finite, ≥ 0 (0 = greedy).
pub fn temperature(text: &str) -> Result<f32, String> {
    let value = float(text)?;
    limits::check_temperature(value)?;
    Ok(value as f32)
}

/// A nucleus mass in (0, 1].
pub fn top_p(text: &str) -> Result<f32, String> {
    let value = float(text)?;
    limits::check_top_p(value)?;
    Ok(value as f32)
}

/// A finite number > 0.
pub fn positive_float(text: &str) -> Result<f64, String> {
    let value = float(text)?;
    limits::check_positive(value)?;
    Ok(value)
}

/// A finite number ≥ 0.
pub fn non_negative_float(text: &str) -> Result<f64, String> {
    let value = float(text)?;
    limits::check_range(value, 0.0, f64::INFINITY)?;
    Ok(value)
}

/// A comma-separated list of Matryoshka dims: each ≥ 1, none twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimList(pub Vec<usize>);

/// Parses `--dims 384,64,8`.
pub fn dims(text: &str) -> Result<DimList, String> {
    let dims = text
        .split(',')
        .map(positive)
        .collect::<Result<Vec<_>, _>>()?;
    limits::check_dims(&dims)?;
    Ok(DimList(dims))
}

/// A comma-separated list of seeds, none twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedList(pub Vec<u64>);

/// Parses `--seeds 10,20,30`.
pub fn seeds(text: &str) -> Result<SeedList, String> {
    let seeds = text.split(',').map(seed).collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(s) = seeds.iter().find(|s| !seen.insert(**s)) {
        return Err(format!("seed {s} is listed twice"));
    }
    Ok(SeedList(seeds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_report_negative_garbage_and_overflow_plainly() {
        assert_eq!(positive("3"), Ok(3));
        assert_eq!(
            positive("-5").unwrap_err(),
            "must be an integer ≥ 1, got -5"
        );
        assert_eq!(positive("0").unwrap_err(), "must be an integer ≥ 1, got 0");
        assert!(positive("x").unwrap_err().contains("`x`"));
        assert!(positive("1.5").is_err());
        assert_eq!(non_negative("0"), Ok(0));
        assert_eq!(seed(&u64::MAX.to_string()), Ok(u64::MAX));
        assert!(seed("18446744073709551616")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(max_length("2"), Ok(2));
        assert!(max_length("1").unwrap_err().contains("≥ 2"));
    }

    #[test]
    fn floats_outside_their_domain_are_refused() {
        assert_eq!(temperature("0"), Ok(0.0));
        for bad in ["-1", "nan", "inf", "x"] {
            assert!(temperature(bad).is_err(), "{bad}");
        }
        assert_eq!(positive_float("0.5"), Ok(0.5));
        assert!(positive_float("0").is_err() && positive_float("-2").is_err());
        assert_eq!(non_negative_float("0"), Ok(0.0));
        assert!(non_negative_float("-1e-5").is_err() && non_negative_float("inf").is_err());
        assert_eq!(top_p("1"), Ok(1.0));
        for bad in ["0", "1.5", "-0.5", "NaN"] {
            assert!(top_p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_refuse_duplicates_zero_and_empty_items() {
        assert_eq!(dims("384,64,8"), Ok(DimList(vec![384, 64, 8])));
        assert!(dims("8,8").unwrap_err().contains("listed twice"));
        assert!(dims("8,0").is_err());
        assert!(dims("8,").is_err());
        assert!(dims("8,-4").unwrap_err().contains("-4"));
        assert_eq!(seeds("10,20"), Ok(SeedList(vec![10, 20])));
        assert!(seeds("10,10").unwrap_err().contains("twice"));
    }
}
