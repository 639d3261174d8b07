//! MTA (`MtaLoss`, `token_weights`, `teacher_confidence`): values and gradients against
//! `scripts/make_mta_reference.py` (PyTorch float64, explicit loops), finite differences,
//! properties (student = teacher → 0, DSA invariant to scaling, padding changes nothing) and
//! bad input.

use burn::module::Param;
use burn::nn::Linear;
use distill_objectives::{
    teacher_confidence, token_weights, Granularity, MtaInput, MtaLayerPair, MtaLoss, MtaLossConfig,
    ProjectorInit,
};

use crate::common::*;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/mta.json")).expect("mta fixture JSON")
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().expect("unsigned") as usize
}

/// A fixture case on a device in a precision.
struct MtaCase {
    fx: Value,
    batch: usize,
    seq: usize,
    dt: usize,
    ds: usize,
    device: Device,
    dtype: DType,
}

impl MtaCase {
    fn all(device: &Device, dtype: DType) -> Vec<MtaCase> {
        fixture()["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|fx| MtaCase {
                batch: usize_of(&fx["batch"]),
                seq: usize_of(&fx["seq"]),
                dt: usize_of(&fx["teacher_width"]),
                ds: usize_of(&fx["student_width"]),
                fx: fx.clone(),
                device: device.clone(),
                dtype,
            })
            .collect()
    }

    fn pairs(&self) -> Vec<MtaLayerPair> {
        self.fx["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                MtaLayerPair::new(
                    usize_of(&p["teacher_layer"]),
                    usize_of(&p["student_layer"]),
                    match p["granularity"].as_str().unwrap() {
                        "words" => Granularity::Words,
                        _ => Granularity::Phrases,
                    },
                )
            })
            .collect()
    }

    fn loss(&self) -> MtaLoss {
        let mut loss = MtaLossConfig::new(self.pairs(), self.ds, self.dt)
            .with_dsa_weight(self.fx["dsa_weight"].as_f64().unwrap())
            .with_hra_weight(self.fx["hra_weight"].as_f64().unwrap())
            .with_entropy_weighting(self.fx["entropy_weighting"].as_bool().unwrap())
            .init(&self.device);
        for (k, p) in self.fx["projectors"].as_array().unwrap().iter().enumerate() {
            // PyTorch's W is [d_T, d_S] (W h); Burn's row-layout weight is [d_S, d_T] (h W).
            let w = tensor(
                floats(&p["weight_out_in"]),
                [self.dt, self.ds],
                &self.device,
                self.dtype,
            );
            loss.projectors[k] = Linear {
                weight: Param::from_tensor(w.transpose()),
                bias: Some(Param::from_tensor(tensor(
                    floats(&p["bias"]),
                    [self.dt],
                    &self.device,
                    self.dtype,
                ))),
            };
        }
        loss
    }

    fn states(&self, key: &str, width: usize) -> Vec<Tensor<3>> {
        self.fx[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                tensor(
                    floats(s),
                    [self.batch, self.seq, width],
                    &self.device,
                    self.dtype,
                )
            })
            .collect()
    }

    fn mask(&self) -> Tensor<2> {
        let lengths: Vec<usize> = self.fx["lengths"]
            .as_array()
            .unwrap()
            .iter()
            .map(usize_of)
            .collect();
        let values = lengths
            .iter()
            .flat_map(|&n| (0..self.seq).map(move |j| if j < n { 1.0 } else { 0.0 }))
            .collect();
        tensor(values, [self.batch, self.seq], &self.device, self.dtype)
    }

    fn members(&self, key: &str) -> Tensor<3> {
        let units: Vec<Vec<Vec<usize>>> = self.fx[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|ex| {
                ex.as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u.as_array().unwrap().iter().map(usize_of).collect())
                    .collect()
            })
            .collect();
        dense_members(&units, self.seq, &self.device, self.dtype)
    }

    fn input(&self, student: Vec<Tensor<3>>) -> MtaInput {
        let confidence = self.fx["entropy_weighting"].as_bool().unwrap().then(|| {
            let v = usize_of(&self.fx["vocab"]);
            teacher_confidence(tensor(
                floats(&self.fx["teacher_logits"]),
                [self.batch, self.seq, v],
                &self.device,
                self.dtype,
            ))
        });
        MtaInput {
            teacher_hidden: self.states("teacher_hidden", self.dt),
            student_hidden: student,
            attention_mask: self.mask(),
            words: self.members("words"),
            phrases: self.members("phrases"),
            teacher_confidence: confidence,
        }
    }
}

