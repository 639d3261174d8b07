//! Sentence pooling: how the token states `[B, L, D]` of an encoder (or decoder) become one
//! vector per text — the first token, the mask-aware mean, or the last real token.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{fmt_shape, CommonError};

/// How token states become one sentence vector.
///
/// Displayed and serialised as `cls`, `mean`, `last`. Parsing ([`FromStr`]) and
/// deserialisation accept the same names in any case (`Cls` as the MIPIC presets write it) and
/// also `last_token` / `lasttoken` (sentence-transformers' `pooling_mode_lasttoken`), so the TOML
/// configs, the presets and `--pooling` all read the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// The first token (`[CLS]` for BERT-family encoders): `h[:, 0, :]`.
    Cls,
    /// The mean over real (non-padding) tokens, as in sentence-transformers.
    Mean,
    /// The state of the last real token (decoder embedders such as Qwen3-Embedding); works
    /// with left and right padding.
    LastToken,
}

impl Pooling {
    /// Every mode, in the order of the error messages.
    pub const ALL: [Pooling; 3] = [Pooling::Mean, Pooling::Cls, Pooling::LastToken];

    /// The name used by configs, the command line and [`fmt::Display`].
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::LastToken => "last",
        }
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pooling {
    type Err = CommonError;

    /// Parses `mean`, `cls` or `last` (also `last_token`, `lasttoken`), ignoring case.
    fn from_str(s: &str) -> Result<Self, CommonError> {
        match s.to_ascii_lowercase().as_str() {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            "last" | "last_token" | "lasttoken" => Ok(Pooling::LastToken),
            _ => Err(CommonError::UnknownName {
                what: "pooling",
                got: s.to_string(),
                expected: Pooling::ALL.map(Pooling::name).join(", "),
            }),
        }
    }
}

