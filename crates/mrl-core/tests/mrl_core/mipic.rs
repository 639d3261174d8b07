//! MIPIC: every fixture variant, α = 1 is MRL, sampled MRL dims, SIA and PIC used alone, the unordered-dims panic.

use crate::common::*;

#[test]
fn mipic_matches_numpy_fixture_in_every_variant() {
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            let case = MipicCase::new(&device, dtype);
            let (view_a, view_b) = case.views();
            for variant in ["paper_sum", "paper_mean", "notebook", "cosine_additive"] {
                let want = &case.fx["variants"][variant];
                let what = format!("{name} {dtype:?} {variant}");
                let loss = case.loss(variant, &device, dtype);
                let out = loss.forward(&view_a, &view_b, case.mask.clone(), 0);

                let mrl: Vec<f64> = out.mrl.terms.iter().map(|t| scalar(&t.loss)).collect();
                assert_all_close(
                    &format!("{what} MRL terms"),
                    &mrl,
                    &floats(&case.fx["mrl_terms"]),
                    tol,
                );
                let pic: Vec<f64> = out.pic.links.iter().map(|t| scalar(&t.loss)).collect();
                assert_all_close(
                    &format!("{what} PIC links"),
                    &pic,
                    &floats(&case.fx["pic_terms"]),
                    tol,
                );
                let cka: Vec<f64> = out
                    .sia
                    .terms
                    .iter()
                    .map(|t| scalar(t.cka_loss.as_ref().unwrap()))
                    .collect();
                assert_all_close(
                    &format!("{what} CKA terms"),
                    &cka,
                    &floats(&want["cka_loss"]),
                    tol,
                );
                if want["lambda_att"].as_f64().unwrap() > 0.0 {
                    let att: Vec<f64> = out
                        .sia
                        .terms
                        .iter()
                        .map(|t| scalar(t.att_kl.as_ref().unwrap()))
                        .collect();
                    assert_all_close(
                        &format!("{what} attention KL"),
                        &att,
                        &floats(&want["att_kl"]),
                        tol,
                    );
                } else {
                    assert!(
                        out.sia.terms.iter().all(|t| t.att_kl.is_none()),
                        "{what}: KL disabled"
                    );
                    assert!(loss.sia.lifts.is_empty(), "{what}: no lifts without the KL");
                }
                assert_close(
                    &format!("{what} L_MRL"),
                    scalar(&out.mrl.total),
                    want["mrl_total"].as_f64().unwrap(),
                    tol,
                );
                assert_close(
                    &format!("{what} L_SIA"),
                    scalar(&out.sia.total),
                    want["sia_total"].as_f64().unwrap(),
                    tol,
                );
                assert_close(
                    &format!("{what} L_PIC"),
                    scalar(&out.pic.total),
                    want["pic_total"].as_f64().unwrap(),
                    tol,
                );
                assert_close(
                    &format!("{what} total"),
                    scalar(&out.total),
                    want["total"].as_f64().unwrap(),
                    tol,
                );

                // The breakdown names every term and reads the same values.
                let logged = out.to_f64();
                assert_eq!(logged[0].0, "total");
                assert_close(
                    "logged total",
                    logged[0].1,
                    want["total"].as_f64().unwrap(),
                    tol,
                );
                let n_att = if want["lambda_att"].as_f64().unwrap() > 0.0 {
                    4
                } else {
                    0
                };
                assert_eq!(
                    logged.len(),
                    1 + (1 + 3) + (1 + 4 + n_att) + (1 + 2),
                    "{what}: {logged:?}"
                );
                assert!(logged.iter().any(|(n, _)| n == "sia/layer_3/dim_6/cka"));
                assert!(logged.iter().any(|(n, _)| n == "pic/link_6@2->12@3"));
            }
        }
    }
}