/// `[batch, max_units, seq]` memberships from member-token lists (at least one unit row).
fn dense_members(
    units: &[Vec<Vec<usize>>],
    seq: usize,
    device: &Device,
    dtype: DType,
) -> Tensor<3> {
    let max_units = units.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut values = vec![0.0; units.len() * max_units * seq];
    for (b, ex) in units.iter().enumerate() {
        for (u, members) in ex.iter().enumerate() {
            for &j in members {
                values[(b * max_units + u) * seq + j] = 1.0;
            }
        }
    }
    tensor(values, [units.len(), max_units, seq], device, dtype)
}

#[test]
fn values_match_the_pytorch_reference() {
    for (name, device) in devices() {
        for (dtype, tol) in [(DType::F32, 1e-4), (DType::F64, 1e-9)] {
            for case in MtaCase::all(&device, dtype) {
                let what = format!("{name} {dtype:?} seed {}", case.fx["seed"]);
                let want = &case.fx["expected"];
                let loss = case.loss();
                let student = case.states("student_hidden", case.ds);
                let out = loss.forward(case.input(student.clone()), Reduction::Mean);
                assert_close(
                    &format!("{what} mta"),
                    scalar(&out.loss),
                    want["mta"].as_f64().unwrap(),
                    tol,
                );
                for (k, (got, exp)) in out
                    .pairs
                    .iter()
                    .zip(want["pairs"].as_array().unwrap())
                    .enumerate()
                {
                    for (field, t) in [
                        ("dsa", &got.dsa),
                        ("hra", &got.hra),
                        ("loss", &got.loss),
                        ("units", &got.units),
                    ] {
                        assert_close(
                            &format!("{what} pair {k} {field}"),
                            scalar(t),
                            exp[field].as_f64().unwrap(),
                            tol,
                        );
                    }
                }
                let sum = loss.forward(case.input(student.clone()), Reduction::Sum);
                for (k, (got, exp)) in sum
                    .pairs
                    .iter()
                    .zip(want["pairs_sum"].as_array().unwrap())
                    .enumerate()
                {
                    assert_close(
                        &format!("{what} sum pair {k} dsa"),
                        scalar(&got.dsa),
                        exp["dsa"].as_f64().unwrap(),
                        tol,
                    );
                    assert_close(
                        &format!("{what} sum pair {k} hra"),
                        scalar(&got.hra),
                        exp["hra"].as_f64().unwrap(),
                        tol,
                    );
                }
                let per = loss.forward_no_reduction(case.input(student.clone()));
                assert_all_close(
                    &format!("{what} per example"),
                    &host(per.loss),
                    &floats(&want["per_example"]),
                    tol,
                );
                for (k, (got, exp)) in per
                    .pairs
                    .iter()
                    .zip(want["per_example_pairs"].as_array().unwrap())
                    .enumerate()
                {
                    assert_all_close(
                        &format!("{what} per example pair {k} dsa"),
                        &host(got.dsa.clone()),
                        &floats(&exp["dsa"]),
                        tol,
                    );
                    assert_all_close(
                        &format!("{what} per example pair {k} hra"),
                        &host(got.hra.clone()),
                        &floats(&exp["hra"]),
                        tol,
                    );
                    assert_all_close(
                        &format!("{what} per example pair {k} units"),
                        &host(got.units.clone()),
                        &floats(&exp["units"]),
                        tol,
                    );
                }
                // Token weights of teacher layer 2 at the real tokens.
                let w = host(token_weights(
                    case.states("teacher_hidden", case.dt)[2].clone(),
                    case.mask(),
                ));
                let lengths: Vec<usize> = case.fx["lengths"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(usize_of)
                    .collect();
                for (b, exp) in want["teacher_weights_layer2"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                {
                    let exp = floats(exp);
                    for j in 0..case.seq {
                        let expected = if j < lengths[b] { exp[j] } else { 0.0 };
                        assert_close(
                            &format!("{what} w[{b},{j}]"),
                            w[b * case.seq + j],
                            expected,
                            tol,
                        );
                    }
                }
                let v = usize_of(&case.fx["vocab"]);
                let conf = host(teacher_confidence(tensor(
                    floats(&case.fx["teacher_logits"]),
                    [case.batch, case.seq, v],
                    &device,
                    dtype,
                )));
                let exp: Vec<f64> = want["teacher_confidence"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(floats)
                    .collect();
                assert_all_close(&format!("{what} confidence"), &conf, &exp, tol);
            }
        }
    }
}

#[test]
fn gradients_match_pytorch_autograd() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        for case in MtaCase::all(&ad, DType::F64) {
            let what = format!("{name} seed {}", case.fx["seed"]);
            let want = &case.fx["expected"];
            let loss = case.loss();
            let student: Vec<Tensor<3>> = case
                .states("student_hidden", case.ds)
                .into_iter()
                .map(|s| s.require_grad())
                .collect();
            let out = loss.forward(case.input(student.clone()), Reduction::Mean);
            let grads = out.loss.backward();
            for (l, (s, exp)) in student
                .iter()
                .zip(want["grad_student"].as_array().unwrap())
                .enumerate()
            {
                let got = s
                    .grad(&grads)
                    .map(host)
                    .unwrap_or_else(|| vec![0.0; case.batch * case.seq * case.ds]);
                assert_all_close(
                    &format!("{what} d/d student[{l}]"),
                    &got,
                    &floats(exp),
                    1e-9,
                );
            }
            for (k, p) in loss.projectors.iter().enumerate() {
                let gw = host(
                    p.weight
                        .val()
                        .grad(&grads)
                        .expect("projector weight gradient")
                        .transpose(),
                );
                assert_all_close(
                    &format!("{what} d/dW[{k}]"),
                    &gw,
                    &floats(&want["grad_projector_weight_out_in"][k]),
                    1e-9,
                );
                let gb = host(
                    p.bias
                        .as_ref()
                        .unwrap()
                        .val()
                        .grad(&grads)
                        .expect("projector bias gradient"),
                );
                assert_all_close(
                    &format!("{what} d/db[{k}]"),
                    &gb,
                    &floats(&want["grad_projector_bias"][k]),
                    1e-9,
                );
            }
        }
    }
}

/// Finite differences see the token weights move with the student states, which the loss
/// detaches by definition; so they check HRA alone (case seed 9: `dsa_weight` 0) w.r.t. the
/// student states, and the whole loss w.r.t. the projectors (the weights do not depend on them).
/// The DSA gradient with detached weights is checked against PyTorch autograd above.
#[test]
fn gradients_match_finite_differences() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let cases = MtaCase::all(&ad, DType::F64);
        let hra_only = &cases[2];
        assert_eq!(hra_only.fx["dsa_weight"].as_f64(), Some(0.0));
        let loss = hra_only.loss();
        let base = hra_only.states("student_hidden", hra_only.ds);
        let shape = [hra_only.batch, hra_only.seq, hra_only.ds];
        for layer in [1, 2] {
            let x: Vec<f64> = host(base[layer].clone());
            let run = |values: Tensor<3>| {
                let mut student = base.clone();
                student[layer] = values;
                loss.forward(hra_only.input(student), Reduction::Mean).loss
            };
            let xt = tensor(x.clone(), shape, &ad, DType::F64).require_grad();
            let grads = run(xt.clone()).backward();
            let analytic = host(xt.grad(&grads).expect("student gradient"));
            let numeric = finite_differences(&x, 0..x.len(), |v| {
                scalar(&run(tensor(v, shape, &ad, DType::F64)))
            });
            assert_gradient(
                &format!("{name} HRA w.r.t. student layer {layer}"),
                &analytic,
                &numeric,
            );
        }
        let case = &cases[0];
        let student = case.states("student_hidden", case.ds);
        for k in 0..2 {
            let loss = case.loss();
            let w0 = host(loss.projectors[k].weight.val());
            let with_weight = |values: Tensor<2>| {
                let mut l = case.loss();
                l.projectors[k].weight = Param::from_tensor(values);
                l.forward(case.input(student.clone()), Reduction::Mean).loss
            };
            let wt = tensor(w0.clone(), [case.ds, case.dt], &ad, DType::F64).require_grad();
            let grads = with_weight(wt.clone()).backward();
            let analytic = host(wt.grad(&grads).expect("projector gradient"));
            let numeric = finite_differences(&w0, 0..w0.len(), |v| {
                scalar(&with_weight(tensor(v, [case.ds, case.dt], &ad, DType::F64)))
            });
            assert_gradient(&format!("{name} projector {k}"), &analytic, &numeric);
        }
    }
}

