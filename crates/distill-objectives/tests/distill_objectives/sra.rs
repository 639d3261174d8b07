//! SRA (`SraLoss`, `com_weights`) and the shared spans it aligns (`shared_spans`): values
//! against `scripts/make_sra_reference.py` (NumPy float64, explicit loops), finite
//! differences, properties (student = teacher → 0, padding changes nothing) and bad input.

use burn::module::Param;
use distill_objectives::{
    com_weights, membership_tensor, shared_spans, span_membership, AlignedSpan, ProjectorInit,
    SpanError, SpanSide, SraInput, SraLayerPair, SraLoss, SraLossConfig,
};

use crate::common::*;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/sra.json")).expect("sra fixture JSON")
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().expect("unsigned") as usize
}

/// Flattens nested JSON arrays of numbers.
fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat).collect(),
        other => vec![other.as_f64().expect("number")],
    }
}

struct SraCase {
    fx: Value,
    batch: usize,
    seq_t: usize,
    seq_s: usize,
    dt: usize,
    ds: usize,
    device: Device,
    dtype: DType,
}

impl SraCase {
    fn all(device: &Device, dtype: DType) -> Vec<SraCase> {
        fixture()["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|fx| SraCase {
                batch: usize_of(&fx["batch"]),
                seq_t: usize_of(&fx["seq_t"]),
                seq_s: usize_of(&fx["seq_s"]),
                dt: usize_of(&fx["teacher_width"]),
                ds: usize_of(&fx["student_width"]),
                fx: fx.clone(),
                device: device.clone(),
                dtype,
            })
            .collect()
    }

    fn pairs(&self) -> Vec<SraLayerPair> {
        self.fx["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| SraLayerPair {
                teacher_layer: usize_of(&p["teacher_layer"]),
                student_layer: usize_of(&p["student_layer"]),
                weight: p["weight"].as_f64().unwrap(),
            })
            .collect()
    }

    fn loss(&self) -> SraLoss {
        let mut loss = SraLossConfig::new(self.pairs(), self.ds, self.dt)
            .with_geo_weight(self.fx["geo_weight"].as_f64().unwrap())
            .with_temperature(self.fx["temperature"].as_f64().unwrap())
            .init(&self.device);
        for (k, p) in self.fx["projectors"].as_array().unwrap().iter().enumerate() {
            // NumPy's W is [d_T, d_S] (W h); Burn's row-layout weight is [d_S, d_T] (h W).
            let w = self
                .t(flat(&p["weight_out_in"]), [self.dt, self.ds])
                .transpose();
            loss.projectors[k].weight = Param::from_tensor(w);
            loss.projectors[k].bias = Some(Param::from_tensor(self.t(flat(&p["bias"]), [self.dt])));
        }
        loss
    }

    fn t<const D: usize>(&self, values: Vec<f64>, shape: [usize; D]) -> Tensor<D> {
        tensor(values, shape, &self.device, self.dtype)
    }

    fn states(&self, key: &str, seq: usize, width: usize) -> Vec<Tensor<3>> {
        self.fx[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| self.t(flat(layer), [self.batch, seq, width]))
            .collect()
    }

    fn spans(&self) -> Vec<Vec<AlignedSpan>> {
        self.fx["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|example| {
                example
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| AlignedSpan {
                        teacher: flat(&s["teacher"]).iter().map(|&j| j as usize).collect(),
                        student: flat(&s["student"]).iter().map(|&j| j as usize).collect(),
                    })
                    .collect()
            })
            .collect()
    }

    fn span_tensor(&self, side: SpanSide, seq: usize) -> Tensor<3> {
        let memberships: Vec<_> = self
            .spans()
            .iter()
            .map(|s| span_membership(s, side))
            .collect();
        membership_tensor(&memberships, seq, &self.device)
            .0
            .cast(self.dtype)
    }

    fn mask(&self, key: &str, seq: usize) -> Tensor<2> {
        let values = flat(&self.fx[key])
            .iter()
            .flat_map(|&n| (0..seq).map(move |j| if j < n as usize { 1.0 } else { 0.0 }))
            .collect();
        self.t(values, [self.batch, seq])
    }

    /// The per-pair centre-of-mass weights, from the fixture's attention through `com_weights`.
    fn weights(&self, side: &str, seq: usize) -> Vec<Tensor<2>> {
        let heads = usize_of(&self.fx["heads"]);
        let mask = self.mask(&format!("lengths_{side}"), seq);
        let key = if side == "t" {
            "teacher_attention"
        } else {
            "student_attention"
        };
        self.fx[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| com_weights(self.t(flat(a), [self.batch, heads, seq, seq]), mask.clone()))
            .collect()
    }

    fn input(&self, student_hidden: Vec<Tensor<3>>, student_head: Tensor<2>) -> SraInput {
        SraInput {
            teacher_hidden: self.states("teacher_hidden", self.seq_t, self.dt),
            student_hidden,
            teacher_weights: self.weights("t", self.seq_t),
            student_weights: self.weights("s", self.seq_s),
            teacher_spans: self.span_tensor(SpanSide::Teacher, self.seq_t),
            student_spans: self.span_tensor(SpanSide::Student, self.seq_s),
            teacher_head: self.head("teacher_head", self.dt),
            student_head,
        }
    }

    fn head(&self, key: &str, width: usize) -> Tensor<2> {
        let rows = self.fx[key].as_array().unwrap().len();
        self.t(flat(&self.fx[key]), [rows, width])
    }

    fn default_input(&self) -> SraInput {
        self.input(
            self.states("student_hidden", self.seq_s, self.ds),
            self.head("student_head", self.ds),
        )
    }
}

