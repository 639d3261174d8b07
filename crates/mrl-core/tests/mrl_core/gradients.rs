//! Gradients against finite differences (InfoNCE, CoSENT, MIPIC), and what PIC and SIA detach.

use crate::common::*;

#[test]
fn info_nce_and_cosent_gradients_match_finite_differences() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let x: Vec<f64> = (0..24)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let y: Vec<f64> = (0..24).map(|i| ((i * 13 % 7) as f64 - 3.0) / 2.0).collect();
        let labels = tensor(vec![0.2, 1.0, 0.5, 0.8], [4], &ad, DType::F64);
        let info = InfoNceLossConfig::new().with_temperature(0.5).init();
        let cosent = CosentLossConfig::new().with_scale(5.0).init();
        type LossFn<'a> = Box<dyn Fn(Tensor<2>, Tensor<2>) -> Tensor<1> + 'a>;
        let losses: Vec<(&str, LossFn)> = vec![
            (
                "InfoNCE",
                Box::new(|a, p| info.forward(a, p, Reduction::Mean)),
            ),
            (
                "CoSENT",
                Box::new(|a, p| cosent.forward(a, p, labels.clone())),
            ),
        ];
        for (what, f) in &losses {
            let a = tensor(x.clone(), [4, 6], &ad, DType::F64).require_grad();
            let p = tensor(y.clone(), [4, 6], &ad, DType::F64);
            let grads = f(a.clone(), p.clone()).backward();
            let analytic = host(a.grad(&grads).unwrap());
            let numeric = finite_differences(&x, 0..24, |v| {
                scalar(&f(tensor(v, [4, 6], &ad, DType::F64), p.clone()))
            });
            assert_gradient(&format!("{name} {what}"), &analytic, &numeric);
        }
    }
}

#[test]
fn mipic_gradients_match_finite_differences() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        for variant in ["paper_sum", "notebook", "cosine_additive"] {
            let case = MipicCase::new(&ad, DType::F64);
            let loss = case.loss(variant, &ad, DType::F64);
            let shape = case.shape();
            let fx = case.fx.clone();
            let a_values: Vec<Vec<f64>> = fx["view_a"]
                .as_array()
                .unwrap()
                .iter()
                .map(floats)
                .collect();
            // Perturb hidden state `layer` of view A; everything else fixed. Hidden state 1 feeds
            // SIA and the first PIC link; hidden state 3 feeds MRL (pooled) and SIA, and is also
            // the stop-gradient PIC target, which finite differences would see: PIC is switched
            // off (λ_pic = 0) for that check.
            for (layer, lambda_pic) in [(1usize, None), (3, Some(0.0))] {
                let loss = match lambda_pic {
                    None => loss.clone(),
                    Some(l) => {
                        let mut l0 = case.config(variant).with_lambda_pic(l).init(&ad);
                        case.set_weights(&mut l0, &ad, DType::F64);
                        l0
                    }
                };
                let eval = |h: Vec<f64>| -> f64 {
                    let mut hs = case.view_a.clone();
                    hs[layer] = tensor(h, shape, &ad, DType::F64);
                    let a = MipicView::pooled(hs, case.mask.clone(), Pooling::Mean).unwrap();
                    let b =
                        MipicView::pooled(case.view_b.clone(), case.mask.clone(), Pooling::Mean)
                            .unwrap();
                    scalar(&loss.forward(&a, &b, case.mask.clone(), 0).total)
                };
                let mut hs = case.view_a.clone();
                let h = tensor(a_values[layer].clone(), shape, &ad, DType::F64).require_grad();
                hs[layer] = h.clone();
                let a = MipicView::pooled(hs, case.mask.clone(), Pooling::Mean).unwrap();
                let b = MipicView::pooled(case.view_b.clone(), case.mask.clone(), Pooling::Mean)
                    .unwrap();
                let grads = loss.forward(&a, &b, case.mask.clone(), 0).total.backward();
                let analytic = host(h.grad(&grads).unwrap());
                let n = shape.iter().product::<usize>();
                let numeric = finite_differences(&a_values[layer], (0..n).step_by(5), eval);
                assert_gradient(
                    &format!("{name} {variant} dL/dH^({layer})"),
                    &analytic,
                    &numeric,
                );
            }
            // The lifts and projectors are trained with the encoder: they get gradients.
            let (a, b) = case.views();
            let grads = loss.forward(&a, &b, case.mask.clone(), 0).total.backward();
            let g = host(
                loss.pic.projectors[0]
                    .fc1
                    .weight
                    .val()
                    .grad(&grads)
                    .expect("projector gradient"),
            );
            assert!(
                g.iter().any(|v| v.abs() > 0.0),
                "{name} {variant}: projector gradient is zero"
            );
            if let Some(lift) = loss.sia.lifts.first() {
                let g = host(lift.weight.val().grad(&grads).expect("lift gradient"));
                assert!(
                    g.iter().any(|v| v.abs() > 0.0),
                    "{name} {variant}: lift gradient is zero"
                );
            }
        }
    }
}