/// `config`'s loss with its projectors in float64, like the states of these tests.
fn f64_loss(config: MtaLossConfig, device: &Device) -> MtaLoss {
    let mut loss = config.init(device);
    for p in &mut loss.projectors {
        p.weight = Param::from_tensor(p.weight.val().cast(DType::F64));
        p.bias = p
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(b.val().cast(DType::F64)));
    }
    loss
}

/// Random states `[B, L, D]` with a per-token offset, and lengths → mask.
fn random_states(batch: usize, seq: usize, width: usize, seed: u64, device: &Device) -> Tensor<3> {
    let values: Vec<f64> = pseudo_random(batch * seq * width, seed, 2.0)
        .into_iter()
        .enumerate()
        .map(|(i, v)| v + 0.3 * ((i / width) % 5) as f64)
        .collect();
    tensor(values, [batch, seq, width], device, DType::F64)
}

fn mask_of(lengths: &[usize], seq: usize, device: &Device) -> Tensor<2> {
    let values = lengths
        .iter()
        .flat_map(|&n| (0..seq).map(move |j| if j < n { 1.0 } else { 0.0 }))
        .collect();
    tensor(values, [lengths.len(), seq], device, DType::F64)
}

fn schedule() -> Vec<MtaLayerPair> {
    vec![
        MtaLayerPair::new(1, 1, Granularity::Words),
        MtaLayerPair::new(2, 2, Granularity::Phrases),
    ]
}

