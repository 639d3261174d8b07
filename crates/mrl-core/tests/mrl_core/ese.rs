//! ESE: Matryoshka at the last layer and one sampled layer.

use crate::common::*;

#[test]
fn ese_is_matryoshka_at_the_last_and_one_sampled_layer() {
    for (name, device) in devices() {
        let inputs = layered(&device, 4);
        let base = InfoNceLossConfig::new().init();
        let ese = EseConfig::new()
            .with_dims(vec![2, 4, 8])
            .with_seed(3)
            .init(base.clone());
        let mrl = MatryoshkaConfig::new()
            .with_dims(vec![2, 4, 8])
            .with_weights(DimWeights::EseLog)
            .init(base);
        let mut seen = std::collections::BTreeSet::new();
        for step in 0..30 {
            let out = ese.forward(&inputs, step);
            let s = out
                .sampled
                .as_ref()
                .expect("4 layers have intermediate layers");
            assert!(
                (1..4).contains(&s.layer),
                "{name}: sampled layer {}",
                s.layer
            );
            assert_close(
                "ESE layer weight",
                s.weight,
                1.0 / (1.0 + ((4 - s.layer) as f64).ln()),
                1e-12,
            );
            seen.insert(s.layer);
            let at = |l: usize| {
                scalar(
                    &mrl.forward(&inputs.pooled_at(l, Pooling::Mean).unwrap(), 0)
                        .total,
                )
            };
            assert_close(
                &format!("{name} ESE total"),
                scalar(&out.total),
                at(4) + s.weight * at(s.layer),
                1e-5,
            );
        }
        assert_eq!(
            seen.len(),
            3,
            "{name}: layers 1, 2, 3 are all sampled over 30 steps"
        );
    }
}
