//! The classification probe and the pair metrics against scikit-learn 1.9.1: fixture
//! `tests/fixtures/probe_reference.json`, written by `crates/mrl-eval/scripts/make_probe_reference.py`.

use std::path::Path;

use mrl_eval::classification::{
    accuracy_and_macro_f1, fit_logistic_regression, ProbeConfig, StopReason,
};
use mrl_eval::pair::pair_metrics;
use serde_json::Value;

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probe_reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn the_probe_reaches_sklearns_optimum() {
    let fixture = fixture();
    let cases = fixture["classification"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let k = case["n_classes"].as_u64().unwrap() as usize;
        let train_x = matrix(&case["train_x"]);
        let d = train_x[0].len();
        let flat: Vec<f64> = train_x.concat();
        let y = indices(&case["train_y"]);
        let config = ProbeConfig {
            tol: 1e-10,
            max_iter: 10_000,
            ..ProbeConfig::default()
        };
        let model = fit_logistic_regression(&flat, &y, k, d, &config).unwrap();
        assert!(model.converged(), "{name}: {:?}", model.stop);
        assert!(
            model.stop == StopReason::Gradient || model.grad_inf < 1e-8,
            "{name}: stopped by {:?} at |g| {}",
            model.stop,
            model.grad_inf
        );
        let want = case["objective"].as_f64().unwrap();
        let rel = (model.objective - want).abs() / want.abs();
        assert!(
            rel <= 1e-6,
            "{name}: objective {} vs sklearn {want} (rel {rel:e})",
            model.objective
        );
        println!(
            "{name}: {} iterations, objective rel. difference {rel:e}",
            model.iterations
        );

        // sklearn's coefficients: K rows (multinomial), or one binary row = w₁ − w₀.
        let coef = matrix(&case["coef"]);
        let intercept = floats(&case["intercept"]);
        let (ours_coef, ours_b): (Vec<Vec<f64>>, Vec<f64>) = if k == 2 {
            let row = |c: usize| &model.coef[c * d..][..d];
            (
                vec![row(1).iter().zip(row(0)).map(|(a, b)| a - b).collect()],
                vec![model.intercept[1] - model.intercept[0]],
            )
        } else {
            (
                model.coef.chunks(d).map(<[f64]>::to_vec).collect(),
                model.intercept.clone(),
            )
        };
        let mut worst: f64 = 0.0;
        for (ours, theirs) in ours_coef.iter().zip(&coef) {
            for (a, b) in ours.iter().zip(theirs) {
                worst = worst.max((a - b).abs());
            }
        }
        for (a, b) in ours_b.iter().zip(&intercept) {
            worst = worst.max((a - b).abs());
        }
        assert_eq!(ours_coef.len(), coef.len());
        assert!(
            worst <= 1e-4,
            "{name}: coefficients differ by up to {worst:e}"
        );
        println!("{name}: max coefficient difference {worst:e}");

        let test_x: Vec<f64> = matrix(&case["test_x"]).concat();
        let predicted = model.predict(&test_x);
        assert_eq!(predicted, indices(&case["predictions"]), "{name}");
        let (accuracy, macro_f1) = accuracy_and_macro_f1(&indices(&case["test_y"]), &predicted);
        assert!(
            (accuracy - case["accuracy"].as_f64().unwrap()).abs() < 1e-9,
            "{name}"
        );
        assert!(
            (macro_f1 - case["macro_f1"].as_f64().unwrap()).abs() < 1e-9,
            "{name}"
        );
    }
}

#[test]
fn pair_metrics_equal_sklearn_and_the_brute_force_sweep() {
    let fixture = fixture();
    let cases = fixture["pair"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let scores = floats(&case["scores"]);
        let labels: Vec<bool> = indices(&case["labels"])
            .into_iter()
            .map(|l| l == 1)
            .collect();
        let m = pair_metrics(&scores, &labels).unwrap();
        for (what, got) in [("accuracy", m.accuracy), ("f1", m.f1), ("ap", m.ap)] {
            let want = case[what].as_f64().unwrap();
            assert!((got - want).abs() <= 1e-9, "{name} {what}: {got} vs {want}");
        }
    }
}