/// Member-token lists per unit, per example.
type UnitLists = Vec<Vec<Vec<usize>>>;

fn units() -> (UnitLists, UnitLists) {
    (
        vec![
            vec![vec![2], vec![3, 4], vec![5]],
            vec![vec![1], vec![2, 3], vec![3], vec![4]],
        ],
        vec![vec![vec![2, 3, 4], vec![5]], vec![vec![1, 2], vec![3, 4]]],
    )
}

#[test]
fn student_equal_to_teacher_gives_zero() {
    for (name, device) in devices() {
        let (words, phrases) = units();
        let (batch, seq, d) = (2, 7, 5);
        let states: Vec<Tensor<3>> = (0..3)
            .map(|l| random_states(batch, seq, d, 10 + l, &device))
            .collect();
        let loss = f64_loss(
            MtaLossConfig::new(schedule(), d, d).with_projector_init(ProjectorInit::Identity),
            &device,
        );
        let input = MtaInput {
            teacher_hidden: states.clone(),
            student_hidden: states,
            attention_mask: mask_of(&[7, 6], seq, &device),
            words: dense_members(&words, seq, &device, DType::F64),
            phrases: dense_members(&phrases, seq, &device, DType::F64),
            teacher_confidence: None,
        };
        let out = loss.forward(input, Reduction::Mean);
        for p in &out.pairs {
            assert!(
                scalar(&p.dsa).abs() < 1e-12,
                "{name}: DSA {}",
                scalar(&p.dsa)
            );
            assert!(
                scalar(&p.hra).abs() < 1e-12,
                "{name}: HRA {}",
                scalar(&p.hra)
            );
        }
        assert!(scalar(&out.loss).abs() < 1e-12);
    }
}

