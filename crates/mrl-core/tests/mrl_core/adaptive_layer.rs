//! Adaptive-layer loss and 2D Matryoshka, as in sentence-transformers.

use crate::common::*;

#[test]
fn adaptive_layer_and_2d_matryoshka_follow_sentence_transformers() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let inputs = layered(&ad, 3);
        let base = InfoNceLossConfig::new().init();
        let loss = AdaptiveLayerConfig::new()
            .with_n_layers_per_step(0)
            .with_layer_weighting(mrl_core::LayerWeighting::Linear)
            .init(base.clone());
        let out = loss.forward(&inputs, 0);
        assert_eq!(
            out.layers.iter().map(|t| t.layer).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Recompute by hand: base at every layer, 1/(1+l)/3 weights, KL(final ‖ layer) · T over
        // the concatenated rows of both roles, batchmean.
        let t = 0.3;
        let pooled = |l: usize| inputs.pooled_at(l, Pooling::Mean).unwrap();
        let rows = |e: &EmbeddingInputs| host(Tensor::cat(e.embeddings.clone(), 0));
        let log_softmax_rows = |x: &[f64]| -> Vec<f64> {
            x.chunks(8)
                .flat_map(|r| {
                    let z: Vec<f64> = r.iter().map(|v| v / t).collect();
                    let m = z.iter().cloned().fold(f64::MIN, f64::max);
                    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                    z.into_iter().map(move |v| v - lse).collect::<Vec<_>>()
                })
                .collect()
        };
        let lp = log_softmax_rows(&rows(&pooled(3)));
        let mut want = scalar(&base.embedding_loss(&pooled(3), 0).unwrap());
        for l in 0..3 {
            want += scalar(&base.embedding_loss(&pooled(l), 0).unwrap()) / (1.0 + l as f64) / 3.0;
            let lq = log_softmax_rows(&rows(&pooled(l)));
            let kl: f64 = lp
                .iter()
                .zip(&lq)
                .map(|(p, q)| p.exp() * (p - q))
                .sum::<f64>()
                / 6.0;
            assert_close(
                "KL term",
                scalar(out.layers[l].kl.as_ref().unwrap()),
                kl,
                1e-4,
            );
            want += kl * t;
        }
        assert_close(
            &format!("{name} adaptive-layer total"),
            scalar(&out.total),
            want,
            1e-4,
        );

        // Only the KL: the final layer is the detached teacher, so it gets no gradient from it.
        let kl_only = AdaptiveLayerConfig::new()
            .with_n_layers_per_step(0)
            .with_last_layer_weight(0.0)
            .with_prior_layers_weight(0.0)
            .init(base.clone());
        let hs: Vec<Tensor<3>> = inputs.hidden_states[0]
            .iter()
            .map(|h| h.clone().require_grad())
            .collect();
        let grad_inputs = LayeredInputs {
            hidden_states: vec![hs.clone(), inputs.hidden_states[1].clone()],
            ..inputs.clone()
        };
        let grads = kl_only.forward(&grad_inputs, 0).total.backward();
        assert!(
            hs[3]
                .grad(&grads)
                .is_none_or(|g| host(g).iter().all(|v| *v == 0.0)),
            "{name}: final layer detached"
        );
        assert!(host(hs[1].grad(&grads).unwrap())
            .iter()
            .any(|v| v.abs() > 0.0));

        // 2D Matryoshka: one dim and one prior layer per step, deterministic in (seed, step).
        let two_d = matryoshka_2d(base, vec![2, 4, 8], 11);
        let out = two_d.forward(&inputs, 5);
        assert_eq!(out.layers.len(), 1);
        assert_eq!(two_d.base.active_dims(5).len(), 1);
        assert_eq!(scalar(&out.total), scalar(&two_d.forward(&inputs, 5).total));
    }
}
