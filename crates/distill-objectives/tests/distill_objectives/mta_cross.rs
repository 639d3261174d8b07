//! MTA's cross-tokenizer variant (`MtaLoss::forward_cross`): values and gradients against
//! `scripts/make_mta_reference.py` (`tests/fixtures/mta_cross.json`), its agreement with the
//! one-tokenizer DSA, student = teacher → 0, and bad input.

use burn::module::Param;
use burn::nn::Linear;
use distill_objectives::{
    MtaCrossInput, MtaInput, MtaLayerPair, MtaLoss, MtaLossConfig, ProjectorInit,
};

use crate::common::*;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/mta_cross.json")).expect("mta_cross JSON")
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().expect("unsigned") as usize
}

struct CrossCase {
    fx: Value,
    batch: usize,
    seq_t: usize,
    seq_s: usize,
    dt: usize,
    ds: usize,
    device: Device,
    dtype: DType,
}

impl CrossCase {
    fn new(device: &Device, dtype: DType) -> Self {
        let fx = fixture()["cases"][0].clone();
        CrossCase {
            batch: usize_of(&fx["batch"]),
            seq_t: usize_of(&fx["seq_t"]),
            seq_s: usize_of(&fx["seq_s"]),
            dt: usize_of(&fx["teacher_width"]),
            ds: usize_of(&fx["student_width"]),
            fx,
            device: device.clone(),
            dtype,
        }
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
                    p["granularity"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    fn loss(&self) -> MtaLoss {
        let mut loss = MtaLossConfig::new(self.pairs(), self.ds, self.dt)
            .with_dsa_weight(self.fx["dsa_weight"].as_f64().unwrap())
            .with_hra_weight(self.fx["hra_weight"].as_f64().unwrap())
            .init(&self.device);
        for (k, p) in self.fx["projectors"].as_array().unwrap().iter().enumerate() {
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

    fn states(&self, key: &str, seq: usize, width: usize) -> Vec<Tensor<3>> {
        self.fx[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                tensor(
                    floats(s),
                    [self.batch, seq, width],
                    &self.device,
                    self.dtype,
                )
            })
            .collect()
    }

    fn mask(&self, key: &str, seq: usize) -> Tensor<2> {
        let values = self.fx[key]
            .as_array()
            .unwrap()
            .iter()
            .map(usize_of)
            .flat_map(|n| (0..seq).map(move |j| if j < n { 1.0 } else { 0.0 }))
            .collect();
        tensor(values, [self.batch, seq], &self.device, self.dtype)
    }

    fn members(&self, key: &str, seq: usize) -> Tensor<3> {
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
        let rows = units.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut values = vec![0.0; self.batch * rows * seq];
        for (b, ex) in units.iter().enumerate() {
            for (u, members) in ex.iter().enumerate() {
                for &j in members {
                    values[(b * rows + u) * seq + j] = 1.0;
                }
            }
        }
        tensor(values, [self.batch, rows, seq], &self.device, self.dtype)
    }

    fn input(&self, student: Vec<Tensor<3>>) -> MtaCrossInput {
        MtaCrossInput {
            teacher_hidden: self.states("teacher_hidden", self.seq_t, self.dt),
            student_hidden: student,
            teacher_mask: self.mask("lengths_t", self.seq_t),
            student_mask: self.mask("lengths_s", self.seq_s),
            teacher_words: self.members("words_t", self.seq_t),
            teacher_phrases: self.members("phrases_t", self.seq_t),
            student_words: self.members("words_s", self.seq_s),
            student_phrases: self.members("phrases_s", self.seq_s),
        }
    }

    fn student(&self) -> Vec<Tensor<3>> {
        self.states("student_hidden", self.seq_s, self.ds)
    }
}

#[test]
fn cross_values_match_the_pytorch_reference() {
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            let case = CrossCase::new(&device, dtype);
            let want = &case.fx["expected"];
            let loss = case.loss();
            let out = loss.forward_cross(case.input(case.student()), Reduction::Mean);
            let what = format!("{name} {dtype:?}");
            assert_close(
                &format!("{what} mta"),
                scalar(&out.loss),
                want["mta"].as_f64().unwrap(),
                tol,
            );
            for (k, (p, exp)) in out
                .pairs
                .iter()
                .zip(want["pairs"].as_array().unwrap())
                .enumerate()
            {
                for (term, got) in [("dsa", &p.dsa), ("hra", &p.hra), ("loss", &p.loss)] {
                    assert_close(
                        &format!("{what} pair {k} {term}"),
                        scalar(got),
                        exp[term].as_f64().unwrap(),
                        tol,
                    );
                }
                assert_eq!(scalar(&p.units), exp["units"].as_f64().unwrap());
            }
            let per = loss.forward_cross_no_reduction(case.input(case.student()));
            for (k, (p, exp)) in per
                .pairs
                .iter()
                .zip(want["per_example_pairs"].as_array().unwrap())
                .enumerate()
            {
                for (term, got) in [("dsa", &p.dsa), ("hra", &p.hra), ("loss", &p.loss)] {
                    assert_all_close(
                        &format!("{what} pair {k} per-example {term}"),
                        &host(got.clone()),
                        &floats(&exp[term]),
                        tol,
                    );
                }
            }
        }
    }
}

#[test]
fn cross_gradients_match_pytorch_autograd() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let case = CrossCase::new(&ad, DType::F64);
        let student: Vec<Tensor<3>> = case
            .student()
            .into_iter()
            .map(|s| s.require_grad())
            .collect();
        let out = case
            .loss()
            .forward_cross(case.input(student.clone()), Reduction::Mean);
        let grads = out.loss.backward();
        for (l, (s, exp)) in student
            .iter()
            .zip(case.fx["expected"]["grad_student"].as_array().unwrap())
            .enumerate()
        {
            let got = s
                .grad(&grads)
                .map(host)
                .unwrap_or_else(|| vec![0.0; case.batch * case.seq_s * case.ds]);
            assert_all_close(
                &format!("{name} d/d student[{l}]"),
                &got,
                &floats(exp),
                1e-9,
            );
        }
    }
}