#[test]
fn dsa_is_invariant_to_scaling_either_model() {
    for (name, device) in devices() {
        let (words, phrases) = units();
        let (batch, seq, d) = (2, 7, 5);
        let teacher: Vec<Tensor<3>> = (0..3)
            .map(|l| random_states(batch, seq, d, 20 + l, &device))
            .collect();
        let student: Vec<Tensor<3>> = (0..3)
            .map(|l| random_states(batch, seq, d, 30 + l, &device))
            .collect();
        let loss = f64_loss(MtaLossConfig::new(schedule(), d, d), &device);
        let run = |t: f64, s: f64| {
            let input = MtaInput {
                teacher_hidden: teacher.iter().map(|x| x.clone().mul_scalar(t)).collect(),
                student_hidden: student.iter().map(|x| x.clone().mul_scalar(s)).collect(),
                attention_mask: mask_of(&[7, 6], seq, &device),
                words: dense_members(&words, seq, &device, DType::F64),
                phrases: dense_members(&phrases, seq, &device, DType::F64),
                teacher_confidence: None,
            };
            loss.forward(input, Reduction::Mean)
                .pairs
                .iter()
                .map(|p| scalar(&p.dsa))
                .collect::<Vec<_>>()
        };
        let base = run(1.0, 1.0);
        assert!(
            base.iter().all(|&v| v > 1e-4),
            "{name}: DSA must be non-trivial: {base:?}"
        );
        for (t, s) in [(3.0, 1.0), (1.0, 0.25), (7.0, 11.0)] {
            // Exact but for the `+ 1e-5` of the token weights' σ (relative effect ~1e-6).
            assert_all_close(&format!("{name} scale ({t}, {s})"), &run(t, s), &base, 1e-5);
        }
    }
}

#[test]
fn padding_the_batch_further_changes_nothing() {
    for (name, device) in devices() {
        let (words, phrases) = units();
        let (batch, d) = (2, 5);
        let loss = f64_loss(MtaLossConfig::new(schedule(), d, d), &device);
        let run = |seq: usize| {
            // The same real tokens; padding filled with large values.
            let states: Vec<(Tensor<3>, Tensor<3>)> = (0..3)
                .map(|l| {
                    let t = random_states(batch, 7, d, 40 + l, &device);
                    let s = random_states(batch, 7, d, 50 + l, &device);
                    let pad = |x: Tensor<3>| {
                        Tensor::cat(
                            vec![
                                x,
                                Tensor::<3>::ones([batch, seq - 7, d], &device)
                                    .cast(DType::F64)
                                    .mul_scalar(50.0),
                            ],
                            1,
                        )
                    };
                    (pad(t), pad(s))
                })
                .collect();
            let input = MtaInput {
                teacher_hidden: states.iter().map(|p| p.0.clone()).collect(),
                student_hidden: states.iter().map(|p| p.1.clone()).collect(),
                attention_mask: mask_of(&[7, 6], seq, &device),
                words: dense_members(&words, seq, &device, DType::F64),
                phrases: dense_members(&phrases, seq, &device, DType::F64),
                teacher_confidence: None,
            };
            let mut v = vec![scalar(&loss.forward(input.clone(), Reduction::Mean).loss)];
            v.extend(host(loss.forward_no_reduction(input).loss));
            v
        };
        let base = run(7);
        for seq in [8, 12] {
            assert_all_close(&format!("{name} seq {seq}"), &run(seq), &base, 1e-10);
        }
    }
}