#[test]
fn mipic_with_alpha_one_is_mrl() {
    for (name, device) in devices() {
        let case = MipicCase::new(&device, DType::F32);
        let (view_a, view_b) = case.views();
        let config = case.config("paper_sum").with_alpha(1.0);
        let out = config
            .init(&device)
            .forward(&view_a, &view_b, case.mask.clone(), 0);
        let mrl = config
            .mrl_config()
            .init(
                InfoNceLossConfig::new()
                    .with_temperature(config.temperature)
                    .init(),
            )
            .forward(
                &EmbeddingInputs::pair(view_a.pooled.clone(), view_b.pooled.clone()),
                0,
            );
        assert_eq!(
            scalar(&out.total),
            scalar(&mrl.total),
            "{name}: α = 1 must give exactly L_MRL"
        );
        assert_close(
            name,
            scalar(&out.total),
            case.fx["variants"]["paper_sum"]["mrl_total"]
                .as_f64()
                .unwrap(),
            2e-4,
        );
        assert!(
            scalar(&out.sia.total) > 0.0,
            "{name}: SIA is still reported"
        );
    }
}

#[test]
fn mipic_can_sample_mrl_dims_per_step() {
    for (name, device) in devices() {
        let case = MipicCase::new(&device, DType::F32);
        let (view_a, view_b) = case.views();
        let config = case.config("paper_sum");
        let n_dims = config.dims.len();
        let sampled = config.clone().with_mrl_dims_per_step(Some(2)).with_seed(3);
        let every = config.init(&device);
        let mut loss = sampled.init(&device);
        loss.sia = every.sia.clone();
        loss.pic = every.pic.clone();
        let mut seen = std::collections::BTreeSet::new();
        for step in 0..8 {
            let out = loss.forward(&view_a, &view_b, case.mask.clone(), step);
            assert_eq!(out.mrl.terms.len(), 2, "{name}: step {step}");
            seen.extend(out.mrl.terms.iter().map(|t| t.dim));
            // The same step draws the same dims; SIA and PIC are untouched by the sampling.
            let again = loss.forward(&view_a, &view_b, case.mask.clone(), step);
            assert_eq!(
                out.mrl.terms.iter().map(|t| t.dim).collect::<Vec<_>>(),
                again.mrl.terms.iter().map(|t| t.dim).collect::<Vec<_>>()
            );
            let full = every.forward(&view_a, &view_b, case.mask.clone(), step);
            assert_eq!(scalar(&out.sia.total), scalar(&full.sia.total));
            assert_eq!(scalar(&out.pic.total), scalar(&full.pic.total));
        }
        assert!(seen.len() > 2, "{name}: sampling varies with the step");
        assert!(seen.len() <= n_dims);
        let err = case
            .config("paper_sum")
            .with_mrl_dims_per_step(Some(0))
            .try_init(&device)
            .expect_err("rejected");
        assert_invalid_config(&err, "mrl_dims_per_step");
    }
}

#[test]
fn sia_and_pic_can_be_used_alone() {
    for (name, device) in devices() {
        let case = MipicCase::new(&device, DType::F64);
        let config = case.config("paper_sum");
        let mut full = case.loss("paper_sum", &device, DType::F64);
        case.set_weights(&mut full, &device, DType::F64);
        // SIA on view A only equals the per-view term the fixture averaged (via the module API).
        let sia = full.sia.forward(&case.view_a, case.mask.clone());
        let sia_b = full.sia.forward(&case.view_b, case.mask.clone());
        let mean: Vec<f64> = sia
            .terms
            .iter()
            .zip(&sia_b.terms)
            .map(|(a, b)| {
                (scalar(a.att_kl.as_ref().unwrap()) + scalar(b.att_kl.as_ref().unwrap())) / 2.0
            })
            .collect();
        assert_all_close(
            &format!("{name} per-view SIA KL average"),
            &mean,
            &floats(&case.fx["variants"]["paper_sum"]["att_kl"]),
            1e-9,
        );
        // A standalone SiaConfig gives the same layout.
        let standalone = SiaConfig::new(12)
            .with_layers(config.sia_layers.clone())
            .with_dims(config.sia_dims())
            .with_cka_schedule(config.cka_schedule.clone())
            .init(&device);
        assert_eq!(standalone.lifts.len(), 4);
        assert_eq!(standalone.lifts[1].weight.val().dims(), [6, 12]);
        let pic = PicConfig::new()
            .with_chain(config.chain.clone())
            .init(&device);
        assert_eq!(pic.projectors[0].fc1.weight.val().dims(), [3, 3]);
        assert_eq!(pic.projectors[1].fc1.weight.val().dims(), [6, 6]);
        assert_eq!(pic.projectors[1].fc2.weight.val().dims(), [6, 12]);
    }
}