#[test]
fn com_weights_match_the_reference() {
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for case in SraCase::all(&device, dtype) {
                for (side, seq, key) in [
                    ("t", case.seq_t, "teacher_weights"),
                    ("s", case.seq_s, "student_weights"),
                ] {
                    for (p, w) in case.weights(side, seq).into_iter().enumerate() {
                        assert_all_close(
                            &format!("{name} {dtype:?} {key}[{p}]"),
                            &host(w),
                            &flat(&case.fx[key][p]),
                            tol,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn values_match_the_reference() {
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for (c, case) in SraCase::all(&device, dtype).into_iter().enumerate() {
                let loss = case.loss();
                let per = loss.forward_no_reduction(case.default_input());
                let examples = case.fx["examples"].as_array().unwrap();
                for (term, got) in [
                    ("com", &per.com),
                    ("geo", &per.geo),
                    ("logit", &per.logit),
                    ("loss", &per.loss),
                    ("spans", &per.spans),
                ] {
                    let want: Vec<f64> =
                        examples.iter().map(|e| e[term].as_f64().unwrap()).collect();
                    assert_all_close(
                        &format!("{name} {dtype:?} case {c} per-example {term}"),
                        &host(got.clone()),
                        &want,
                        tol,
                    );
                }
                for reduction in [Reduction::Mean, Reduction::BatchMean, Reduction::Sum] {
                    let out = loss.forward(case.default_input(), reduction.clone());
                    let factor = if matches!(reduction, Reduction::Sum) {
                        case.batch as f64
                    } else {
                        1.0
                    };
                    for (term, got) in out.terms() {
                        let key = if term == "sra" { "loss" } else { term };
                        assert_close(
                            &format!("{name} {dtype:?} case {c} {reduction:?} {term}"),
                            scalar(&got),
                            case.fx["reduced"][key].as_f64().unwrap() * factor,
                            tol,
                        );
                    }
                    assert_eq!(
                        scalar(&out.spans),
                        case.fx["reduced"]["spans"].as_f64().unwrap()
                    );
                }
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        for (c, case) in SraCase::all(&ad, DType::F64).into_iter().enumerate() {
            let loss = case.loss();
            let base = case.states("student_hidden", case.seq_s, case.ds);
            let head = case.head("student_head", case.ds);
            let shape = [case.batch, case.seq_s, case.ds];
            for pair in case.pairs() {
                let layer = pair.student_layer;
                let x = host(base[layer].clone());
                let run = |values: Tensor<3>| {
                    let mut student = base.clone();
                    student[layer] = values;
                    loss.forward(case.input(student, head.clone()), Reduction::Mean)
                        .loss
                };
                let xt = tensor(x.clone(), shape, &ad, DType::F64).require_grad();
                let grads = run(xt.clone()).backward();
                let analytic = host(xt.grad(&grads).expect("student gradient"));
                let numeric = finite_differences(&x, 0..x.len(), |v| {
                    scalar(&run(tensor(v, shape, &ad, DType::F64)))
                });
                assert_gradient(
                    &format!("{name} case {c} student layer {layer}"),
                    &analytic,
                    &numeric,
                );
            }
            // The student's head rows and the first projector.
            let h0 = host(head.clone());
            let head_shape = head.dims();
            let with_head = |values: Tensor<2>| {
                loss.forward(case.input(base.clone(), values), Reduction::Mean)
                    .loss
            };
            let ht = tensor(h0.clone(), head_shape, &ad, DType::F64).require_grad();
            let grads = with_head(ht.clone()).backward();
            let analytic = host(ht.grad(&grads).expect("head gradient"));
            let numeric = finite_differences(&h0, 0..h0.len(), |v| {
                scalar(&with_head(tensor(v, head_shape, &ad, DType::F64)))
            });
            assert_gradient(
                &format!("{name} case {c} student head"),
                &analytic,
                &numeric,
            );
            let w0 = host(loss.projectors[0].weight.val());
            let with_weight = |values: Tensor<2>| {
                let mut l = case.loss();
                l.projectors[0].weight = Param::from_tensor(values);
                l.forward(case.default_input(), Reduction::Mean).loss
            };
            let wt = tensor(w0.clone(), [case.ds, case.dt], &ad, DType::F64).require_grad();
            let grads = with_weight(wt.clone()).backward();
            let analytic = host(wt.grad(&grads).expect("projector gradient"));
            let numeric = finite_differences(&w0, 0..w0.len(), |v| {
                scalar(&with_weight(tensor(v, [case.ds, case.dt], &ad, DType::F64)))
            });
            assert_gradient(&format!("{name} case {c} projector"), &analytic, &numeric);
        }
    }
}

/// The teacher as its own student: one tokenizer, the same states, weights and heads, identity
/// projectors → every term 0.
#[test]
fn student_equal_to_teacher_gives_zero() {
    for (name, device) in devices() {
        let case = &SraCase::all(&device, DType::F64)[0];
        // The same layers on both sides.
        let pairs = case
            .pairs()
            .into_iter()
            .map(|p| SraLayerPair {
                student_layer: p.teacher_layer,
                ..p
            })
            .collect();
        let loss = SraLossConfig::new(pairs, case.dt, case.dt)
            .with_projector_init(ProjectorInit::Identity)
            .init(&device);
        let loss = f64_projectors(loss);
        let teacher = case.states("teacher_hidden", case.seq_t, case.dt);
        let spans = case.span_tensor(SpanSide::Teacher, case.seq_t);
        let weights = case.weights("t", case.seq_t);
        let head = case.head("teacher_head", case.dt);
        let out = loss.forward(
            SraInput {
                teacher_hidden: teacher.clone(),
                student_hidden: teacher,
                teacher_weights: weights.clone(),
                student_weights: weights,
                teacher_spans: spans.clone(),
                student_spans: spans,
                teacher_head: head.clone(),
                student_head: head,
            },
            Reduction::Mean,
        );
        for (term, value) in out.terms() {
            assert!(
                scalar(&value).abs() < 1e-12,
                "{name}: {term} = {}",
                scalar(&value)
            );
        }
        assert!(scalar(&out.spans) > 0.0);
    }
}

fn f64_projectors(mut loss: SraLoss) -> SraLoss {
    for p in &mut loss.projectors {
        p.weight = Param::from_tensor(p.weight.val().cast(DType::F64));
        p.bias = p
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(b.val().cast(DType::F64)));
    }
    loss
}

/// More padding (longer sequences on either side, more span rows) changes no value.
#[test]
fn padding_the_batch_further_changes_nothing() {
    for (name, device) in devices() {
        let case = &SraCase::all(&device, DType::F64)[0];
        let loss = case.loss();
        let base = host(loss.forward_no_reduction(case.default_input()).loss);
        let input = case.default_input();
        let pad3 = |t: Tensor<3>, extra: usize, dim: usize| {
            let mut dims = t.dims();
            dims[dim] = extra;
            Tensor::cat(vec![t, Tensor::zeros(dims, (&device, DType::F64))], dim)
        };
        let pad2 = |t: Tensor<2>, extra: usize| {
            let [b, _] = t.dims();
            Tensor::cat(vec![t, Tensor::zeros([b, extra], (&device, DType::F64))], 1)
        };
        let padded = SraInput {
            teacher_hidden: input
                .teacher_hidden
                .iter()
                .map(|t| pad3(t.clone(), 3, 1))
                .collect(),
            student_hidden: input
                .student_hidden
                .iter()
                .map(|t| pad3(t.clone(), 2, 1))
                .collect(),
            teacher_weights: input
                .teacher_weights
                .iter()
                .map(|t| pad2(t.clone(), 3))
                .collect(),
            student_weights: input
                .student_weights
                .iter()
                .map(|t| pad2(t.clone(), 2))
                .collect(),
            teacher_spans: pad3(pad3(input.teacher_spans, 3, 2), 2, 1),
            student_spans: pad3(pad3(input.student_spans, 2, 2), 2, 1),
            teacher_head: input.teacher_head,
            student_head: input.student_head,
        };
        let got = host(loss.forward_no_reduction(padded).loss);
        assert_all_close(&format!("{name} padded"), &got, &base, 1e-10);
    }
}

/// Scaling the student's states changes neither the centre-of-mass term (cosines, identity
/// projector without bias) nor the geometric one.
#[test]
fn com_and_geo_are_invariant_to_scaling_the_student() {
    for (name, device) in devices() {
        let case = &SraCase::all(&device, DType::F64)[0];
        let loss = f64_projectors(
            SraLossConfig::new(case.pairs(), case.ds, case.dt)
                .with_projector_init(ProjectorInit::Identity)
                .init(&device),
        );
        let run = |scale: f64| {
            let states = case
                .states("student_hidden", case.seq_s, case.ds)
                .into_iter()
                .map(|t| t.mul_scalar(scale))
                .collect();
            let out = loss.forward(
                case.input(states, case.head("student_head", case.ds)),
                Reduction::Mean,
            );
            (scalar(&out.com), scalar(&out.geo), scalar(&out.logit))
        };
        let (com, geo, logit) = run(1.0);
        let (com3, geo3, logit3) = run(3.0);
        assert_close(&format!("{name} com"), com3, com, 1e-10);
        assert_close(&format!("{name} geo"), geo3, geo, 1e-10);
        assert!(
            (logit3 - logit).abs() > 1e-6,
            "{name}: the logit term sees the scale"
        );
    }
}

#[test]
fn bad_input_is_named() {
    let device = devices().remove(0).1;
    let case = &SraCase::all(&device, DType::F64)[0];
    let loss = case.loss();
    let err = |input: SraInput| {
        loss.try_forward(input, Reduction::Mean)
            .unwrap_err()
            .to_string()
    };
    let good = case.default_input();

    let mut short = good.clone();
    short.teacher_hidden.truncate(3);
    let e = err(short);
    assert!(e.contains("reads layer 3, but only 3 hidden states"), "{e}");

    let mut nan = good.clone();
    nan.student_hidden[2] = nan.student_hidden[2].clone().mul_scalar(f64::NAN);
    assert!(err(nan).contains("`student_hidden` [3, 6, 5] holds NaN"));

    let mut missing = good.clone();
    missing.student_weights.pop();
    assert!(err(missing).contains("one [batch, seq] tensor per layer pair (2), got 1"));

    let mut negative = good.clone();
    negative.teacher_weights[0] = negative.teacher_weights[0].clone().neg();
    assert!(err(negative).contains("`teacher_weights` holds a negative weight"));

    let mut one_sided = good.clone();
    one_sided.student_spans = Tensor::cat(
        vec![
            one_sided.student_spans.clone().slice([0..3, 0..2]),
            Tensor::zeros([3, 1, case.seq_s], (&device, DType::F64)),
        ],
        1,
    );
    assert!(err(one_sided).contains("tokens on one side and none on the other"));

    let mut rows = good.clone();
    rows.student_spans = rows.student_spans.clone().slice([0..3, 0..2]);
    assert!(err(rows).contains("shape mismatch in `student_spans`"));

    let mut not_binary = good.clone();
    not_binary.teacher_spans = not_binary.teacher_spans.clone().mul_scalar(0.5);
    assert!(err(not_binary).contains("only 0 and 1"));

    let mut head = good.clone();
    head.student_head = head.student_head.clone().slice([0..4, 0..5]);
    assert!(err(head).contains("same V∩ on both sides"));

    for (config, field) in [
        (SraLossConfig::new(vec![], 5, 5), "`pairs`"),
        (SraLossConfig::new(case.pairs(), 0, 5), "`student_width`"),
        (
            SraLossConfig::new(case.pairs(), 5, 5).with_geo_weight(-1.0),
            "`geo_weight`",
        ),
        (
            SraLossConfig::new(case.pairs(), 5, 5).with_temperature(0.0),
            "`temperature`",
        ),
        (
            SraLossConfig::new(
                vec![SraLayerPair {
                    teacher_layer: 1,
                    student_layer: 1,
                    weight: 0.0,
                }],
                5,
                5,
            ),
            "`pairs.weight`",
        ),
        (
            SraLossConfig::new(case.pairs(), 4, 5).with_projector_init(ProjectorInit::Identity),
            "identity projector",
        ),
    ] {
        let e = config.try_init(&device).unwrap_err().to_string();
        assert!(e.contains(field), "{field}: {e}");
    }
}

fn spans_of(
    teacher: &[(usize, usize)],
    student: &[(usize, usize)],
) -> Vec<(Vec<usize>, Vec<usize>)> {
    shared_spans(
        teacher,
        &vec![true; teacher.len()],
        student,
        &vec![true; student.len()],
    )
    .unwrap()
    .into_iter()
    .map(|s| (s.teacher, s.student))
    .collect()
}

#[test]
fn spans_are_cut_at_shared_end_offsets() {
    // "unbelievable things": teacher "un|believ|able| things", student "unbel|ievable| thing|s".
    let teacher = [(0, 2), (2, 8), (8, 12), (12, 19)];
    let student = [(0, 5), (5, 12), (12, 18), (18, 19)];
    assert_eq!(
        spans_of(&teacher, &student),
        [(vec![0, 1, 2], vec![0, 1]), (vec![3], vec![2, 3])]
    );
    // The same tokenization: one span per token.
    assert_eq!(
        spans_of(&teacher, &teacher),
        [
            (vec![0], vec![0]),
            (vec![1], vec![1]),
            (vec![2], vec![2]),
            (vec![3], vec![3])
        ]
    );
}

#[test]
fn tokens_sharing_an_end_offset_fall_in_one_span() {
    // "•" split into three byte tokens by the teacher (all (0, 1)), one token for the student;
    // then " a" on both sides.
    let teacher = [(0, 1), (0, 1), (0, 1), (1, 3)];
    let student = [(0, 1), (1, 3)];
    assert_eq!(
        spans_of(&teacher, &student),
        [(vec![0, 1, 2], vec![0]), (vec![3], vec![1])]
    );
    // And the other way round, on the student's side.
    assert_eq!(
        spans_of(&student, &teacher),
        [(vec![0], vec![0, 1, 2]), (vec![1], vec![3])]
    );
}

#[test]
fn ineligible_tokens_and_a_truncated_tail_belong_to_no_span() {
    // Prompt token 0, response tokens 1..=3, EOS 4 (empty offsets at the end) on the teacher;
    // the student's response is cut after " b" by truncation.
    let teacher = [(0, 5), (5, 7), (7, 9), (9, 11), (11, 11)];
    let t_eligible = [false, true, true, true, false];
    let student = [(0, 5), (5, 9), (9, 10)];
    let s_eligible = [false, true, true];
    let spans = shared_spans(&teacher, &t_eligible, &student, &s_eligible).unwrap();
    assert_eq!(
        spans,
        [AlignedSpan {
            teacher: vec![1, 2],
            student: vec![1],
        }]
    );
    assert_eq!(span_membership(&spans, SpanSide::Student).units, [vec![1]]);
    // No response on one side: no span.
    assert!(shared_spans(&teacher, &t_eligible, &student, &[false; 3])
        .unwrap()
        .is_empty());
}

#[test]
fn bad_offsets_are_named() {
    let e = shared_spans(&[(0, 1)], &[true, true], &[(0, 1)], &[true]).unwrap_err();
    assert_eq!(
        e,
        SpanError::LengthMismatch {
            side: "teacher",
            offsets: 1,
            eligible: 2
        }
    );
    let e = shared_spans(&[(0, 1)], &[true], &[(0, 2), (3, 1)], &[true, true]).unwrap_err();
    assert!(
        e.to_string()
            .contains("student token 1 = (3, 1): start > end"),
        "{e}"
    );
    let e = shared_spans(&[(0, 4), (2, 3)], &[true, true], &[(0, 1)], &[true]).unwrap_err();
    assert!(
        e.to_string()
            .contains("teacher token 1 = (2, 3): its end precedes the end 4"),
        "{e}"
    );
}
