//! DSKD-CMA (`DskdCma`): values against `scripts/make_dskd_cma_reference.py` (NumPy float64,
//! explicit loops), finite-difference gradients, padding invariance and bad input.

use burn::module::Param;
use distill_objectives::{DskdCma, DskdCmaConfig, DskdCmaInput, DskdCmaSide};

use crate::common::*;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/dskd_cma.json")).expect("dskd_cma JSON")
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat).collect(),
        other => vec![other.as_f64().expect("number")],
    }
}

fn n(v: &Value) -> usize {
    v.as_u64().expect("unsigned") as usize
}

struct Cma {
    fx: Value,
    device: Device,
    dtype: DType,
}

impl Cma {
    fn all(device: &Device, dtype: DType) -> Vec<Cma> {
        fixture()["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|fx| Cma {
                fx: fx.clone(),
                device: device.clone(),
                dtype,
            })
            .collect()
    }

    fn dims(&self) -> (usize, usize, usize, usize, usize, usize, usize) {
        let f = &self.fx;
        (
            n(&f["batch"]),
            n(&f["seq_s"]),
            n(&f["seq_t"]),
            n(&f["student_width"]),
            n(&f["teacher_width"]),
            n(&f["vocab_s"]),
            n(&f["vocab_t"]),
        )
    }

    fn t<const D: usize>(&self, key: &str, shape: [usize; D]) -> Tensor<D> {
        tensor(flat(&self.fx[key]), shape, &self.device, self.dtype)
    }

    fn ids(&self, key: &str, shape: [usize; 2]) -> Tensor<2, Int> {
        let v: Vec<i64> = flat(&self.fx[key]).into_iter().map(|x| x as i64).collect();
        int_tensor(v, shape, &self.device)
    }

    fn module(&self) -> DskdCma {
        let (_, _, _, ds, dt, _, _) = self.dims();
        let mut m = DskdCmaConfig::new(ds, dt)
            .with_temperature(self.fx["temperature"].as_f64().unwrap())
            .init(&self.device);
        let set = |l: &mut burn::nn::Linear, key: &str, out: usize, inp: usize| {
            let w = tensor(
                flat(&self.fx[key]["weight_out_in"]),
                [out, inp],
                &self.device,
                self.dtype,
            );
            l.weight = Param::from_tensor(w.transpose());
            l.bias = Some(Param::from_tensor(tensor(
                flat(&self.fx[key]["bias"]),
                [out],
                &self.device,
                self.dtype,
            )));
        };
        set(&mut m.query, "query", 2 * dt, 2 * ds);
        set(&mut m.s2t, "s2t", dt, ds);
        set(&mut m.t2s, "t2s", ds, dt);
        m
    }

    fn input(&self, student_hidden: Tensor<3>, student_logits: Tensor<3>) -> DskdCmaInput {
        let (b, s, t, ds, dt, vs, vt) = self.dims();
        DskdCmaInput {
            student: DskdCmaSide {
                hidden: student_hidden,
                logits: student_logits,
                inputs: self.ids("student_inputs", [b, s]),
                targets: self.ids("student_targets", [b, s]),
                mask: self.t("student_mask", [b, s]),
                embedding: self.t("student_embedding", [vs, ds]),
                head: self.t("student_head", [vs, ds]),
            },
            teacher: DskdCmaSide {
                hidden: self.t("teacher_hidden", [b, t, dt]),
                logits: self.t("teacher_logits", [b, t, vt]),
                inputs: self.ids("teacher_inputs", [b, t]),
                targets: self.ids("teacher_targets", [b, t]),
                mask: self.t("teacher_mask", [b, t]),
                embedding: self.t("teacher_embedding", [vt, dt]),
                head: self.t("teacher_head", [vt, dt]),
            },
        }
    }

    fn default_input(&self) -> DskdCmaInput {
        let (b, s, _, ds, _, vs, _) = self.dims();
        self.input(
            self.t("student_hidden", [b, s, ds]),
            self.t("student_logits", [b, s, vs]),
        )
    }
}

#[test]
fn dskd_cma_values_match_the_reference() {
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for case in Cma::all(&device, dtype) {
                let out = case.module().forward(case.default_input(), Reduction::Mean);
                let want = &case.fx["expected"];
                for (term, got) in out.terms() {
                    let key = if term == "dskd_cma" { "loss" } else { term };
                    assert_close(
                        &format!("{name} {dtype:?} seed {} {term}", case.fx["seed"]),
                        scalar(&got),
                        want[key].as_f64().unwrap(),
                        tol.max(1e-4 * f64::from(u8::from(dtype == DType::F32))),
                    );
                }
                let sum = case.module().forward(case.default_input(), Reduction::Sum);
                assert_close(
                    &format!("{name} {dtype:?} sum"),
                    scalar(&sum.loss),
                    want["loss"].as_f64().unwrap() * want["counted"].as_f64().unwrap(),
                    tol.max(1e-4 * f64::from(u8::from(dtype == DType::F32))),
                );
            }
        }
    }
}