#[test]
#[should_panic(expected = "MipicConfig: invalid `dims` [16, 8, 768]")]
fn mipic_init_panics_on_unordered_dims() {
    let (_, device) = devices().remove(0);
    let _ = MipicConfig::new().with_dims(vec![16, 8, 768]).init(&device);
}

#[test]
fn mrl_weight_puts_the_mrl_term_at_full_weight_and_is_validated() {
    for (name, device) in devices() {
        let case = MipicCase::new(&device, DType::F64);
        let (view_a, view_b) = case.views();
        let run = |mrl_weight: Option<f64>| {
            let mut loss = case
                .config("paper_sum")
                .with_mrl_weight(mrl_weight)
                .init(&device);
            case.set_weights(&mut loss, &device, DType::F64);
            loss.forward(&view_a, &view_b, case.mask.clone(), 0)
        };
        let (c, a) = (run(None), run(Some(1.0)));
        // Only the MRL weight changes: total_additive − total_convex = (1 − α) L_MRL.
        assert_close(
            &format!("{name} additive − convex"),
            scalar(&a.total) - scalar(&c.total),
            (1.0 - 0.4) * scalar(&c.mrl.total),
            1e-9,
        );
        assert_eq!(scalar(&a.sia.total), scalar(&c.sia.total));
        // `Some(α)` is the convex combination exactly.
        assert_eq!(scalar(&run(Some(0.4)).total), scalar(&c.total), "{name}");
        for bad in [-0.5, f64::NAN, f64::INFINITY] {
            let err = case
                .config("paper_sum")
                .with_mrl_weight(Some(bad))
                .try_init(&device)
                .expect_err("rejected");
            assert_invalid_config(&err, "mrl_weight");
            assert!(err.to_string().contains(&format!("{bad}")), "{err}");
        }
    }
}

#[test]
fn cosine_attention_kl_ignores_the_scale_of_every_token_state() {
    // cos(h_CLS, h_j) and cos(h_CLS, P_iᵀ h_j[:d_i]) do not change when any token state is
    // multiplied by a positive number, so neither does the KL; Eq. 4's scaled scores do.
    for (name, device) in devices() {
        let case = MipicCase::new(&device, DType::F64);
        let [b, m, d] = case.shape();
        let scales: Vec<f64> = (0..b * m)
            .map(|i| [0.01, 0.3, 1.0, 7.0, 250.0][i % 5])
            .collect();
        let scale = tensor(scales, [b, m, 1], &device, DType::F64);
        let rescaled: Vec<Tensor<3>> = case
            .view_a
            .iter()
            .map(|h| h.clone() * scale.clone().expand([b, m, d]))
            .collect();
        for (score, invariant) in [
            (AttentionScore::Cosine, true),
            (AttentionScore::Scaled, false),
        ] {
            let mut loss = case
                .config("cosine_additive")
                .with_att_score(score)
                .init(&device);
            case.set_weights(&mut loss, &device, DType::F64);
            let kl = |hs: &[Tensor<3>]| -> Vec<f64> {
                loss.sia
                    .forward(hs, case.mask.clone())
                    .terms
                    .iter()
                    .map(|t| scalar(t.att_kl.as_ref().unwrap()))
                    .collect()
            };
            let (before, after) = (kl(&case.view_a), kl(&rescaled));
            assert!(
                before
                    .iter()
                    .chain(&after)
                    .all(|v| v.is_finite() && *v >= -1e-12),
                "{name} {score:?}: KL is finite and >= 0: {before:?} {after:?}"
            );
            if invariant {
                assert_all_close(&format!("{name} cosine KL"), &after, &before, 1e-9);
            } else {
                assert!(
                    before.iter().zip(&after).any(|(x, y)| (x - y).abs() > 1e-3),
                    "{name}: the scaled KL must see the rescaling"
                );
            }
        }
        // A token state that is exactly zero (and a zero [CLS]) gives finite values, no NaN.
        let mut zeroed = case.view_a.clone();
        zeroed[1] = zeroed[1].clone().slice_assign(
            [0..b, 0..2, 0..d],
            Tensor::zeros([b, 2, d], (&device, DType::F64)),
        );
        let mut loss = case.config("cosine_additive").init(&device);
        case.set_weights(&mut loss, &device, DType::F64);
        let out = loss.sia.forward(&zeroed, case.mask.clone());
        assert!(scalar(&out.total).is_finite(), "{name}: zero states");
    }
}