impl Serialize for Pooling {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Pooling {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Pools `hidden` `[B, L, D]` into one vector per example, `[B, D]`.
///
/// - [`Pooling::Cls`]: `h[:, 0, :]`.
/// - [`Pooling::Mean`]: `Σ_j mask_j h_j / max(Σ_j mask_j, 1e-9)` (sentence-transformers; an
///   all-padding row gives 0).
/// - [`Pooling::LastToken`]: `h[:, j*, :]` with `j*` the last position whose mask is 1 (the
///   last position under left padding).
///
/// # Shapes
/// - `hidden`: `[B, L, D]`
/// - `mask`: `[B, L]`, float, 1 = real token, 0 = padding
/// - output: `[B, D]`
///
/// # Errors
/// [`CommonError::Shape`] when `hidden` is empty or `mask` is not `[B, L]`.
pub fn pool(
    hidden: Tensor<3>,
    mask: Tensor<2>,
    pooling: Pooling,
) -> Result<Tensor<2>, CommonError> {
    let [batch, len, width] = hidden.dims();
    if batch == 0 || len == 0 || width == 0 {
        return Err(CommonError::Shape {
            arg: "hidden",
            detail: format!(
                "expected a non-empty [B, L, D], got {}",
                fmt_shape(&hidden.dims())
            ),
        });
    }
    if mask.dims() != [batch, len] {
        return Err(CommonError::Shape {
            arg: "mask",
            detail: format!(
                "expected [B, L] = {} to match hidden {}, got {}",
                fmt_shape(&[batch, len]),
                fmt_shape(&hidden.dims()),
                fmt_shape(&mask.dims())
            ),
        });
    }
    Ok(match pooling {
        Pooling::Cls => hidden
            .slice([0..batch, 0..1, 0..width])
            .reshape([batch, width]),
        Pooling::Mean => {
            let w = mask.cast(hidden.dtype()).unsqueeze_dim::<3>(2); // [B, L, 1]
            let count = w.clone().sum_dim(1).clamp_min(1e-9); // [B, 1, 1]
            ((hidden * w).sum_dim(1) / count).reshape([batch, width])
        }
        Pooling::LastToken => {
            // The largest position whose mask is 1: argmax of `real · position`.
            let device = hidden.device();
            let real = mask.greater_elem(0.5).int(); // [B, L]
            let positions = Tensor::<1, Int>::arange(0..len as i64, &device)
                .unsqueeze::<2>()
                .expand([batch, len]);
            let last = (real * positions).argmax(1); // [B, 1]
            let index = last.unsqueeze_dim::<3>(2).expand([batch, 1, width]);
            hidden.gather(1, index).reshape([batch, width])
        }
    })
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;
    use crate::{test_devices, test_values};

    fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Two sequences of three tokens, width 2; the second is right-padded (one padding token
    /// holding 100s, which must never leak into the result).
    fn right_padded(device: &Device) -> (Tensor<3>, Tensor<2>) {
        let hidden = tensor(
            vec![
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1.0, 0.0, 1.0, 2.0, 100.0, 100.0,
            ],
            [2, 3, 2],
            device,
        );
        let mask = tensor(vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0], [2, 3], device);
        (hidden, mask)
    }

    #[test]
    fn cls_takes_the_first_token() {
        for (name, device) in test_devices() {
            let (h, m) = right_padded(&device);
            let got = test_values(pool(h, m, Pooling::Cls).unwrap());
            assert_eq!(got, [1.0, 2.0, -1.0, 0.0], "{name}");
        }
    }

    #[test]
    fn mean_ignores_padding() {
        for (name, device) in test_devices() {
            let (h, m) = right_padded(&device);
            // Row 1: ((1+3+5)/3, (2+4+6)/3) = (3, 4); row 2: ((-1+1)/2, (0+2)/2) = (0, 1).
            let got = test_values(pool(h, m, Pooling::Mean).unwrap());
            assert_eq!(got, [3.0, 4.0, 0.0, 1.0], "{name}");
            // An all-padding row pools to 0 (the count is clamped at 1e-9), not NaN.
            let h = tensor(vec![7.0, 8.0], [1, 1, 2], &device);
            let m = tensor(vec![0.0], [1, 1], &device);
            assert_eq!(test_values(pool(h, m, Pooling::Mean).unwrap()), [0.0, 0.0]);
        }
    }

    #[test]
    fn last_token_with_right_and_left_padding() {
        for (name, device) in test_devices() {
            // Right padding: position 2 of row 1, position 1 of row 2 (not the padded 100s).
            let (h, m) = right_padded(&device);
            let got = test_values(pool(h, m, Pooling::LastToken).unwrap());
            assert_eq!(got, [5.0, 6.0, 1.0, 2.0], "{name}");
            // Left padding: the last real token is the last position.
            let h = tensor(vec![9.0, 9.0, 1.0, 2.0], [1, 2, 2], &device);
            let m = tensor(vec![0.0, 1.0], [1, 2], &device);
            assert_eq!(
                test_values(pool(h, m, Pooling::LastToken).unwrap()),
                [1.0, 2.0]
            );
        }
    }

    #[test]
    fn shape_errors_name_the_argument_and_the_shapes() {
        for (_, device) in test_devices() {
            let (h, _) = right_padded(&device);
            let err = pool(h, tensor(vec![1.0; 4], [2, 2], &device), Pooling::Mean).unwrap_err();
            assert!(
                matches!(err, CommonError::Shape { arg: "mask", .. }),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "shape mismatch in `mask`: expected [B, L] = [2, 3] to match hidden [2, 3, 2], \
                 got [2, 2]"
            );
            let empty = Tensor::<3>::zeros([0, 3, 2], &device);
            let err = pool(empty, tensor(vec![], [0, 3], &device), Pooling::Cls).unwrap_err();
            assert!(
                matches!(err, CommonError::Shape { arg: "hidden", .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn names_parse_display_and_serialise_alike() {
        for p in Pooling::ALL {
            assert_eq!(p.to_string().parse::<Pooling>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<Pooling>(&json).unwrap(), p);
        }
        assert_eq!("MEAN".parse::<Pooling>().unwrap(), Pooling::Mean);
        assert_eq!(
            serde_json::from_str::<Pooling>("\"Cls\"").unwrap(),
            Pooling::Cls
        );
        for alias in ["last_token", "lasttoken"] {
            assert_eq!(alias.parse::<Pooling>().unwrap(), Pooling::LastToken);
            let json = format!("\"{alias}\"");
            assert_eq!(
                serde_json::from_str::<Pooling>(&json).unwrap(),
                Pooling::LastToken
            );
        }
        let err = "max".parse::<Pooling>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown pooling `max` (expected one of: mean, cls, last)"
        );
        let err = serde_json::from_str::<Pooling>("\"max\"").unwrap_err();
        assert!(err.to_string().contains("unknown pooling `max`"), "{err}");
    }
}