#[test]
fn bad_input_is_named() {
    let device = devices().remove(0).1;
    let (words, phrases) = units();
    let (batch, seq, d) = (2, 7, 5);
    let states: Vec<Tensor<3>> = (0..3)
        .map(|l| random_states(batch, seq, d, 60 + l, &device))
        .collect();
    let good = MtaInput {
        teacher_hidden: states.clone(),
        student_hidden: states.clone(),
        attention_mask: mask_of(&[7, 6], seq, &device),
        words: dense_members(&words, seq, &device, DType::F64),
        phrases: dense_members(&phrases, seq, &device, DType::F64),
        teacher_confidence: None,
    };
    let loss = f64_loss(MtaLossConfig::new(schedule(), d, d), &device);
    let err = |input: MtaInput| {
        loss.try_forward(input, Reduction::Mean)
            .unwrap_err()
            .to_string()
    };

    let mut short = good.clone();
    short.teacher_hidden.truncate(2);
    assert!(err(short).contains("reads layer 2, but only 2 hidden states"));

    let mut wide = good.clone();
    wide.student_hidden[1] = random_states(batch, seq, d + 1, 1, &device);
    assert!(err(wide).contains("student_hidden"));

    let mut nan = good.clone();
    nan.teacher_hidden[2] = nan.teacher_hidden[2].clone().mul_scalar(f64::NAN);
    assert!(err(nan).contains("`teacher_hidden` [2, 7, 5] holds NaN"));

    let mut one_token = good.clone();
    one_token.attention_mask = mask_of(&[7, 1], seq, &device);
    one_token.words = dense_members(&[vec![vec![1]], vec![vec![0]]], seq, &device, DType::F64);
    one_token.phrases = one_token.words.clone();
    assert!(err(one_token).contains("1 real token(s)"));

    let mut on_padding = good.clone();
    on_padding.words = dense_members(&[vec![vec![1]], vec![vec![6]]], seq, &device, DType::F64);
    assert!(err(on_padding).contains("`words` puts a unit member on a padding token"));

    let mut not_binary = good.clone();
    not_binary.phrases = not_binary.phrases.clone().mul_scalar(2.0);
    assert!(err(not_binary).contains("`phrases` memberships must hold only 0 and 1"));

    let mut bad_units = good.clone();
    bad_units.words = Tensor::zeros([batch, 2, seq + 1], &device);
    assert!(err(bad_units).contains("shape mismatch in `words`"));

    let entropy = f64_loss(
        MtaLossConfig::new(schedule(), d, d).with_entropy_weighting(true),
        &device,
    );
    let e = entropy
        .try_forward(good.clone(), Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(e.contains("teacher_confidence"), "{e}");

    for (config, field) in [
        (MtaLossConfig::new(vec![], d, d), "`pairs`"),
        (MtaLossConfig::new(schedule(), 0, d), "`student_width`"),
        (
            MtaLossConfig::new(schedule(), d, d).with_hra_weight(-1.0),
            "`hra_weight`",
        ),
        (
            MtaLossConfig::new(schedule(), d, d).with_dsa_weight(f64::NAN),
            "`dsa_weight`",
        ),
        (
            MtaLossConfig::new(schedule(), d, d)
                .with_dsa_weight(0.0)
                .with_hra_weight(0.0),
            "both 0",
        ),
        (
            MtaLossConfig::new(schedule(), d, d + 1).with_projector_init(ProjectorInit::Identity),
            "identity projector",
        ),
    ] {
        let e = config.try_init(&device).unwrap_err().to_string();
        assert!(e.contains(field), "{field}: {e}");
    }
}
