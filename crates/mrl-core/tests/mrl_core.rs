//! Value, invariant, gradient and bad-input tests of `mrl-core` on every compiled-in CPU device.
//!
//! Reference values come from `fixtures/make_fixtures.py` (NumPy float64, independent of the
//! Rust code); the values of learnable lifts and projectors are read from the same JSON and set
//! into the modules, so the script and the test compute the same function.
#![allow(deprecated)]

use burn::module::Param;
use burn::nn::loss::Reduction;
use burn::nn::Linear;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use mrl_core::{
    matryoshka_2d, pool, AdaptiveLayerConfig, Aggregation, CosentLossConfig, DimWeights,
    EmbeddingInputs, EmbeddingLoss, EseConfig, InfoNceLossConfig, LayeredInputs, LossBreakdown,
    MatryoshkaConfig, MipicConfig, MipicLoss, MipicPreset, MipicView, MrlError,
    MultipleNegativesRankingLossConfig, PicConfig, PicProjector, Pooling, SiaCkaSchedule,
    SiaConfig,
};
use serde_json::Value;

// ------------------------------------------------------------------------------------------ helpers

/// Every CPU device this build has (plain, not autodiff).
#[allow(clippy::vec_init_then_push)] // one push per compiled-in backend feature
fn devices() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "ndarray")]
    out.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "flex")]
    out.push(("flex", Device::flex()));
    assert!(!out.is_empty(), "no CPU backend feature enabled");
    out
}

/// The float precisions a value test runs in, with the relative tolerance against float64 NumPy.
const PRECISIONS: [(DType, f64); 2] = [(DType::F32, 2e-4), (DType::F64, 1e-9)];

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/mrl_fixtures.json")).expect("fixture JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as usize)
        .collect()
}

fn tensor<const D: usize>(
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

fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}

fn scalar(t: &Tensor<1>) -> f64 {
    host(t.clone())[0]
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    let err = (got - want).abs() / want.abs().max(1.0);
    assert!(
        err <= tol,
        "{what}: got {got}, want {want} (rel err {err:e} > {tol:e})"
    );
}

fn assert_all_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_close(&format!("{what}[{i}]"), *g, *w, tol);
    }
}