#[test]
fn pic_target_is_detached_and_detach_teacher_changes_sia_gradient() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        // PIC alone: hidden state 3 is only ever a (detached) target of the (6,2)->(12,3) link.
        let pic = PicConfig::new()
            .with_chain(vec![(3, 1), (6, 2), (12, 3)])
            .init(&ad);
        let hs: Vec<Tensor<3>> = (0..4)
            .map(|_| random3([4, 5, 12], &ad).require_grad())
            .collect();
        let grads = pic.forward(&hs, 0).total.backward();
        assert!(
            hs[3]
                .grad(&grads)
                .is_none_or(|g| host(g).iter().all(|v| *v == 0.0)),
            "{name}: PIC target must be detached"
        );
        let g1 = host(hs[1].grad(&grads).expect("source layer gets a gradient"));
        assert!(g1.iter().any(|v| v.abs() > 0.0));

        // SIA: with detach_teacher the gradient w.r.t. the hidden state changes.
        let h = random3([3, 9, 16], &ad);
        let mask = Tensor::<2>::ones([3, 9], &ad);
        let grad_for = |detach: bool| -> Vec<f64> {
            let config = SiaConfig::new(16)
                .with_layers(vec![0])
                .with_dims(vec![4, 8])
                .with_cka_schedule(SiaCkaSchedule::Paper {
                    gammas: vec![0.5, 0.7],
                    k_min: 3,
                })
                .with_detach_teacher(detach);
            let mut sia = config.init(&ad);
            // Same lifts in both runs.
            for (i, lift) in sia.lifts.iter_mut().enumerate() {
                let [d, w] = lift.weight.val().dims();
                let values: Vec<f64> = (0..d * w)
                    .map(|k| ((k * 7 + i) % 5) as f64 / 5.0 - 0.4)
                    .collect();
                lift.weight = Param::from_tensor(tensor(values, [d, w], &ad, DType::F32));
            }
            let x = h.clone().require_grad();
            let grads = sia
                .forward(std::slice::from_ref(&x), mask.clone())
                .total
                .backward();
            host(x.grad(&grads).unwrap())
        };
        let (full, detached) = (grad_for(false), grad_for(true));
        let diff = full
            .iter()
            .zip(&detached)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            diff > 1e-4,
            "{name}: detach_teacher had no effect on the SIA gradient"
        );
    }
}

#[test]
fn cosine_attention_kl_lift_gradient_matches_finite_differences_and_zero_states_stay_finite() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let case = MipicCase::new(&ad, DType::F64);
        let config = case
            .config("cosine_additive")
            .with_lambda_cka(0.0)
            .with_lambda_pic(0.0);
        let mut loss = config.init(&ad);
        case.set_weights(&mut loss, &ad, DType::F64);
        // dL_SIA / dP for the lift of (layer 3, dim 6): the Gram-matrix norm in the student
        // score is differentiated too.
        let k = 3;
        let w0 = host(loss.sia.lifts[k].weight.val());
        let dims = loss.sia.lifts[k].weight.val().dims();
        let eval = |w: Vec<f64>| -> f64 {
            let mut l = loss.clone();
            l.sia.lifts[k] = Linear {
                weight: Param::from_tensor(tensor(w, dims, &ad, DType::F64)),
                bias: None,
            };
            scalar(&l.sia.forward(&case.view_a, case.mask.clone()).total)
        };
        let grads = loss
            .sia
            .forward(&case.view_a, case.mask.clone())
            .total
            .backward();
        let analytic = host(loss.sia.lifts[k].weight.val().grad(&grads).unwrap());
        let numeric = finite_differences(&w0, (0..w0.len()).step_by(3), eval);
        assert_gradient(&format!("{name} cosine dL/dP"), &analytic, &numeric);

        // Zero token states (a zero [CLS] among them): the norms are floored, the gradient is
        // finite everywhere.
        let [b, m, d] = case.shape();
        let mut hs = case.view_a.clone();
        let zeroed = hs[1].clone().slice_assign(
            [0..b, 0..2, 0..d],
            Tensor::zeros([b, 2, d], (&ad, DType::F64)),
        );
        let h = tensor(host(zeroed), [b, m, d], &ad, DType::F64).require_grad();
        hs[1] = h.clone();
        let grads = loss.sia.forward(&hs, case.mask.clone()).total.backward();
        let g = host(h.grad(&grads).unwrap());
        assert!(
            g.iter().all(|v| v.is_finite()),
            "{name}: gradient through zero states is finite"
        );
    }
}