/// With one tokenization on both sides, the cross variant's DSA is the one-tokenizer DSA (HRA
/// differs by definition: units instead of tokens); with the student = the teacher and identity
/// projectors, both terms are 0.
#[test]
fn one_tokenization_agrees_with_the_same_tokenizer_loss() {
    for (name, device) in devices() {
        let case = CrossCase::new(&device, DType::F64);
        let teacher = case.states("teacher_hidden", case.seq_t, case.dt);
        let student: Vec<Tensor<3>> = (0..3)
            .map(|l| teacher[l + 1].clone().mul_scalar(0.5 + l as f64).sin())
            .collect();
        let mask = case.mask("lengths_t", case.seq_t);
        let words = case.members("words_t", case.seq_t);
        let phrases = case.members("phrases_t", case.seq_t);
        let loss = f64_loss(
            MtaLossConfig::new(case.pairs(), case.dt, case.dt)
                .with_projector_init(ProjectorInit::Identity),
            &device,
        );
        let same = loss.forward(
            MtaInput {
                teacher_hidden: teacher.clone(),
                student_hidden: student.clone(),
                attention_mask: mask.clone(),
                words: words.clone(),
                phrases: phrases.clone(),
                teacher_confidence: None,
            },
            Reduction::Mean,
        );
        let cross_input = |student: Vec<Tensor<3>>| MtaCrossInput {
            teacher_hidden: teacher.clone(),
            student_hidden: student,
            teacher_mask: mask.clone(),
            student_mask: mask.clone(),
            teacher_words: words.clone(),
            teacher_phrases: phrases.clone(),
            student_words: words.clone(),
            student_phrases: phrases.clone(),
        };
        let cross = loss.forward_cross(cross_input(student), Reduction::Mean);
        for (a, b) in same.pairs.iter().zip(&cross.pairs) {
            assert_close(
                &format!("{name} dsa"),
                scalar(&b.dsa),
                scalar(&a.dsa),
                1e-10,
            );
            assert!(scalar(&a.dsa) > 1e-3, "{name}: a DSA that can differ");
        }
        // The student = the teacher, layer for layer.
        let pairs: Vec<MtaLayerPair> = case
            .pairs()
            .into_iter()
            .map(|p| MtaLayerPair::new(p.teacher_layer, p.teacher_layer, p.granularity))
            .collect();
        let identical = f64_loss(
            MtaLossConfig::new(pairs, case.dt, case.dt)
                .with_projector_init(ProjectorInit::Identity),
            &device,
        );
        let zero = identical.forward_cross(cross_input(teacher.clone()), Reduction::Mean);
        assert!(
            scalar(&zero.loss).abs() < 1e-12,
            "{name}: {}",
            scalar(&zero.loss)
        );
    }
}

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

#[test]
fn cross_bad_input_is_named() {
    let device = devices().remove(0).1;
    let case = CrossCase::new(&device, DType::F64);
    let loss = case.loss();
    let err = |input: MtaCrossInput| {
        loss.try_forward_cross(input, Reduction::Mean)
            .unwrap_err()
            .to_string()
    };
    let good = case.input(case.student());

    let mut one_sided = good.clone();
    let [b, u, l] = one_sided.student_words.dims();
    one_sided.student_words = Tensor::cat(
        vec![
            one_sided.student_words.clone().slice([0..b, 0..u - 1]),
            Tensor::zeros([b, 1, l], (&device, DType::F64)),
        ],
        1,
    );
    let e = err(one_sided);
    assert!(e.contains("`teacher_words` / `student_words`"), "{e}");

    let mut rows = good.clone();
    rows.student_phrases = rows.student_phrases.clone().slice([0..b, 0..1]);
    assert!(err(rows).contains("unit rows of `teacher_phrases`"));

    let mut on_padding = good.clone();
    on_padding.student_mask = case
        .mask("lengths_t", case.seq_s)
        .slice([0..b, 0..case.seq_s]);
    on_padding.student_mask = on_padding.student_mask.clone().slice_assign(
        [2..3, 0..case.seq_s],
        Tensor::zeros([1, case.seq_s], (&device, DType::F64)),
    );
    let e = err(on_padding);
    assert!(e.contains("student_mask"), "{e}");

    let mut wide = good.clone();
    wide.student_hidden[1] = Tensor::zeros([b, case.seq_t, case.ds], (&device, DType::F64));
    assert!(err(wide).contains("shape mismatch in `student_hidden`"));

    let entropy = MtaLossConfig::new(case.pairs(), case.ds, case.dt)
        .with_entropy_weighting(true)
        .init(&device);
    let e = entropy
        .try_forward_cross(good, Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`entropy_weighting`"), "{e}");
}
