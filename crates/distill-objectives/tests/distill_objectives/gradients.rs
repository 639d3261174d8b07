//! Gradients w.r.t. the student logits against central finite differences (float64): every
//! divergence in both teacher modes, the adaptive KL with its weights held fixed, cross-entropy
//! and the full objective; the teacher and the masked-out positions receive none.

use crate::common::*;

const SHAPE: [usize; 3] = [2, 3, 7];
const N: usize = 2 * 3 * 7;
const MASK: [f64; 6] = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0];

struct Inputs {
    device: Device,
    student: Vec<f64>,
    teacher: Tensor<3>,
    mask: Tensor<2>,
}

impl Inputs {
    fn new(device: &Device) -> Self {
        let ad = device.clone().autodiff();
        Self {
            student: pseudo_random(N, 1, 3.0),
            teacher: tensor(pseudo_random(N, 2, 4.0), SHAPE, &ad, DType::F64),
            mask: tensor(MASK.to_vec(), [2, 3], &ad, DType::F64),
            device: ad,
        }
    }

    fn student(&self, values: Vec<f64>) -> Tensor<3> {
        tensor(values, SHAPE, &self.device, DType::F64)
    }

    fn teachers(&self, tau: f64) -> Vec<(&'static str, TeacherTarget)> {
        vec![
            ("full", TeacherTarget::full(self.teacher.clone())),
            (
                "top-3",
                TeacherTarget::from(teacher_top_k(self.teacher.clone(), 3, tau)),
            ),
        ]
    }

    /// The analytic gradient of `f` at the base point, checked against finite differences.
    fn check(&self, what: &str, f: impl Fn(Tensor<3>) -> Tensor<1>) {
        let x = self.student(self.student.clone()).require_grad();
        let grads = f(x.clone()).backward();
        let analytic = host(x.grad(&grads).expect("student gradient"));
        let numeric = finite_differences(&self.student, 0..N, |v| scalar(&f(self.student(v))));
        assert_gradient(what, &analytic, &numeric);
        // Positions where the mask is 0 get exactly no gradient.
        for (i, g) in analytic.iter().enumerate() {
            if MASK[i / SHAPE[2]] == 0.0 {
                assert_eq!(*g, 0.0, "{what}: gradient at masked-out logit {i}");
            }
        }
    }
}

#[test]
fn every_divergence_gradient_matches_finite_differences_in_both_modes() {
    for (dev_name, device) in devices() {
        let inputs = Inputs::new(&device);
        for tau in [1.0, 2.5] {
            for (mode, teacher) in inputs.teachers(tau) {
                for divergence in all_divergences() {
                    if let Divergence::AdaptiveKl { .. } = divergence {
                        continue; // detached weights: see the next test
                    }
                    let loss = KdLossConfig::new(divergence)
                        .with_temperature(tau)
                        .with_temperature_squared(true)
                        .init();
                    inputs.check(&format!("{dev_name} {divergence} {mode} τ={tau}"), |x| {
                        loss.forward(x, &teacher, inputs.mask.clone(), Reduction::Mean)
                            .loss
                    });
                }
            }
        }
    }
}

#[test]
fn adaptive_kl_gradient_is_the_weighted_kl_gradients_with_detached_weights() {
    // g_head, g_tail are detached, so ∇AKL = w ∇FKL + (1 − w) ∇RKL with w held at its value; on
    // one position w is the `akl_head_weight` term.
    for (dev_name, device) in devices() {
        let ad = device.clone().autodiff();
        for row in 0..4u64 {
            let v = 9;
            let student = pseudo_random(v, 10 + row, 3.0);
            let teacher = tensor(pseudo_random(v, 20 + row, 4.0), [1, 1, v], &ad, DType::F64);
            let mask = tensor(vec![1.0], [1, 1], &ad, DType::F64);
            for head_ratio in [0.5, 0.3] {
                for (mode, target) in [
                    ("full", TeacherTarget::full(teacher.clone())),
                    (
                        "top-4",
                        TeacherTarget::from(teacher_top_k(teacher.clone(), 4, 1.5)),
                    ),
                ] {
                    let what = format!("{dev_name} akl:{head_ratio} {mode} row {row}");
                    let akl = kd(Divergence::AdaptiveKl { head_ratio }, 1.5);
                    let fkl = kd(Divergence::ForwardKl, 1.5);
                    let rkl = kd(Divergence::ReverseKl, 1.5);
                    let x0 = tensor(student.clone(), [1, 1, v], &ad, DType::F64).require_grad();
                    let out = akl.forward(x0.clone(), &target, mask.clone(), Reduction::Sum);
                    let w = scalar(&out.terms[3].1);
                    assert!(w > 0.0 && w < 1.0, "{what}: head weight {w}");
                    let grads = out.loss.backward();
                    let analytic = host(x0.grad(&grads).unwrap());
                    let weighted = |vals: Vec<f64>| {
                        let x = tensor(vals, [1, 1, v], &ad, DType::F64);
                        w * scalar(
                            &fkl.forward(x.clone(), &target, mask.clone(), Reduction::Sum)
                                .loss,
                        ) + (1.0 - w)
                            * scalar(&rkl.forward(x, &target, mask.clone(), Reduction::Sum).loss)
                    };
                    let numeric = finite_differences(&student, 0..v, weighted);
                    assert_gradient(&what, &analytic, &numeric);
                }
            }
        }
    }
}

