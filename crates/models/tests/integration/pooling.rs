//! Reading the pooling mode of a sentence-transformers model (`1_Pooling/config.json`). The
//! pooling and truncation arithmetic is tested where it lives, in `mrl-common`.

use crate::common::*;
use models::{pooling_from_model_dir, Pooling};

#[test]
fn pooling_is_read_from_the_sentence_transformers_config() {
    let tmp = TempDir::new("pooling");
    assert_eq!(pooling_from_model_dir(tmp.path()).unwrap(), None);
    std::fs::create_dir_all(tmp.path().join("1_Pooling")).unwrap();
    let write =
        |json: &str| std::fs::write(tmp.path().join("1_Pooling/config.json"), json).unwrap();
    write(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#);
    assert_eq!(
        pooling_from_model_dir(tmp.path()).unwrap(),
        Some(Pooling::Cls)
    );
    write(r#"{"pooling_mode_lasttoken": true}"#);
    assert_eq!(
        pooling_from_model_dir(tmp.path()).unwrap(),
        Some(Pooling::LastToken)
    );
    write(r#"{"pooling_mode_max_tokens": true}"#);
    assert!(pooling_from_model_dir(tmp.path())
        .unwrap_err()
        .to_string()
        .contains("max_tokens"));
    write(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#);
    assert!(pooling_from_model_dir(tmp.path())
        .unwrap_err()
        .to_string()
        .contains("2 pooling modes"));
    write("not json");
    assert!(pooling_from_model_dir(tmp.path())
        .unwrap_err()
        .to_string()
        .contains("malformed config"));
    assert_eq!("mean".parse::<Pooling>().unwrap(), Pooling::Mean);
    assert_eq!("last".parse::<Pooling>().unwrap(), Pooling::LastToken);
    assert!("max"
        .parse::<Pooling>()
        .unwrap_err()
        .to_string()
        .contains("expected one of: mean, cls, last"));
}
