//! CoSENT: the sentence-transformers formula and its ranking invariants.

use crate::common::*;

#[test]
fn cosent_matches_sentence_transformers_formula() {
    // Fixture: log(1 + Σ_{y_i < y_j} exp(s_i − s_j)), s = 20·cos, checked in the script against
    // sentence-transformers 6.x's sort + logcumsumexp implementation; labels contain ties.
    let fx = &fixtures()["cosent"];
    let s = usizes(&fx["shape"]);
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            let t = |v: &Value| tensor(floats(v), [s[0], s[1]], &device, dtype);
            let labels = tensor(floats(&fx["labels"]), [s[0]], &device, dtype);
            let loss = CosentLossConfig::new().init();
            let got = loss.forward(t(&fx["first"]), t(&fx["second"]), labels.clone());
            assert_close(
                &format!("{name} {dtype:?} CoSENT"),
                scalar(&got),
                fx["loss"].as_f64().unwrap(),
                tol,
            );
            // Through the EmbeddingLoss trait (how the Matryoshka wrapper calls it).
            let inputs = EmbeddingInputs::scored_pairs(t(&fx["first"]), t(&fx["second"]), labels);
            let via_trait = loss.embedding_loss(&inputs, 0).unwrap();
            assert_close(
                "CoSENT via trait",
                scalar(&via_trait),
                fx["loss"].as_f64().unwrap(),
                tol,
            );
        }
    }
}

#[test]
fn cosent_is_zero_free_for_perfectly_ranked_pairs_and_grows_when_reversed() {
    for (name, device) in devices() {
        // cos(u_b, v_b) increases with b; labels agree (loss ≈ log 1 + tiny) or are reversed.
        let u = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0], [3, 2]),
            &device,
        );
        let v = Tensor::<2>::from_data(
            TensorData::new(vec![-1.0f32, 0.2, 0.0, 1.0, 1.0, 0.1], [3, 2]),
            &device,
        );
        let loss = CosentLossConfig::new().init();
        let agree = scalar(&loss.forward(
            u.clone(),
            v.clone(),
            Tensor::from_data([0.0f32, 1.0, 2.0], &device),
        ));
        let reversed = scalar(&loss.forward(u, v, Tensor::from_data([2.0f32, 1.0, 0.0], &device)));
        assert!(agree < 1e-3, "{name}: ranked pairs give {agree}");
        assert!(reversed > 10.0, "{name}: reversed pairs give {reversed}");
    }
}
