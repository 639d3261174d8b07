//! The Matryoshka modifier: one dim equals the base loss, weights, aggregation, sampling, composition with MNRL and CoSENT.

use crate::common::*;

#[test]
fn matryoshka_with_one_dim_equals_the_base_loss() {
    for (name, device) in devices() {
        let a = random2([6, 16], &device);
        let p = a.clone() + random2([6, 16], &device).mul_scalar(0.5);
        let base = InfoNceLossConfig::new().init();
        let want = scalar(&base.forward(a.clone(), p.clone(), Reduction::Mean));
        let mrl = MatryoshkaConfig::new()
            .with_dims(vec![16])
            .init(base.clone());
        let out = mrl.forward(&EmbeddingInputs::pair(a.clone(), p.clone()), 0);
        assert_close(
            &format!("{name}: MRL(dims=[D])"),
            scalar(&out.total),
            want,
            1e-6,
        );
        assert_eq!(out.terms.len(), 1);
        // A single truncated dim d equals the base loss on the normalised prefixes.
        let mrl = MatryoshkaConfig::new()
            .with_dims(vec![4])
            .init(base.clone());
        let want4 = scalar(&base.forward(
            a.clone().slice([0..6, 0..4]),
            p.clone().slice([0..6, 0..4]),
            Reduction::Mean,
        ));
        let got4 = scalar(&mrl.forward(&EmbeddingInputs::pair(a, p), 0).total);
        assert_close(&format!("{name}: MRL(dims=[4])"), got4, want4, 1e-6);
    }
}

#[test]
fn matryoshka_weights_aggregation_and_sampling() {
    for (name, device) in devices() {
        let a = random2([5, 8], &device);
        let p = a.clone() + random2([5, 8], &device).mul_scalar(0.7);
        let inputs = EmbeddingInputs::pair(a.clone(), p.clone());
        let base = InfoNceLossConfig::new().init();
        let per_dim: Vec<f64> = [2usize, 4, 8]
            .iter()
            .map(|&d| {
                scalar(&base.forward(
                    a.clone().slice([0..5, 0..d]),
                    p.clone().slice([0..5, 0..d]),
                    Reduction::Mean,
                ))
            })
            .collect();
        let config = MatryoshkaConfig::new().with_dims(vec![2, 4, 8]);

        let sum = config.init(base.clone()).forward(&inputs, 0);
        assert_close(
            &format!("{name} uniform sum"),
            scalar(&sum.total),
            per_dim.iter().sum(),
            1e-5,
        );
        let names: Vec<String> = sum.to_f64().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["mrl/total", "mrl/dim_2", "mrl/dim_4", "mrl/dim_8"]);
        for (t, want) in sum.terms.iter().zip(&per_dim) {
            assert_close("per-dim term", scalar(&t.loss), *want, 1e-5);
        }

        let w = [0.5, 1.0, 2.0];
        let custom = config
            .clone()
            .with_weights(DimWeights::Custom(w.to_vec()))
            .with_aggregation(Aggregation::Mean);
        let got = scalar(&custom.init(base.clone()).forward(&inputs, 0).total);
        let want = (0..3).map(|i| w[i] * per_dim[i]).sum::<f64>() / 3.5;
        assert_close(&format!("{name} custom mean"), got, want, 1e-5);

        // ESE log weights: full width 1, then 1/(1+ln 2), 1/(1+ln 3).
        let ese = config
            .clone()
            .with_weights(DimWeights::EseLog)
            .init(base.clone());
        assert_all_close(
            "ese weights",
            &ese.weights,
            &[1.0 / (1.0 + 3f64.ln()), 1.0 / (1.0 + 2f64.ln()), 1.0],
            1e-12,
        );

        let sampled = config
            .clone()
            .with_n_dims_per_step(Some(2))
            .with_seed(7)
            .init(base.clone());
        let mut seen = std::collections::BTreeSet::new();
        for step in 0..40 {
            let out = sampled.forward(&inputs, step);
            assert_eq!(out.terms.len(), 2);
            let dims: Vec<usize> = out.terms.iter().map(|t| t.dim).collect();
            assert_eq!(
                dims,
                sampled
                    .active_dims(step)
                    .iter()
                    .map(|&i| [2, 4, 8][i])
                    .collect::<Vec<_>>()
            );
            let again: Vec<usize> = sampled
                .forward(&inputs, step)
                .terms
                .iter()
                .map(|t| t.dim)
                .collect();
            assert_eq!(dims, again, "same seed and step give the same dims");
            let want: f64 = dims
                .iter()
                .map(|d| per_dim[[2, 4, 8].iter().position(|x| x == d).unwrap()])
                .sum();
            assert_close("sampled total", scalar(&out.total), want, 1e-5);
            seen.insert(dims);
        }
        assert_eq!(
            seen.len(),
            3,
            "all three pairs of dims are drawn over 40 steps"
        );
    }
}

#[test]
fn matryoshka_over_mnrl_and_cosent_composes() {
    for (_, device) in devices() {
        let a = random2([4, 8], &device);
        let p = random2([4, 8], &device);
        let n = random2([4, 8], &device);
        let mnrl = MultipleNegativesRankingLossConfig::new().init();
        let mrl = MatryoshkaConfig::new()
            .with_dims(vec![4, 8])
            .init(mnrl.clone());
        let got = scalar(
            &mrl.forward(
                &EmbeddingInputs::with_negatives(a.clone(), p.clone(), vec![n.clone()]),
                0,
            )
            .total,
        );
        let want: f64 = [4usize, 8]
            .iter()
            .map(|&d| {
                let s = |t: &Tensor<2>| t.clone().slice([0..4, 0..d]);
                scalar(&mnrl.forward(s(&a), s(&p), &[s(&n)], Reduction::Mean))
            })
            .sum();
        assert_close("Matryoshka(MNRL)", got, want, 1e-5);

        let labels = Tensor::<1>::from_data([0.1f32, 0.9, 0.4, 0.6], &device);
        let cosent = CosentLossConfig::new().init();
        let mrl = MatryoshkaConfig::new()
            .with_dims(vec![2, 8])
            .init(cosent.clone());
        let got = scalar(
            &mrl.forward(
                &EmbeddingInputs::scored_pairs(a.clone(), p.clone(), labels.clone()),
                0,
            )
            .total,
        );
        let want = scalar(&cosent.forward(
            a.clone().slice([0..4, 0..2]),
            p.clone().slice([0..4, 0..2]),
            labels.clone(),
        )) + scalar(&cosent.forward(a, p, labels));
        assert_close("Matryoshka(CoSENT)", got, want, 1e-5);
    }
}
