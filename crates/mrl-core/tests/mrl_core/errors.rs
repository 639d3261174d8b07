//! Bad inputs and configs give errors that name the argument and the values received.

use crate::common::*;

#[test]
fn bad_inputs_give_clear_errors() {
    for (_, device) in devices() {
        let base = InfoNceLossConfig::new().init();
        // dims not increasing
        let err = MatryoshkaConfig::new()
            .with_dims(vec![8, 4, 16])
            .try_init(base.clone())
            .unwrap_err();
        assert!(matches!(err, MrlError::InvalidDims { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("strictly increasing (8 is followed by 4)"),
            "{err}"
        );
        // dims above the embedding width
        let mrl = MatryoshkaConfig::new()
            .with_dims(vec![4, 32])
            .init(base.clone());
        let err = mrl
            .try_forward(
                &EmbeddingInputs::pair(random2([4, 16], &device), random2([4, 16], &device)),
                0,
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the largest dim 32 exceeds the embedding / hidden width 16"),
            "{err}"
        );
        // a negative or non-finite adaptive-layer weight names the field
        for (config, field) in [
            (
                AdaptiveLayerConfig::new().with_kl_div_weight(-1.0),
                "kl_div_weight",
            ),
            (
                AdaptiveLayerConfig::new().with_kl_temperature(f64::NAN),
                "kl_temperature",
            ),
        ] {
            let err = config.try_init(base.clone()).expect_err("rejected");
            assert!(
                matches!(err, MrlError::InvalidConfig { field: f, .. } if f == field),
                "{err}"
            );
        }
        // batch of 1
        let err = base
            .try_forward_no_reduction(random2([1, 8], &device), random2([1, 8], &device))
            .unwrap_err();
        assert_eq!(
            err,
            MrlError::BatchTooSmall {
                arg: "anchors",
                batch: 1
            }
        );
        let err = MultipleNegativesRankingLossConfig::new()
            .init()
            .try_forward_no_reduction(random2([1, 8], &device), random2([1, 8], &device), &[])
            .unwrap_err();
        assert!(err.to_string().contains("batch size 1"), "{err}");
        // mismatched pair shapes
        let err = base
            .try_forward_no_reduction(random2([4, 8], &device), random2([4, 6], &device))
            .unwrap_err();
        assert!(
            err.to_string().contains("`positives`") && err.to_string().contains("[4, 6]"),
            "{err}"
        );
        // MIPIC: SIA dims must be below D, chain layers in range, views must match.
        let err = MipicConfig::new()
            .with_hidden_size(512)
            .try_init(&device)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("exceeds the embedding / hidden width 512"),
            "{err}"
        );
        let case = MipicCase::new(&device, DType::F32);
        let (a, b) = case.views();
        let bad_chain = case
            .config("paper_sum")
            .with_chain(vec![(3, 1), (6, 2), (12, 7)]);
        let err = bad_chain
            .init(&device)
            .try_forward(&a, &b, case.mask.clone(), 0)
            .unwrap_err();
        assert!(matches!(err, MrlError::InvalidChain { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("layer 7 does not exist, 4 hidden states"),
            "{err}"
        );
        let bad_layers = case.config("paper_sum").with_sia_layers(vec![1, 9]);
        let err = bad_layers
            .init(&device)
            .try_forward(&a, &b, case.mask.clone(), 0)
            .unwrap_err();
        assert!(err.to_string().contains("layer 9 does not exist"), "{err}");
        let loss = case.config("paper_sum").init(&device);
        let short = MipicView {
            hidden_states: b.hidden_states[..3].to_vec(),
            pooled: b.pooled.clone(),
        };
        let err = loss
            .try_forward(&a, &short, case.mask.clone(), 0)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the two views must have the same hidden states"),
            "{err}"
        );
        let one = |v: &MipicView| MipicView {
            hidden_states: v
                .hidden_states
                .iter()
                .map(|h| h.clone().slice([0..1, 0..7, 0..12]))
                .collect(),
            pooled: v.pooled.clone().slice([0..1, 0..12]),
        };
        let err = loss
            .try_forward(&one(&a), &one(&b), case.mask.clone().slice([0..1, 0..7]), 0)
            .unwrap_err();
        assert!(
            matches!(err, MrlError::BatchTooSmall { batch: 1, .. }),
            "{err}"
        );
        let err = loss
            .try_forward(&a, &b, case.mask.clone().slice([0..4, 0..6]), 0)
            .unwrap_err();
        assert!(
            err.to_string().contains("`mask`") && err.to_string().contains("[4, 6]"),
            "{err}"
        );
        // SIA dims must be truncated dims; chain must be increasing; schedule length must match.
        let err = SiaConfig::new(16)
            .with_layers(vec![1])
            .with_dims(vec![8, 16])
            .with_cka_schedule(SiaCkaSchedule::paper(2))
            .try_init(&device)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("every dim must be < hidden_size = 16"),
            "{err}"
        );
        let err = SiaConfig::new(16)
            .with_layers(vec![1])
            .with_dims(vec![4, 8])
            .try_init(&device)
            .unwrap_err();
        assert!(
            err.to_string().contains("6 gammas for 2 truncated dims"),
            "{err}"
        );
        let err = PicConfig::new()
            .with_chain(vec![(16, 1), (8, 2)])
            .try_init(&device)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("dims must be strictly increasing along the chain"),
            "{err}"
        );
        // A mask that is not 0/1 is reported by top-k CKA.
        let bad_mask = case.mask.clone().mul_scalar(0.5);
        let err = loss.try_forward(&a, &b, bad_mask, 0).unwrap_err();
        assert!(matches!(err, MrlError::Cka(_)), "{err}");
    }
}