#[test]
fn dskd_cma_gradients_match_finite_differences() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        for case in Cma::all(&ad, DType::F64) {
            let (b, s, _, ds, dt, vs, _) = case.dims();
            let module = case.module();
            let hidden = case.t("student_hidden", [b, s, ds]);
            let logits = case.t("student_logits", [b, s, vs]);
            // w.r.t. the student's hidden state (through s2t_kd) and logits (through t2s_kd).
            let x = host(hidden.clone());
            let run = |h: Tensor<3>| {
                module
                    .forward(case.input(h, logits.clone()), Reduction::Mean)
                    .loss
            };
            let xt = tensor(x.clone(), [b, s, ds], &ad, DType::F64).require_grad();
            let grads = run(xt.clone()).backward();
            let analytic = host(xt.grad(&grads).expect("hidden gradient"));
            let numeric = finite_differences(&x, 0..x.len(), |v| {
                scalar(&run(tensor(v, [b, s, ds], &ad, DType::F64)))
            });
            assert_gradient(&format!("{name} student hidden"), &analytic, &numeric);
            let z = host(logits.clone());
            let run = |l: Tensor<3>| {
                module
                    .forward(case.input(hidden.clone(), l), Reduction::Mean)
                    .loss
            };
            let zt = tensor(z.clone(), [b, s, vs], &ad, DType::F64).require_grad();
            let grads = run(zt.clone()).backward();
            let analytic = host(zt.grad(&grads).expect("logits gradient"));
            let numeric = finite_differences(&z, 0..z.len(), |v| {
                scalar(&run(tensor(v, [b, s, vs], &ad, DType::F64)))
            });
            assert_gradient(&format!("{name} student logits"), &analytic, &numeric);
            // The query projector, through the attention of t2s_ce and s2t_kd (t2s_kd reads the
            // projection detached by definition, which finite differences would see).
            let w0 = host(module.query.weight.val());
            let with_query = |w: Tensor<2>| {
                let mut m = case.module();
                m.query.weight = Param::from_tensor(w);
                let out = m.forward(case.default_input(), Reduction::Mean);
                out.t2s_ce + out.s2t_kd
            };
            let shape = [2 * ds, 2 * dt];
            let wt = tensor(w0.clone(), shape, &ad, DType::F64).require_grad();
            let grads = with_query(wt.clone()).backward();
            let analytic = host(wt.grad(&grads).expect("query gradient"));
            let numeric = finite_differences(&w0, 0..w0.len(), |v| {
                scalar(&with_query(tensor(v, shape, &ad, DType::F64)))
            });
            assert_gradient(&format!("{name} query projector"), &analytic, &numeric);
        }
    }
}

/// Longer padding on either side (positions with mask 0 and garbage values) changes nothing.
#[test]
fn dskd_cma_padding_changes_nothing() {
    for (name, device) in devices() {
        let case = &Cma::all(&device, DType::F64)[0];
        let base = scalar(
            &case
                .module()
                .forward(case.default_input(), Reduction::Mean)
                .loss,
        );
        let input = case.default_input();
        let pad3 = |t: Tensor<3>, extra: usize, fill: f64| {
            let mut dims = t.dims();
            dims[1] = extra;
            Tensor::cat(vec![t, Tensor::full(dims, fill, (&device, DType::F64))], 1)
        };
        let pad2 = |t: Tensor<2>, extra: usize| {
            let b = t.dims()[0];
            Tensor::cat(vec![t, Tensor::zeros([b, extra], (&device, DType::F64))], 1)
        };
        let padi = |t: Tensor<2, Int>, extra: usize| {
            let b = t.dims()[0];
            Tensor::cat(vec![t, Tensor::ones([b, extra], &device)], 1)
        };
        let side = |s: DskdCmaSide, extra: usize| DskdCmaSide {
            hidden: pad3(s.hidden, extra, 7.0),
            logits: pad3(s.logits, extra, -3.0),
            inputs: padi(s.inputs, extra),
            targets: padi(s.targets, extra),
            mask: pad2(s.mask, extra),
            embedding: s.embedding,
            head: s.head,
        };
        let padded = DskdCmaInput {
            student: side(input.student, 2),
            teacher: side(input.teacher, 3),
        };
        let got = scalar(&case.module().forward(padded, Reduction::Mean).loss);
        assert_close(&format!("{name} padded"), got, base, 1e-10);
    }
}

#[test]
fn dskd_cma_bad_input_is_named() {
    let device = devices().remove(0).1;
    let case = &Cma::all(&device, DType::F64)[0];
    let module = case.module();
    let err = |input: DskdCmaInput| {
        module
            .try_forward(input, Reduction::Mean)
            .unwrap_err()
            .to_string()
    };
    let good = case.default_input();
    let mut wide = good.clone();
    wide.teacher.hidden = Tensor::zeros([2, 7, 4], (&device, DType::F64));
    assert!(err(wide).contains("teacher.hidden"));
    let mut logits = good.clone();
    logits.student.logits = Tensor::zeros([2, 5, 5], (&device, DType::F64));
    assert!(err(logits).contains("student.logits"));
    let mut head = good.clone();
    head.teacher.head = Tensor::zeros([5, 5], (&device, DType::F64));
    assert!(err(head).contains("teacher.head"));
    let mut ids = good.clone();
    ids.student.targets = ids.student.targets.clone().add_scalar(100);
    assert!(err(ids).contains("student.targets"));
    let mut nan = good.clone();
    nan.teacher.logits = nan.teacher.logits.clone().mul_scalar(f64::NAN);
    assert!(err(nan).contains("teacher.logits"));
    let mut empty = good.clone();
    empty.student.mask = empty.student.mask.clone().mul_scalar(0.0);
    assert!(err(empty).contains("student.mask"));
    for (config, field) in [
        (DskdCmaConfig::new(0, 5), "student_width"),
        (
            DskdCmaConfig::new(4, 5).with_temperature(0.0),
            "temperature",
        ),
    ] {
        let e = config.try_init(&device).unwrap_err().to_string();
        assert!(e.contains(field), "{field}: {e}");
    }
}
