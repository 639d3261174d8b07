//! Pearson and Spearman correlation, in f64.
//!
//! Spearman's ρ is Pearson's r of the ranks, with tied values given the average of the ranks
//! they span (`scipy.stats.spearmanr`, `scipy.stats.rankdata(method="average")`).

use crate::error::{EvalError, Result};

/// Pearson's r: `cov(x, y) / (σx σy)`, computed with centred sums in f64.
///
/// # Errors
/// [`EvalError::Correlation`] if the lengths differ, fewer than two points are given, a value is
/// not finite, or either side is constant (r undefined).
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    check_inputs(x, y)?;
    let n = x.len() as f64;
    let mean_x = x.iter().sum::<f64>() / n;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (dx, dy) = (a - mean_x, b - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return Err(EvalError::Correlation(
            "one side is constant: the correlation is undefined".to_string(),
        ));
    }
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// Spearman's ρ: Pearson's r of the average ranks.
///
/// # Errors
/// As [`pearson`].
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    check_inputs(x, y)?;
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Ranks 1..=n; tied values share the mean of the ranks they occupy.
///
/// `[10, 20, 20, 30]` → `[1, 2.5, 2.5, 4]`. Values must not be NaN.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1..=end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

fn check_inputs(x: &[f64], y: &[f64]) -> Result<()> {
    if x.len() != y.len() {
        return Err(EvalError::Correlation(format!(
            "lengths differ: {} vs {}",
            x.len(),
            y.len()
        )));
    }
    if x.len() < 2 {
        return Err(EvalError::Correlation(format!(
            "need at least 2 points, got {}",
            x.len()
        )));
    }
    if let Some(v) = x.iter().chain(y).find(|v| !v.is_finite()) {
        return Err(EvalError::Correlation(format!("non-finite value {v}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn average_ranks_share_tied_positions() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 20.0, 30.0]),
            [1.0, 2.5, 2.5, 4.0]
        );
        assert_eq!(average_ranks(&[3.0, 1.0, 2.0]), [3.0, 1.0, 2.0]);
        assert_eq!(average_ranks(&[5.0, 5.0, 5.0]), [2.0, 2.0, 2.0]);
        assert_eq!(
            average_ranks(&[2.0, 1.0, 2.0, 1.0, 3.0]),
            [3.5, 1.5, 3.5, 1.5, 5.0]
        );
    }

    #[test]
    fn pearson_matches_a_hand_computation() {
        // x̄ = 3, ȳ = 4; Σdxdy = 6, Σdx² = 10, Σdy² = 6 → r = 6 / sqrt(60) = 0.7745966692414834
        // (scipy.stats.pearsonr agrees: scripts/make_correlation_reference.py)
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 4.0, 5.0, 4.0, 5.0];
        assert!(close(
            pearson(&x, &y).unwrap(),
            0.774_596_669_241_483_4,
            1e-12
        ));
    }

    #[test]
    fn spearman_with_ties_matches_scipy() {
        // Ranks x: [1, 2.5, 2.5, 4, 5, 6]; y: [2, 1, 5, 3.5, 3.5, 6]; by hand:
        // Σdxdy = 11, Σdx² = 17, Σdy² = 17 → 11 / 17 = 0.6470588235294118
        // (scipy.stats.spearmanr agrees: scripts/make_correlation_reference.py).
        let x = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 1.0, 4.0, 3.0, 3.0, 6.0];
        assert!(close(spearman(&x, &y).unwrap(), 11.0 / 17.0, 1e-12));
    }

    #[test]
    fn sts_like_data_with_tied_gold_scores_matches_scipy() {
        // scripts/make_correlation_reference.py (scipy 1.17.1)
        let gold = [0.0, 0.5, 0.5, 1.2, 2.0, 2.0, 2.0, 3.8, 4.0, 5.0];
        let cos = [0.10, 0.32, 0.25, 0.40, 0.38, 0.55, 0.51, 0.80, 0.79, 0.93];
        assert!(close(
            spearman(&gold, &cos).unwrap(),
            0.947_804_480_540_862,
            1e-12
        ));
        assert!(close(
            pearson(&gold, &cos).unwrap(),
            0.976_922_999_326_951_7,
            1e-12
        ));
    }

    #[test]
    fn spearman_is_one_for_any_increasing_map_and_minus_one_for_a_decreasing_one() {
        let x = [0.1, 0.5, 0.3, 0.9, 0.7];
        let y: Vec<f64> = x.iter().map(|v: &f64| v.powi(3) + 2.0).collect();
        let z: Vec<f64> = x.iter().map(|v| -v.exp()).collect();
        assert!(close(spearman(&x, &y).unwrap(), 1.0, 1e-12));
        assert!(close(spearman(&x, &z).unwrap(), -1.0, 1e-12));
        assert!(pearson(&x, &y).unwrap() < 1.0 - 1e-6);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        assert!(pearson(&[1.0, 2.0], &[1.0]).is_err());
        assert!(pearson(&[1.0], &[1.0]).is_err());
        assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_err());
        assert!(pearson(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
    }
}