#[test]
fn cross_entropy_and_objective_gradients_match_finite_differences() {
    for (dev_name, device) in devices() {
        let inputs = Inputs::new(&device);
        // -100 at a masked-out position, as Hugging Face labels.
        let targets = int_tensor(vec![3, 0, -100, 6, -100, 1], [2, 3], &inputs.device);
        inputs.check(&format!("{dev_name} CE"), |x| {
            masked_cross_entropy(x, targets.clone(), inputs.mask.clone(), Reduction::Mean)
        });
        for (mode, teacher) in inputs.teachers(2.0) {
            for divergence in [
                Divergence::ForwardKl,
                Divergence::SkewedReverseKl { lambda: 0.1 },
            ] {
                let objective =
                    KdObjectiveConfig::new(KdLossConfig::new(divergence).with_temperature(2.0))
                        .with_alpha(0.3)
                        .init();
                inputs.check(&format!("{dev_name} objective {divergence} {mode}"), |x| {
                    objective
                        .forward(
                            x,
                            targets.clone(),
                            inputs.mask.clone(),
                            &teacher,
                            Reduction::Sum,
                        )
                        .loss
                });
            }
        }
    }
}

#[test]
fn the_teacher_receives_no_gradient() {
    for (dev_name, device) in devices() {
        let ad = device.clone().autodiff();
        let student = tensor(pseudo_random(N, 3, 2.0), SHAPE, &ad, DType::F32).require_grad();
        let teacher = tensor(pseudo_random(N, 4, 2.0), SHAPE, &ad, DType::F32).require_grad();
        let mask = Tensor::<2>::ones([2, 3], &ad);
        let top = teacher_top_k(teacher.clone(), 3, 1.0);
        let top = TopKTarget {
            log_probs: Tensor::from_data(top.log_probs.into_data(), &ad).require_grad(),
            tail_log_mass: Tensor::from_data(top.tail_log_mass.into_data(), &ad).require_grad(),
            ids: top.ids,
        };
        for divergence in all_divergences() {
            let full = kd(divergence, 1.0).forward(
                student.clone(),
                &TeacherTarget::full(teacher.clone()),
                mask.clone(),
                Reduction::Mean,
            );
            let grads = full.loss.backward();
            assert!(
                student.grad(&grads).is_some(),
                "{dev_name} {divergence}: student gradient"
            );
            assert!(
                teacher.grad(&grads).is_none(),
                "{dev_name} {divergence}: teacher logits got a gradient"
            );

            let target = TeacherTarget::TopK(top.clone());
            let cached = kd(divergence, 1.0).forward(
                student.clone(),
                &target,
                mask.clone(),
                Reduction::Mean,
            );
            let grads = cached.loss.backward();
            assert!(
                student.grad(&grads).is_some(),
                "{dev_name} {divergence}: student gradient (top-k)"
            );
            assert!(
                top.log_probs.grad(&grads).is_none(),
                "{dev_name} {divergence}: log_probs got a gradient"
            );
            assert!(
                top.tail_log_mass.grad(&grads).is_none(),
                "{dev_name} {divergence}: tail got a gradient"
            );
        }
    }
}
