//! Divergence names, parsing and (de)serialisation; configs round-trip through JSON.

use crate::common::*;

#[test]
fn short_names_and_defaults() {
    let cases = [
        ("fkl", Divergence::ForwardKl),
        ("rkl", Divergence::ReverseKl),
        ("js", Divergence::JensenShannon { beta: 0.5 }),
        ("tv", Divergence::TotalVariation),
        ("sfkl", Divergence::SkewedForwardKl { lambda: 0.1 }),
        ("srkl", Divergence::SkewedReverseKl { lambda: 0.1 }),
        ("akl", Divergence::AdaptiveKl { head_ratio: 0.5 }),
        ("skew_kl", Divergence::DistillmSkewKl { lambda: 0.1 }),
    ];
    assert_eq!(cases.map(|(n, _)| n), Divergence::NAMES);
    for (name, d) in cases {
        assert_eq!(d.name(), name);
        assert_eq!(name.parse::<Divergence>().unwrap(), d, "{name}");
        assert_eq!(
            name.to_uppercase().parse::<Divergence>().unwrap(),
            d,
            "{name} upper case"
        );
        // The long (serde) name parses too.
        let long = serde_json::to_value(d).unwrap()["kind"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(long.parse::<Divergence>().unwrap(), d, "{long}");
        // Display round-trips through FromStr.
        assert_eq!(d.to_string().parse::<Divergence>().unwrap(), d, "{d}");
        // Bare strings and short tags deserialise, with default parameters.
        assert_eq!(
            serde_json::from_str::<Divergence>(&format!("\"{name}\"")).unwrap(),
            d
        );
        assert_eq!(
            serde_json::from_str::<Divergence>(&format!("{{\"kind\": \"{name}\"}}")).unwrap(),
            d
        );
        assert_eq!(
            serde_json::from_str::<Divergence>(&format!("{{\"kind\": \"{long}\"}}")).unwrap(),
            d
        );
        // Serialised form is the tagged object and reads back.
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains(&format!("\"kind\":\"{long}\"")), "{json}");
        assert_eq!(serde_json::from_str::<Divergence>(&json).unwrap(), d);
    }
}

#[test]
fn parameters_parse_and_validate() {
    assert_eq!(
        "js:0.3".parse::<Divergence>().unwrap(),
        Divergence::JensenShannon { beta: 0.3 }
    );
    assert_eq!(
        "skewed_forward_kl: 0.25".parse::<Divergence>().unwrap(),
        Divergence::SkewedForwardKl { lambda: 0.25 }
    );
    assert_eq!(
        serde_json::from_str::<Divergence>(r#"{"kind": "srkl", "lambda": 0.2}"#).unwrap(),
        Divergence::SkewedReverseKl { lambda: 0.2 }
    );
    assert_eq!(
        serde_json::from_str::<Divergence>(r#"{"kind": "adaptive_kl", "head_ratio": 0.4}"#)
            .unwrap(),
        Divergence::AdaptiveKl { head_ratio: 0.4 }
    );
    assert_eq!(
        Divergence::JensenShannon { beta: 0.3 }.parameter(),
        Some(("beta", 0.3))
    );
    assert_eq!(Divergence::TotalVariation.parameter(), None);

    let err = "kl".parse::<Divergence>().unwrap_err();
    assert!(matches!(err, DistillError::UnknownDivergence { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("`kl`") && msg.contains("fkl, rkl, js, tv, sfkl, srkl, akl, skew_kl"),
        "{msg}"
    );
    let msg = "fkl:0.3".parse::<Divergence>().unwrap_err().to_string();
    assert!(msg.contains("has none"), "{msg}");
    let msg = "js:abc".parse::<Divergence>().unwrap_err().to_string();
    assert!(msg.contains("beta") && msg.contains("abc"), "{msg}");
    for bad in ["js:1.0", "js:0", "sfkl:1.5", "akl:-0.1", "skew_kl:nan"] {
        let err = bad.parse::<Divergence>().unwrap_err();
        assert!(
            matches!(err, DistillError::InvalidConfig { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("(0, 1)"), "{bad}: {err}");
    }
    // Serde rejects out-of-range values, unknown kinds and misspelt fields.
    for bad in [
        r#"{"kind": "js", "beta": 1.5}"#,
        r#"{"kind": "kl"}"#,
        r#"{"kind": "sfkl", "lamda": 0.2}"#,
        r#""akl:2""#,
        "3",
    ] {
        assert!(
            serde_json::from_str::<Divergence>(bad).is_err(),
            "{bad} was accepted"
        );
    }
}

#[test]
fn configs_round_trip_through_json_and_keep_their_defaults() {
    let config = KdObjectiveConfig::new(
        KdLossConfig::new(Divergence::AdaptiveKl { head_ratio: 0.5 })
            .with_temperature(2.0)
            .with_temperature_squared(true),
    )
    .with_alpha(0.7);
    let json = serde_json::to_string(&config).unwrap();
    let back: KdObjectiveConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.kd.divergence, config.kd.divergence);
    assert_eq!(back.kd.temperature, 2.0);
    assert!(back.kd.temperature_squared);
    assert_eq!(back.alpha, 0.7);

    let defaults = KdObjectiveConfig::new(KdLossConfig::new(Divergence::ForwardKl));
    assert_eq!(defaults.alpha, 0.5);
    assert_eq!(defaults.kd.temperature, 1.0);
    assert!(!defaults.kd.temperature_squared);
    // A hand-written config with a short divergence name and its default parameter.
    let written: KdObjectiveConfig = serde_json::from_str(
        r#"{"kd": {"divergence": "sfkl", "temperature": 2.0, "temperature_squared": false}, "alpha": 0.5}"#,
    )
    .unwrap();
    assert_eq!(
        written.kd.divergence,
        Divergence::SkewedForwardKl { lambda: 0.1 }
    );

    let loss = config.init();
    assert_eq!(loss.alpha, 0.7);
    assert_eq!(loss.kd.divergence, config.kd.divergence);
}
