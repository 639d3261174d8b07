//! Helpers shared by the test files: devices and precisions, the NumPy fixture, tensor
//! conversions, tolerance checks and finite differences. The imports every test file needs are
//! re-exported here (`use crate::common::*`).

pub use burn::nn::loss::Reduction;
pub use burn::tensor::{DType, Device, Int, Tensor, TensorData};
pub use distill_objectives::{
    masked_cross_entropy, teacher_top_k, top1_agreement, try_masked_cross_entropy,
    try_teacher_top_k, try_top1_agreement, DistillError, Divergence, KdLoss, KdLossConfig,
    KdObjectiveConfig, TeacherTarget, TopKTarget,
};
pub use serde_json::Value;

/// Every CPU device this build has (plain, not autodiff).
#[allow(clippy::vec_init_then_push)] // one push per compiled-in backend feature
pub fn devices() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "ndarray")]
    out.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "flex")]
    out.push(("flex", Device::flex()));
    assert!(!out.is_empty(), "no CPU backend feature enabled");
    out
}

/// The float precisions a value test runs in, with the relative tolerance against float64 NumPy.
pub const PRECISIONS: [(DType, f64); 2] = [(DType::F32, 1e-5), (DType::F64, 1e-10)];

/// Every divergence with its default parameter, then one non-default value of each parameter.
pub fn all_divergences() -> Vec<Divergence> {
    vec![
        Divergence::ForwardKl,
        Divergence::ReverseKl,
        Divergence::JensenShannon { beta: 0.5 },
        Divergence::TotalVariation,
        Divergence::SkewedForwardKl { lambda: 0.1 },
        Divergence::SkewedReverseKl { lambda: 0.1 },
        Divergence::AdaptiveKl { head_ratio: 0.5 },
        Divergence::DistillmSkewKl { lambda: 0.1 },
        Divergence::JensenShannon { beta: 0.3 },
        Divergence::SkewedForwardKl { lambda: 0.3 },
        Divergence::SkewedReverseKl { lambda: 0.3 },
        Divergence::AdaptiveKl { head_ratio: 0.3 },
        Divergence::DistillmSkewKl { lambda: 0.3 },
    ]
}

pub fn fixtures() -> Value {
    serde_json::from_str(include_str!("../fixtures/divergences.json")).expect("fixture JSON")
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

pub fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("int"))
        .collect()
}

pub fn tensor<const D: usize>(
    values: Vec<f64>,
    shape: [usize; D],
    device: &Device,
    dtype: DType,
) -> Tensor<D> {
    match dtype {
        DType::F64 => Tensor::from_data(TensorData::new(values, shape), (device, DType::F64)),
        _ => {
            let v: Vec<f32> = values.into_iter().map(|x| x as f32).collect();
            Tensor::from_data(TensorData::new(v, shape), device)
        }
    }
}

pub fn int_tensor<const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_into_vec_as::<f64>().unwrap()
}

pub fn host_int<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.into_data().try_into_vec_as::<i64>().unwrap()
}

pub fn scalar(t: &Tensor<1>) -> f64 {
    host(t.clone())[0]
}

pub fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    let err = (got - want).abs() / want.abs().max(1.0);
    assert!(
        err <= tol,
        "{what}: got {got}, want {want} (rel err {err:e} > {tol:e})"
    );
}

pub fn assert_all_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_close(&format!("{what}[{i}]"), *g, *w, tol);
    }
}

/// Central finite differences of `f` at `x` for the listed coordinates.
pub fn finite_differences(
    x: &[f64],
    coords: impl Iterator<Item = usize>,
    f: impl Fn(Vec<f64>) -> f64,
) -> Vec<(usize, f64)> {
    let step = 1e-6;
    coords
        .map(|i| {
            let mut plus = x.to_vec();
            plus[i] += step;
            let mut minus = x.to_vec();
            minus[i] -= step;
            (i, (f(plus) - f(minus)) / (2.0 * step))
        })
        .collect()
}

pub fn assert_gradient(what: &str, analytic: &[f64], numeric: &[(usize, f64)]) {
    let scale = numeric
        .iter()
        .fold(0.0f64, |a, (_, v)| a.max(v.abs()))
        .max(1e-3);
    assert!(
        numeric.iter().any(|(_, v)| v.abs() > 1e-6),
        "{what}: the checked gradient is identically zero"
    );
    for &(i, n) in numeric {
        let err = (analytic[i] - n).abs();
        assert!(
            err <= 1e-6 * scale.max(1.0),
            "{what}: d/dx[{i}] analytic {} vs numeric {n}",
            analytic[i]
        );
    }
}

/// Deterministic pseudo-random values in roughly `[-scale, scale]` (no RNG state shared between
/// tests, so every test sees the same inputs on every backend).
pub fn pseudo_random(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

pub fn kd(divergence: Divergence, temperature: f64) -> KdLoss {
    KdLossConfig::new(divergence)
        .with_temperature(temperature)
        .init()
}

/// One fixture case materialised on a device in a precision.
pub struct Case {
    pub fx: Value,
    pub shape: [usize; 3],
    pub student: Tensor<3>,
    pub teacher: Tensor<3>,
    pub mask: Tensor<2>,
    pub targets: Tensor<2, Int>,
}

impl Case {
    pub fn all(device: &Device, dtype: DType) -> Vec<Case> {
        fixtures()["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|fx| {
                let s: Vec<usize> = ints(&fx["shape"]).into_iter().map(|x| x as usize).collect();
                let shape = [s[0], s[1], s[2]];
                Case {
                    student: tensor(floats(&fx["student"]), shape, device, dtype),
                    teacher: tensor(floats(&fx["teacher"]), shape, device, dtype),
                    mask: tensor(floats(&fx["mask"]), [s[0], s[1]], device, dtype),
                    targets: int_tensor(ints(&fx["targets"]), [s[0], s[1]], device),
                    shape,
                    fx: fx.clone(),
                }
            })
            .collect()
    }

    pub fn name(&self) -> &str {
        self.fx["name"].as_str().unwrap()
    }

    /// The fixture's top-k teacher at `temperature`.
    pub fn top_k(&self, temperature: f64, device: &Device, dtype: DType) -> TopKTarget {
        let [b, s, _] = self.shape;
        let k = self.fx["k"].as_u64().unwrap() as usize;
        let t = self.fx["teacher_top_k"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["temperature"].as_f64() == Some(temperature))
            .expect("top-k at this temperature");
        TopKTarget {
            ids: int_tensor(ints(&t["ids"]), [b, s, k], device),
            log_probs: tensor(floats(&t["log_probs"]), [b, s, k], device, dtype),
            tail_log_mass: tensor(floats(&t["tail_log_mass"]), [b, s], device, dtype),
        }
    }

    /// The teacher of fixture mode `mode` (`full` or `top_k`) at `temperature`.
    pub fn teacher(
        &self,
        mode: &str,
        temperature: f64,
        device: &Device,
        dtype: DType,
    ) -> TeacherTarget {
        match mode {
            "full" => TeacherTarget::full(self.teacher.clone()),
            "top_k" => TeacherTarget::TopK(self.top_k(temperature, device, dtype)),
            _ => panic!("mode {mode}"),
        }
    }
}