/// Central finite differences of `f` at `x` for the listed coordinates.
fn finite_differences(
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

fn assert_gradient(what: &str, analytic: &[f64], numeric: &[(usize, f64)]) {
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

fn random2(shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn random3(shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

// ------------------------------------------------------------------------------------------ MIPIC fixture case

/// The small MIPIC case of the fixture, materialised on one device / precision.
struct MipicCase {
    fx: Value,
    mask: Tensor<2>,
    view_a: Vec<Tensor<3>>,
    view_b: Vec<Tensor<3>>,
}

impl MipicCase {
    fn new(device: &Device, dtype: DType) -> Self {
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

    fn shape(&self) -> [usize; 3] {
        let s = usizes(&self.fx["shape"]);
        [s[0], s[1], s[2]]
    }

    /// The MIPIC config of fixture variant `name`.
    fn config(&self, name: &str) -> MipicConfig {
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
    }

    /// `config(name).init` with the fixture's lifts and projector weights.
    fn loss(&self, name: &str, device: &Device, dtype: DType) -> MipicLoss {
        let mut loss = self.config(name).init(device);
        self.set_weights(&mut loss, device, dtype);
        loss
    }

    fn set_weights(&self, loss: &mut MipicLoss, device: &Device, dtype: DType) {
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

    fn views(&self) -> (MipicView, MipicView) {
        (
            MipicView::pooled(self.view_a.clone(), self.mask.clone(), Pooling::Mean).unwrap(),
            MipicView::pooled(self.view_b.clone(), self.mask.clone(), Pooling::Mean).unwrap(),
        )
    }
}

// ------------------------------------------------------------------------------------------ base losses

#[test]
fn info_nce_matches_numpy_fixture() {
    let fx = &fixtures()["info_nce"];
    let s = usizes(&fx["shape"]);
    let want = floats(&fx["per_example"]);
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            let a = tensor(floats(&fx["anchors"]), [s[0], s[1]], &device, dtype);
            let p = tensor(floats(&fx["positives"]), [s[0], s[1]], &device, dtype);
            let loss = InfoNceLossConfig::new()
                .with_temperature(fx["temperature"].as_f64().unwrap())
                .init();
            let what = format!("{name} {dtype:?} InfoNCE");
            assert_all_close(
                &what,
                &host(loss.forward_no_reduction(a.clone(), p.clone())),
                &want,
                tol,
            );
            let mean = want.iter().sum::<f64>() / want.len() as f64;
            assert_close(
                &what,
                scalar(&loss.forward(a.clone(), p.clone(), Reduction::Mean)),
                mean,
                tol,
            );
            assert_close(
                &what,
                scalar(&loss.forward(a, p, Reduction::Sum)),
                mean * want.len() as f64,
                tol,
            );
        }
    }
}

#[test]
fn mnrl_matches_numpy_fixture_with_and_without_hard_negatives() {
    let fx = &fixtures()["mnrl"];
    let s = usizes(&fx["shape"]);
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            let t = |v: &Value| tensor(floats(v), [s[0], s[1]], &device, dtype);
            let negatives: Vec<Tensor<2>> =
                fx["negatives"].as_array().unwrap().iter().map(t).collect();
            let loss = MultipleNegativesRankingLossConfig::new().init();
            let what = format!("{name} {dtype:?} MNRL");
            let got = loss.forward_no_reduction(t(&fx["anchors"]), t(&fx["positives"]), &negatives);
            assert_all_close(&what, &host(got), &floats(&fx["per_example"]), tol);
            let got = loss.forward_no_reduction(t(&fx["anchors"]), t(&fx["positives"]), &[]);
            assert_all_close(
                &what,
                &host(got),
                &floats(&fx["per_example_no_negatives"]),
                tol,
            );
            // Without hard negatives MNRL is InfoNCE with τ = 1 / scale.
            let info = InfoNceLossConfig::new().with_temperature(1.0 / 20.0).init();
            let via_info = info.forward_no_reduction(t(&fx["anchors"]), t(&fx["positives"]));
            assert_all_close(
                &what,
                &host(via_info),
                &floats(&fx["per_example_no_negatives"]),
                tol,
            );
        }
    }
}

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

// ------------------------------------------------------------------------------------------ Matryoshka

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

// ------------------------------------------------------------------------------------------ MIPIC, SIA, PIC values

#[test]
fn pooling_matches_fixture() {
    for (name, device) in devices() {
        let case = MipicCase::new(&device, DType::F64);
        let [b, _, d] = case.shape();
        let last = case.view_a.last().unwrap().clone();
        let got = pool(last.clone(), case.mask.clone(), Pooling::Mean).unwrap();
        assert_all_close(
            &format!("{name} mean pooling"),
            &host(got),
            &floats(&case.fx["pooled_a"]),
            1e-12,
        );
        let cls = pool(last.clone(), case.mask.clone(), Pooling::Cls).unwrap();
        assert_all_close(
            "cls",
            &host(cls),
            &host(last.slice([0..b, 0..1, 0..d]).reshape([b, d])),
            0.0,
        );
    }
}

#[test]
fn mipic_matches_numpy_fixture_in_every_variant() {
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            let case = MipicCase::new(&device, dtype);
            let (view_a, view_b) = case.views();
            for variant in ["paper_sum", "paper_mean", "notebook"] {
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
fn pic_curriculum_adds_links_shallow_first() {
    for (name, device) in devices() {
        let chain = vec![(3, 1), (6, 2), (9, 3), (12, 4)]; // 3 links
        let hs: Vec<Tensor<3>> = (0..5).map(|_| random3([4, 5, 12], &device)).collect();
        let full = PicConfig::new().with_chain(chain.clone()).init(&device);
        let mut warm = PicConfig::new()
            .with_chain(chain.clone())
            .with_warmup_steps(10)
            .init(&device);
        warm.projectors = full.projectors.clone();
        // link i of 3 starts at floor(i * 10 / 3): 0, 3, 6
        assert_eq!(
            (0..3).map(|i| warm.link_start(i)).collect::<Vec<_>>(),
            [0, 3, 6]
        );
        let reference = full.forward(&hs, 0);
        let link = |i: usize| scalar(&reference.links[i].loss);
        for (step, active) in [(0, 1), (2, 1), (3, 2), (5, 2), (6, 3), (1000, 3)] {
            let out = warm.forward(&hs, step);
            let flags: Vec<bool> = out.links.iter().map(|t| t.active).collect();
            let want: Vec<bool> = (0..3).map(|i| i < active).collect();
            assert_eq!(flags, want, "{name}: step {step}");
            let sum: f64 = (0..active).map(link).sum();
            assert_close(
                &format!("{name} step {step}"),
                scalar(&out.total),
                sum,
                1e-6,
            );
            for t in out.links.iter().filter(|t| !t.active) {
                assert_eq!(scalar(&t.loss), 0.0, "{name}: an inactive link reports 0");
            }
        }
        // Without a curriculum the step does not matter.
        assert_eq!(
            scalar(&full.forward(&hs, 7).total),
            scalar(&reference.total)
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
        assert!(
            matches!(
                err,
                MrlError::InvalidConfig {
                    field: "mrl_dims_per_step",
                    ..
                }
            ),
            "{err}"
        );
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

// ------------------------------------------------------------------------------------------ gradients

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
        for variant in ["paper_sum", "notebook"] {
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

// ------------------------------------------------------------------------------------------ ESE and 2D

fn layered(device: &Device, layers: usize) -> LayeredInputs {
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

// ------------------------------------------------------------------------------------------ bad input

#[test]
fn bad_inputs_give_clear_errors() {
    for (_, device) in devices() {
        let base = InfoNceLossConfig::new().init();
        // dims not increasing
        let err = MatryoshkaConfig::new()
            .with_dims(vec![8, 4, 16])
            .try_init(base.clone())
            .unwrap_err();
        assert!(matches!(err, MrlError::InvalidDims { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("strictly increasing (8 is followed by 4)"),
            "{err}"
        );
        // dims above the embedding width
        let mrl = MatryoshkaConfig::new()
            .with_dims(vec![4, 32])
            .init(base.clone());
        let err = mrl
            .try_forward(
                &EmbeddingInputs::pair(random2([4, 16], &device), random2([4, 16], &device)),
                0,
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the largest dim 32 exceeds the embedding / hidden width 16"),
            "{err}"
        );
        // a negative or non-finite adaptive-layer weight names the field
        for (config, field) in [
            (
                AdaptiveLayerConfig::new().with_kl_div_weight(-1.0),
                "kl_div_weight",
            ),
            (
                AdaptiveLayerConfig::new().with_kl_temperature(f64::NAN),
                "kl_temperature",
            ),
        ] {
            let err = config.try_init(base.clone()).expect_err("rejected");
            assert!(
                matches!(err, MrlError::InvalidConfig { field: f, .. } if f == field),
                "{err}"
            );
        }
        // batch of 1
        let err = base
            .try_forward_no_reduction(random2([1, 8], &device), random2([1, 8], &device))
            .unwrap_err();
        assert_eq!(
            err,
            MrlError::BatchTooSmall {
                arg: "anchors",
                batch: 1
            }
        );
        let err = MultipleNegativesRankingLossConfig::new()
            .init()
            .try_forward_no_reduction(random2([1, 8], &device), random2([1, 8], &device), &[])
            .unwrap_err();
        assert!(err.to_string().contains("batch size 1"), "{err}");
        // mismatched pair shapes
        let err = base
            .try_forward_no_reduction(random2([4, 8], &device), random2([4, 6], &device))
            .unwrap_err();
        assert!(
            err.to_string().contains("`positives`") && err.to_string().contains("[4, 6]"),
            "{err}"
        );
        // MIPIC: SIA dims must be below D, chain layers in range, views must match.
        let err = MipicConfig::new()
            .with_hidden_size(512)
            .try_init(&device)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("exceeds the embedding / hidden width 512"),
            "{err}"
        );
        let case = MipicCase::new(&device, DType::F32);
        let (a, b) = case.views();
        let bad_chain = case
            .config("paper_sum")
            .with_chain(vec![(3, 1), (6, 2), (12, 7)]);
        let err = bad_chain
            .init(&device)
            .try_forward(&a, &b, case.mask.clone(), 0)
            .unwrap_err();
        assert!(matches!(err, MrlError::InvalidChain { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("layer 7 does not exist, 4 hidden states"),
            "{err}"
        );
        let bad_layers = case.config("paper_sum").with_sia_layers(vec![1, 9]);
        let err = bad_layers
            .init(&device)
            .try_forward(&a, &b, case.mask.clone(), 0)
            .unwrap_err();
        assert!(err.to_string().contains("layer 9 does not exist"), "{err}");
        let loss = case.config("paper_sum").init(&device);
        let short = MipicView {
            hidden_states: b.hidden_states[..3].to_vec(),
            pooled: b.pooled.clone(),
        };
        let err = loss
            .try_forward(&a, &short, case.mask.clone(), 0)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the two views must have the same hidden states"),
            "{err}"
        );
        let one = |v: &MipicView| MipicView {
            hidden_states: v
                .hidden_states
                .iter()
                .map(|h| h.clone().slice([0..1, 0..7, 0..12]))
                .collect(),
            pooled: v.pooled.clone().slice([0..1, 0..12]),
        };
        let err = loss
            .try_forward(&one(&a), &one(&b), case.mask.clone().slice([0..1, 0..7]), 0)
            .unwrap_err();
        assert!(
            matches!(err, MrlError::BatchTooSmall { batch: 1, .. }),
            "{err}"
        );
        let err = loss
            .try_forward(&a, &b, case.mask.clone().slice([0..4, 0..6]), 0)
            .unwrap_err();
        assert!(
            err.to_string().contains("`mask`") && err.to_string().contains("[4, 6]"),
            "{err}"
        );
        // SIA dims must be truncated dims; chain must be increasing; schedule length must match.
        let err = SiaConfig::new(16)
            .with_layers(vec![1])
            .with_dims(vec![8, 16])
            .with_cka_schedule(SiaCkaSchedule::paper(2))
            .try_init(&device)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("every dim must be < hidden_size = 16"),
            "{err}"
        );
        let err = SiaConfig::new(16)
            .with_layers(vec![1])
            .with_dims(vec![4, 8])
            .try_init(&device)
            .unwrap_err();
        assert!(
            err.to_string().contains("6 gammas for 2 truncated dims"),
            "{err}"
        );
        let err = PicConfig::new()
            .with_chain(vec![(16, 1), (8, 2)])
            .try_init(&device)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("dims must be strictly increasing along the chain"),
            "{err}"
        );
        // A mask that is not 0/1 is reported by top-k CKA.
        let bad_mask = case.mask.clone().mul_scalar(0.5);
        let err = loss.try_forward(&a, &b, bad_mask, 0).unwrap_err();
        assert!(matches!(err, MrlError::Cka(_)), "{err}");
    }
}

#[test]
#[should_panic(expected = "InfoNceLoss: `anchors` has batch size 1")]
fn info_nce_forward_panics_on_a_batch_of_one() {
    let (_, device) = devices().remove(0);
    let _ = InfoNceLossConfig::new().init().forward(
        random2([1, 4], &device),
        random2([1, 4], &device),
        Reduction::Mean,
    );
}

#[test]
#[should_panic(expected = "MipicConfig: invalid `dims` [16, 8, 768]")]
fn mipic_init_panics_on_unordered_dims() {
    let (_, device) = devices().remove(0);
    let _ = MipicConfig::new().with_dims(vec![16, 8, 768]).init(&device);
}

// ------------------------------------------------------------------------------------------ presets

#[test]
fn presets_are_valid_and_match_their_toml_files() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/presets");
    for preset in MipicPreset::ALL {
        let config = preset.config();
        config
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", preset.name()));
        assert_eq!(MipicPreset::from_name(preset.name()), Some(preset));
        let path = format!("{dir}/mipic-{}.toml", preset.name());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let parsed: MipicConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            format!("{parsed:?}"),
            format!("{config:?}"),
            "{path} differs from MipicPreset::{preset:?}"
        );
        assert_eq!(
            config.sia_dims().len(),
            6,
            "{}: six truncated dims, six gammas",
            preset.name()
        );
        assert_eq!(config.chain.last().unwrap().0, config.hidden_size);
    }
    let minilm = MipicPreset::MiniLmL6.config();
    assert_eq!(minilm.dims, [8, 16, 32, 64, 128, 256, 384]);
    assert_eq!(minilm.sia_layers, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        minilm.chain,
        [(8, 1), (16, 2), (32, 3), (64, 4), (128, 5), (384, 6)]
    );
    assert_eq!(MipicPreset::BgeM3.config().alpha, 0.5);
}

#[test]
fn notebook_switch_sets_the_notebook_weights() {
    let c = MipicPreset::BertBase.config().notebook();
    assert_eq!(
        (c.alpha, c.lambda_att, c.lambda_cka, c.lambda_pic),
        (0.6, 0.0, 0.4, 0.2)
    );
    assert_eq!(c.aggregation, Aggregation::Mean);
    assert_eq!(
        c.cka_schedule,
        SiaCkaSchedule::Notebook {
            budget: 64,
            k_min: 8
        }
    );
}
