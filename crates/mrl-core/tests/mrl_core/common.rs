//! Helpers shared by the test files: the devices and precisions, the NumPy fixture, tensor
//! conversions, tolerance checks, finite differences, the MIPIC fixture case and layered
//! inputs. The imports every test file needs are re-exported here (`use crate::common::*`).

pub use burn::module::Param;
pub use burn::nn::loss::Reduction;
pub use burn::nn::Linear;
pub use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
pub use mrl_core::{
    matryoshka_2d, pool, AdaptiveLayerConfig, Aggregation, AttentionScore, CosentLossConfig,
    DimWeights, EmbeddingInputs, EmbeddingLoss, EseConfig, InfoNceLossConfig, LayeredInputs,
    LossBreakdown, MatryoshkaConfig, MipicConfig, MipicLoss, MipicPreset, MipicView, MrlError,
    MultipleNegativesRankingLossConfig, PicConfig, PicProjector, Pooling, SiaCkaSchedule,
    SiaConfig,
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
pub const PRECISIONS: [(DType, f64); 2] = [(DType::F32, 2e-4), (DType::F64, 1e-9)];

pub fn fixtures() -> Value {
    serde_json::from_str(include_str!("../fixtures/mrl_fixtures.json")).expect("fixture JSON")
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as usize)
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

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
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

pub fn random2(shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

pub fn random3(shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

// ------------------------------------------------------------------------------------------ MIPIC fixture case

/// The small MIPIC case of the fixture, materialised on one device / precision.
pub struct MipicCase {
    pub fx: Value,
    pub mask: Tensor<2>,
    pub view_a: Vec<Tensor<3>>,
    pub view_b: Vec<Tensor<3>>,
}

impl MipicCase {
    pub fn new(device: &Device, dtype: DType) -> Self {
        let fx = fixtures()["mipic"].clone();
        let s = usizes(&fx["shape"]);
        let shape = [s[0], s[1], s[2]];
        let mask = tensor(floats(&fx["mask"]), [s[0], s[1]], device, dtype);
        let view = |key: &str| -> Vec<Tensor<3>> {
            fx[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| tensor(floats(h), shape, device, dtype))
                .collect()
        };
        let (view_a, view_b) = (view("view_a"), view("view_b"));
        Self {
            fx,
            mask,
            view_a,
            view_b,
        }
    }

    pub fn shape(&self) -> [usize; 3] {
        let s = usizes(&self.fx["shape"]);
        [s[0], s[1], s[2]]
    }

    /// The MIPIC config of fixture variant `name`.
    pub fn config(&self, name: &str) -> MipicConfig {
        let fx = &self.fx;
        let v = &fx["variants"][name];
        let chain: Vec<(usize, usize)> = fx["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        let schedule = if v["cka"] == "paper" {
            SiaCkaSchedule::Paper {
                gammas: floats(&fx["gammas"]),
                k_min: fx["k_min"].as_u64().unwrap() as usize,
            }
        } else {
            SiaCkaSchedule::Notebook {
                budget: fx["notebook_budget"].as_u64().unwrap() as usize,
                k_min: fx["notebook_k_min"].as_u64().unwrap() as usize,
            }
        };
        MipicConfig::new()
            .with_hidden_size(self.shape()[2])
            .with_dims(usizes(&fx["dims"]))
            .with_sia_layers(usizes(&fx["sia_layers"]))
            .with_chain(chain)
            .with_temperature(fx["temperature"].as_f64().unwrap())
            .with_cka_schedule(schedule)
            .with_alpha(v["alpha"].as_f64().unwrap())
            .with_lambda_att(v["lambda_att"].as_f64().unwrap())
            .with_lambda_cka(v["lambda_cka"].as_f64().unwrap())
            .with_lambda_pic(v["lambda_pic"].as_f64().unwrap())
            .with_aggregation(if v["aggregation"] == "sum" {
                Aggregation::Sum
            } else {
                Aggregation::Mean
            })
            .with_pooling(Pooling::Mean)
            .with_mrl_weight(v["mrl_weight"].as_f64())
            .with_att_score(if v["att_score"] == "cosine" {
                AttentionScore::Cosine
            } else {
                AttentionScore::Scaled
            })
    }

    /// `config(name).init` with the fixture's lifts and projector weights.
    pub fn loss(&self, name: &str, device: &Device, dtype: DType) -> MipicLoss {
        let mut loss = self.config(name).init(device);
        self.set_weights(&mut loss, device, dtype);
        loss
    }

    pub fn set_weights(&self, loss: &mut MipicLoss, device: &Device, dtype: DType) {
        let fx = &self.fx;
        let d_full = self.shape()[2];
        let sia_dims = usizes(&fx["sia_dims"]);
        if !loss.sia.lifts.is_empty() {
            let mut k = 0;
            for row in fx["lifts"].as_array().unwrap() {
                for (i, w) in row.as_array().unwrap().iter().enumerate() {
                    loss.sia.lifts[k] = Linear {
                        weight: Param::from_tensor(tensor(
                            floats(w),
                            [sia_dims[i], d_full],
                            device,
                            dtype,
                        )),
                        bias: None,
                    };
                    k += 1;
                }
            }
            assert_eq!(k, loss.sia.lifts.len());
        }
        for (p, fxp) in loss
            .pic
            .projectors
            .iter_mut()
            .zip(fx["projectors"].as_array().unwrap())
        {
            let [d_in, h] = p.fc1.weight.val().dims();
            let d_out = p.fc2.weight.val().dims()[1];
            assert_eq!(
                h,
                fxp["hidden"].as_u64().unwrap() as usize,
                "projector hidden width"
            );
            *p = PicProjector {
                fc1: Linear {
                    weight: Param::from_tensor(tensor(
                        floats(&fxp["fc1_weight"]),
                        [d_in, h],
                        device,
                        dtype,
                    )),
                    bias: Some(Param::from_tensor(tensor(
                        floats(&fxp["fc1_bias"]),
                        [h],
                        device,
                        dtype,
                    ))),
                },
                fc2: Linear {
                    weight: Param::from_tensor(tensor(
                        floats(&fxp["fc2_weight"]),
                        [h, d_out],
                        device,
                        dtype,
                    )),
                    bias: Some(Param::from_tensor(tensor(
                        floats(&fxp["fc2_bias"]),
                        [d_out],
                        device,
                        dtype,
                    ))),
                },
            };
        }
    }

    pub fn views(&self) -> (MipicView, MipicView) {
        (
            MipicView::pooled(self.view_a.clone(), self.mask.clone(), Pooling::Mean).unwrap(),
            MipicView::pooled(self.view_b.clone(), self.mask.clone(), Pooling::Mean).unwrap(),
        )
    }
}

/// Three examples of five tokens (two padded) at `layers + 1` hidden states of width 8, two
/// roles; the second role is the first plus noise.
pub fn layered(device: &Device, layers: usize) -> LayeredInputs {
    let mask = Tensor::<2>::from_data(
        TensorData::new(
            vec![
                1.0f32, 1., 1., 1., 1., 1., 1., 1., 0., 0., 1., 1., 1., 0., 0.,
            ],
            [3, 5],
        ),
        device,
    );
    let a: Vec<Tensor<3>> = (0..=layers).map(|_| random3([3, 5, 8], device)).collect();
    let b: Vec<Tensor<3>> = a
        .iter()
        .map(|h| h.clone() + random3([3, 5, 8], device).mul_scalar(0.3))
        .collect();
    LayeredInputs {
        hidden_states: vec![a, b],
        masks: vec![mask.clone(), mask],
        labels: None,
    }
}

/// Asserts that `err` is [`MrlError::InvalidConfig`] about `field`.
pub fn assert_invalid_config(err: &MrlError, field: &str) {
    assert!(
        matches!(err, MrlError::InvalidConfig { field: f, .. } if *f == field),
        "expected an invalid `{field}`, got: {err}"
    );
}
