//! Pooling and Matryoshka truncation against hand-computed values, on every device.

use crate::common::*;
use burn::tensor::{Int, Tensor, TensorData};
use models::{truncate_normalize, ModelError, Pooling};

/// Batch of 2 sequences of 3 tokens, hidden 2; the second sequence has one padding token.
fn inputs(device: &burn::tensor::Device) -> (Tensor<3>, Tensor<2, Int>) {
    let hidden = Tensor::<3>::from_data(
        TensorData::new(
            vec![
                1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, -1.0, 0.0, 1.0, 2.0, 100.0, 100.0,
            ],
            [2, 3, 2],
        ),
        device,
    );
    let mask =
        Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 0], [2, 3]), device);
    (hidden, mask)
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn cls_mean_and_last_token_pooling() {
    for (name, device) in devices() {
        let (h, m) = inputs(&device);
        assert_eq!(
            values(Pooling::Cls.pool(h.clone(), m.clone())),
            [1.0, 2.0, -1.0, 0.0],
            "{name}"
        );
        // Mean of rows 1: (1+3+5)/3, (2+4+6)/3; row 2 ignores the padded (100, 100).
        assert_eq!(
            values(Pooling::Mean.pool(h.clone(), m.clone())),
            [3.0, 4.0, 0.0, 1.0],
            "{name}"
        );
        // Last real token: position 2 of row 1, position 1 of row 2.
        assert_eq!(
            values(Pooling::LastToken.pool(h, m)),
            [5.0, 6.0, 1.0, 2.0],
            "{name}"
        );
        // Left padding: the last real token is the last position.
        let h = Tensor::<3>::from_data(
            TensorData::new(vec![9.0f32, 9.0, 1.0, 2.0], [1, 2, 2]),
            &device,
        );
        let m = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 1], [1, 2]), &device);
        assert_eq!(values(Pooling::LastToken.pool(h, m)), [1.0, 2.0], "{name}");
    }
}

#[test]
fn truncate_then_normalise() {
    for (name, device) in devices() {
        let e = Tensor::<2>::from_data(
            TensorData::new(vec![3.0f32, 4.0, 12.0, 0.0, 0.0, 0.0, 5.0, 1.0], [2, 4]),
            &device,
        );
        // Row 1 truncated to (3, 4) → (0.6, 0.8); row 2 (0, 0) stays 0.
        let got = values(truncate_normalize(e.clone(), 2).unwrap());
        assert!(
            max_abs_diff(&got, &[0.6, 0.8, 0.0, 0.0]) < 1e-7,
            "{name}: {got:?}"
        );
        // Full width: (3, 4, 12, 0)/13.
        let got = values(truncate_normalize(e.clone(), 4).unwrap());
        let want = [
            3.0 / 13.0,
            4.0 / 13.0,
            12.0 / 13.0,
            0.0,
            0.0,
            0.0,
            5.0 / 26f32.sqrt(),
            1.0 / 26f32.sqrt(),
        ];
        assert!(max_abs_diff(&got, &want) < 1e-6, "{name}: {got:?}");
        assert!(matches!(
            truncate_normalize(e.clone(), 5),
            Err(ModelError::DimTooLarge {
                dim: 5,
                hidden_size: 4
            })
        ));
        assert!(truncate_normalize(e, 0).is_err());
    }
}

#[test]
fn pooling_is_read_from_the_sentence_transformers_config() {
    let tmp = TempDir::new("pooling");
    assert_eq!(Pooling::from_model_dir(&tmp.0).unwrap(), None);
    std::fs::create_dir_all(tmp.0.join("1_Pooling")).unwrap();
    let write = |json: &str| std::fs::write(tmp.0.join("1_Pooling/config.json"), json).unwrap();
    write(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#);
    assert_eq!(Pooling::from_model_dir(&tmp.0).unwrap(), Some(Pooling::Cls));
    write(r#"{"pooling_mode_lasttoken": true}"#);
    assert_eq!(
        Pooling::from_model_dir(&tmp.0).unwrap(),
        Some(Pooling::LastToken)
    );
    write(r#"{"pooling_mode_max_tokens": true}"#);
    assert!(Pooling::from_model_dir(&tmp.0)
        .unwrap_err()
        .to_string()
        .contains("max_tokens"));
    write(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#);
    assert!(Pooling::from_model_dir(&tmp.0)
        .unwrap_err()
        .to_string()
        .contains("2 pooling modes"));
    write("not json");
    assert!(Pooling::from_model_dir(&tmp.0)
        .unwrap_err()
        .to_string()
        .contains("malformed config"));
    assert_eq!("mean".parse::<Pooling>().unwrap(), Pooling::Mean);
    assert_eq!("last".parse::<Pooling>().unwrap(), Pooling::LastToken);
    assert!("max".parse::<Pooling>().is_err());
}
