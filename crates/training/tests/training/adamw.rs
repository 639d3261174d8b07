//! `FusedAdamW`: the fused host step against Burn's `AdamW` over several steps (shapes that span
//! several parallel chunks, with and without weight decay, a changing learning rate), states
//! interchangeable with Burn's, the f64 fallback bit for bit, inside `ModuleOptimizer` on a
//! module, and bad settings.

use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, Optimizer};
use burn::tensor::{DType, Distribution, Tensor, TensorData};
use training::FusedAdamW;

use crate::common::devices;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
        .fold(0.0, f32::max)
}

#[test]
fn the_fused_step_follows_burns_adamw_for_several_steps() {
    for (name, device) in devices() {
        for weight_decay in [0.0f32, 0.01] {
            let fused = FusedAdamW::new(0.9, 0.999, 1e-8, weight_decay);
            let burn = AdamWConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.999)
                .with_epsilon(1e-8)
                .with_weight_decay(weight_decay)
                .build();
            // 3 × 41 × 800 = 98 400 elements: three chunks and a ragged fourth.
            let theta = Tensor::<3>::random([3, 41, 800], Distribution::Normal(0.0, 1.0), &device);
            let (mut a, mut b) = (theta.clone(), theta);
            let (mut sa, mut sb) = (None, None);
            for step in 0..5 {
                let grad =
                    Tensor::<3>::random([3, 41, 800], Distribution::Normal(0.0, 0.1), &device);
                let lr = 1e-3 * (1.0 + step as f64);
                (a, sa) = fused.step(lr, a, grad.clone(), sa);
                (b, sb) = burn.step(lr, b, grad, sb);
                let err = worst(&values(a.clone()), &values(b.clone()));
                assert!(
                    err < 1e-5,
                    "{name}, λ {weight_decay}, step {step}: θ error {err:e}"
                );
            }
            let (sa, sb) = (sa.unwrap().momentum, sb.unwrap().momentum);
            assert_eq!(sa.time, 5, "{name}");
            assert_eq!(sa.time, sb.time, "{name}");
            for (what, x, y) in [
                ("m", sa.moment_1, sb.moment_1),
                ("v", sa.moment_2, sb.moment_2),
            ] {
                let err = worst(&values(x), &values(y));
                assert!(err < 1e-5, "{name}, λ {weight_decay}: {what} error {err:e}");
            }
        }
    }
}

#[test]
fn states_are_interchangeable_with_burns_adamw() {
    for (name, device) in devices() {
        let fused = FusedAdamW::new(0.9, 0.98, 1e-6, 0.01);
        let burn = AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.98)
            .with_epsilon(1e-6)
            .with_weight_decay(0.01)
            .build();
        let theta = Tensor::<2>::random([64, 33], Distribution::Normal(0.0, 1.0), &device);
        let grads: Vec<Tensor<2>> = (0..4)
            .map(|_| Tensor::random([64, 33], Distribution::Normal(0.0, 0.1), &device))
            .collect();
        // Fused for two steps, then Burn's from the fused state — and the reverse.
        let (mut x, mut sx) = (theta.clone(), None);
        let (mut y, mut sy) = (theta, None);
        for (i, g) in grads.iter().enumerate() {
            if i < 2 {
                (x, sx) = fused.step(2e-3, x, g.clone(), sx);
                (y, sy) = burn.step(2e-3, y, g.clone(), sy);
            } else {
                (x, sx) = burn.step(2e-3, x, g.clone(), sx);
                (y, sy) = fused.step(2e-3, y, g.clone(), sy);
            }
        }
        let err = worst(&values(x), &values(y));
        assert!(err < 1e-5, "{name}: θ error {err:e}");
        assert_eq!(sx.unwrap().momentum.time, sy.unwrap().momentum.time);
    }
}

#[test]
fn f64_parameters_take_burns_adamw_bit_for_bit() {
    for (name, device) in devices() {
        let fused = FusedAdamW::new(0.9, 0.999, 1e-8, 0.01);
        let burn = AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(0.01)
            .build();
        let f64_tensor = |seed: f64| {
            let v: Vec<f64> = (0..300).map(|i| (i as f64 * seed).sin()).collect();
            Tensor::<1>::from_data(TensorData::new(v, [300]), (&device, DType::F64))
        };
        let (theta, grad) = (f64_tensor(0.3), f64_tensor(0.7));
        let (a, _) = fused.step(1e-2, theta.clone(), grad.clone(), None);
        let (b, _) = burn.step(1e-2, theta, grad, None);
        assert_eq!(a.dtype(), DType::F64, "{name}");
        assert_eq!(a.into_data(), b.into_data(), "{name}");
    }
}

#[test]
fn inside_a_module_optimizer_it_trains_like_burns_adamw() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let start: Linear = LinearConfig::new(48, 24).init(&ad);
        let x = Tensor::<2>::random([16, 48], Distribution::Normal(0.0, 1.0), &ad);
        let target = Tensor::<2>::random([16, 24], Distribution::Normal(0.0, 1.0), &ad);
        let train = |mut optim: ModuleOptimizer| {
            let mut model = start.clone();
            for _ in 0..4 {
                let loss = (model.forward(x.clone()) - target.clone()).square().mean();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(1e-2, model, grads);
            }
            values(model.weight.val().inner())
        };
        let fused = train(ModuleOptimizer::from(FusedAdamW::new(
            0.9, 0.999, 1e-8, 0.01,
        )));
        let burn = train(
            AdamWConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.999)
                .with_epsilon(1e-8)
                .with_weight_decay(0.01)
                .init(),
        );
        let err = worst(&fused, &burn);
        assert!(err < 1e-5, "{name}: weights after 4 steps, error {err:e}");
        let moved = worst(&fused, &values(start.weight.val().inner()));
        assert!(moved > 1e-3, "{name}: the weights did not move");
    }
}

#[test]
fn bad_settings_are_rejected_naming_the_field() {
    for (args, field) in [
        ((1.0f32, 0.999f32, 1e-8f32, 0.0f32), "beta_1"),
        ((0.9, -0.1, 1e-8, 0.0), "beta_2"),
        ((0.9, 0.999, f32::NAN, 0.0), "epsilon"),
        ((0.9, 0.999, 1e-8, -0.01), "weight_decay"),
    ] {
        let message = std::panic::catch_unwind(|| FusedAdamW::new(args.0, args.1, args.2, args.3))
            .expect_err("a bad setting must panic");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains(&format!("`{field}`")), "{field}: {text}");
    }
}
