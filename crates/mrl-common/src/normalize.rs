//! L2 normalisation and the Matryoshka step: keep the first `d` coordinates, then
//! L2-normalise (MRL, arXiv 2205.13147). Evaluation and training use the same order: pool,
//! truncate to `d`, normalise.

use burn::tensor::Tensor;

use crate::error::CommonError;

/// Floor of the L2 norm in [`l2_normalize`] (PyTorch's `F.normalize` default): a zero row
/// stays zero.
pub const NORM_EPS: f64 = 1e-12;

/// Row-wise L2 normalisation `x / max(‖x‖, 1e-12)`.
///
/// # Shapes
/// - `x`: `[N, d]`, output: `[N, d]`
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = (x.clone() * x.clone())
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_EPS);
    x / norm
}

/// Checks that `d` is a Matryoshka dim of embeddings of width `width`: `1 <= d <= width`.
///
/// # Errors
/// [`CommonError::DimOutOfRange`] naming `d` and `width` otherwise.
pub fn check_dim(d: usize, width: usize) -> Result<(), CommonError> {
    if d == 0 || d > width {
        return Err(CommonError::DimOutOfRange { d, width });
    }
    Ok(())
}

/// The Matryoshka prefix `x[:, :d]`, L2-normalised row by row.
///
/// # Shapes
/// - `x`: `[N, D]`, output: `[N, d]`
///
/// # Errors
/// [`CommonError::DimOutOfRange`] naming `d` and the width `D` when `d` is 0 or larger than `D`.
pub fn truncate_normalize(x: Tensor<2>, d: usize) -> Result<Tensor<2>, CommonError> {
    let [n, width] = x.dims();
    check_dim(d, width)?;
    Ok(l2_normalize(x.slice([0..n, 0..d])))
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::{test_devices, test_values};

    fn close(got: &[f32], want: &[f32]) -> bool {
        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6)
    }

    #[test]
    fn l2_normalize_gives_unit_rows_and_keeps_zero_rows() {
        for (name, device) in test_devices() {
            let x = Tensor::<2>::from_data(
                TensorData::new(vec![3.0f32, 4.0, 0.0, 0.0], [2, 2]),
                &device,
            );
            let got = test_values(l2_normalize(x));
            assert!(close(&got, &[0.6, 0.8, 0.0, 0.0]), "{name}: {got:?}");
        }
    }

    #[test]
    fn truncate_then_normalise() {
        for (name, device) in test_devices() {
            let e = Tensor::<2>::from_data(
                TensorData::new(vec![3.0f32, 4.0, 12.0, 0.0, 0.0, 0.0, 5.0, 1.0], [2, 4]),
                &device,
            );
            // Row 1 truncated to (3, 4) → (0.6, 0.8); row 2 (0, 0) stays 0.
            let got = test_values(truncate_normalize(e.clone(), 2).unwrap());
            assert!(close(&got, &[0.6, 0.8, 0.0, 0.0]), "{name}: {got:?}");
            // Full width: (3, 4, 12, 0) / 13 and (0, 0, 5, 1) / √26.
            let got = test_values(truncate_normalize(e, 4).unwrap());
            let s = 26f32.sqrt();
            let want = [
                3.0 / 13.0,
                4.0 / 13.0,
                12.0 / 13.0,
                0.0,
                0.0,
                0.0,
                5.0 / s,
                1.0 / s,
            ];
            assert!(close(&got, &want), "{name}: {got:?}");
        }
    }

    #[test]
    fn truncate_normalize_rejects_dims_out_of_range_naming_d_and_the_width() {
        for (_, device) in test_devices() {
            let e = Tensor::<2>::ones([2, 4], &device);
            let err = truncate_normalize(e.clone(), 5).unwrap_err();
            assert_eq!(err, CommonError::DimOutOfRange { d: 5, width: 4 });
            assert_eq!(
                err.to_string(),
                "embedding dim 5 is out of range: it must lie in 1..=4 (the embedding width)"
            );
            let err = truncate_normalize(e, 0).unwrap_err();
            assert_eq!(err, CommonError::DimOutOfRange { d: 0, width: 4 });
        }
        assert!(check_dim(4, 4).is_ok() && check_dim(1, 4).is_ok());
    }
}
