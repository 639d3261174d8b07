//! DSKD with cross-model attention (DSKD-CMA, Zhang et al., arXiv 2406.17328): dual-space
//! knowledge distillation between models with different tokenizers, the teacher's states
//! projected into the student's space (and back) by an attention whose queries are the
//! student's tokens and whose keys are the teacher's.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor};

use crate::checks::{positive, ValueChecks};
use crate::cross_entropy::try_masked_cross_entropy;
use crate::divergence::Divergence;
use crate::error::{fmt_shape, DistillError};
use crate::kd::KdLossConfig;
use crate::teacher::TeacherTarget;

/// The additive mask DSKD puts on attention scores between non-counted positions.
pub const DSKD_CMA_MASK: f64 = -100_000.0;

/// Configuration of [`DskdCma`].
#[derive(Config, Debug)]
pub struct DskdCmaConfig {
    /// Width `d_S` of the student's last hidden state.
    pub student_width: usize,
    /// Width `d_T` of the teacher's last hidden state.
    pub teacher_width: usize,
    /// The divergence of the teacher-to-student term (DSKD's `--kd-objective`). Default
    /// forward KL.
    #[config(default = "Divergence::ForwardKl")]
    pub divergence: Divergence,
    /// DSKD's `kd_temperature` of both divergences. Default 2.
    #[config(default = 2.0)]
    pub temperature: f64,
}

impl DskdCmaConfig {
    /// Builds the module (its three projectors with Burn's default initialisation).
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`DskdCmaConfig::try_init`].
    pub fn init(&self, device: &burn::tensor::Device) -> DskdCma {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("DskdCmaConfig: {e}"))
    }

    /// Builds the module, or reports an invalid configuration.
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] for a zero width, a non-positive temperature or an
    /// invalid divergence parameter.
    pub fn try_init(&self, device: &burn::tensor::Device) -> Result<DskdCma, DistillError> {
        for (field, width) in [
            ("student_width", self.student_width),
            ("teacher_width", self.teacher_width),
        ] {
            if width == 0 {
                return Err(DistillError::InvalidConfig {
                    field,
                    value: 0.0,
                    reason: "it must be > 0".into(),
                });
            }
        }
        positive("temperature", self.temperature)?;
        self.divergence.validate()?;
        let (s, t) = (self.student_width, self.teacher_width);
        Ok(DskdCma {
            query: LinearConfig::new(2 * s, 2 * t).init(device),
            s2t: LinearConfig::new(s, t).init(device),
            t2s: LinearConfig::new(t, s).init(device),
            divergence: self.divergence,
            temperature: self.temperature,
        })
    }
}

/// One model's side of a [`DskdCmaInput`].
///
/// # Shapes
/// - `hidden`: `[batch, seq, d]`, the last hidden state (after the final norm)
/// - `logits`: `[batch, seq, vocab]`, next-token logits (position `t` predicts `targets[t]`)
/// - `inputs`, `targets`: `[batch, seq]`, the token read at `t` and the token predicted there
/// - `mask`: `[batch, seq]` float 0/1, 1 = `t` predicts a response token (DSKD's
///   `label != -100`)
/// - `embedding`, `head`: `[vocab, d]`, the input embedding and the output embedding (the same
///   matrix for a tied model)
#[derive(Debug, Clone)]
pub struct DskdCmaSide {
    /// The last hidden state.
    pub hidden: Tensor<3>,
    /// Next-token logits.
    pub logits: Tensor<3>,
    /// The input token at each position.
    pub inputs: Tensor<2, Int>,
    /// The token each position predicts.
    pub targets: Tensor<2, Int>,
    /// Counted positions.
    pub mask: Tensor<2>,
    /// Input embedding.
    pub embedding: Tensor<2>,
    /// Output embedding.
    pub head: Tensor<2>,
}

/// The inputs of [`DskdCma`]: the student's side and the teacher's (data: no gradient).
#[derive(Debug, Clone)]
pub struct DskdCmaInput {
    /// The student.
    pub student: DskdCmaSide,
    /// The teacher.
    pub teacher: DskdCmaSide,
}

/// The terms of [`DskdCma::forward`], `[1]` each.
#[derive(Debug, Clone)]
pub struct DskdCmaOutput {
    /// `t2s_ce + t2s_kd + s2t_kd`.
    pub loss: Tensor<1>,
    /// Cross-entropy of the teacher states projected to the student's head.
    pub t2s_ce: Tensor<1>,
    /// The divergence from the (detached) projected teacher to the student, where the
    /// projection predicts the target.
    pub t2s_kd: Tensor<1>,
    /// Forward KL from the teacher to the student states projected to the teacher's head.
    pub s2t_kd: Tensor<1>,
    /// Fraction of counted student positions where the projection predicts the target.
    pub t2s_accuracy: Tensor<1>,
}

impl DskdCmaOutput {
    /// Named terms: `dskd_cma`, `t2s_ce`, `t2s_kd`, `s2t_kd`, `t2s_acc`.
    pub fn terms(&self) -> Vec<(&'static str, Tensor<1>)> {
        vec![
            ("dskd_cma", self.loss.clone()),
            ("t2s_ce", self.t2s_ce.clone()),
            ("t2s_kd", self.t2s_kd.clone()),
            ("s2t_kd", self.s2t_kd.clone()),
            ("t2s_acc", self.t2s_accuracy.clone()),
        ]
    }
}

/// Dual-space KD with cross-model attention (DSKD, Zhang et al., arXiv 2406.17328), as
/// `code/criterions/dual_space_kd_with_cross_model_attention.py` of the DSKD code base defines
/// it. With `m_S`, `m_T` the counted positions, `E`/`W` the input / output embeddings (used
/// detached), `[·;·]` concatenation and `σ(X)` the standard deviation (Bessel) of the entries
/// of `X` over the counted positions:
///
/// ```text
/// q_i = P_q([E_S x_i; E_S y_i])                       P_q = Linear(2 d_S → 2 d_T)
/// k_j = [E_T x_j; E_T y_j] / σ([E_T x; E_T y])
/// v^T_j = P_t2s(h^T_j / σ(h^T) + E_T y_j / σ(E_T y))  P_t2s = Linear(d_T → d_S)
/// v^S_i = P_s2t(h^S_i)                                P_s2t = Linear(d_S → d_T)
/// A_ij = q_i·k_j / √(2 d_T) + (1 − m_S,i m_T,j)·(−1e5)
/// t2s_i = W_S (Σ_j softmax_j(A)_ij v^T_j)              (student vocabulary)
/// s2t_j = W_T (Σ_i softmax_i(A)_ij v^S_i)              (teacher vocabulary)
/// t2s_ce = Σ_{i∈m_S} −log softmax(t2s_i)[y_i]
/// t2s_kd = Σ_{i∈m_S, argmax t2s_i = y_i} D_τ(student_logits_i ‖ sg(t2s_i))   (the configured divergence)
/// s2t_kd = Σ_{j∈m_T} KL_τ(softmax(teacher_logits_j / τ) ‖ softmax(s2t_j / τ))
/// L = (t2s_ce + t2s_kd + s2t_kd) / Σ m_S                 (Reduction::Mean; DSKD's batch_denom)
/// ```
///
/// The training objective is `(1 − α)·CE + α·L` (DSKD's kd_rate α = 0.5).
///
/// **Our choice** where DSKD's code has one: DSKD takes `σ` over the **whole** padded batch
/// tensors (prompt and padding positions included, as embeddings of id 0), so its loss moves
/// with the batch's padding; here `σ` runs over the counted positions only, so padding a batch
/// further changes nothing.
///
/// Gradient: the student logits (through `t2s_kd`), the student's last hidden state (through
/// `s2t_kd`) and the three projectors; embeddings, heads and the teacher are constants.
#[derive(Module, Debug)]
pub struct DskdCma {
    /// `P_q`, `Linear(2 d_S → 2 d_T)`.
    pub query: Linear,
    /// `P_s2t`, `Linear(d_S → d_T)`.
    pub s2t: Linear,
    /// `P_t2s`, `Linear(d_T → d_S)`.
    pub t2s: Linear,
    /// The divergence of `t2s_kd`.
    #[module(skip)]
    pub divergence: Divergence,
    /// `τ`.
    pub temperature: f64,
}

impl DskdCma {
    /// The loss and its terms: `Mean` / `Auto` divide the sums by the number of counted
    /// student positions, `BatchMean` by the batch size, `Sum` returns them.
    ///
    /// # Shapes
    /// See [`DskdCmaSide`]; output `[1]` each.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`DskdCma::try_forward`].
    pub fn forward(&self, input: DskdCmaInput, reduction: Reduction) -> DskdCmaOutput {
        self.try_forward(input, reduction)
            .unwrap_or_else(|e| panic!("DskdCma: {e}"))
    }

    /// [`DskdCma::forward`], or the reason the inputs are invalid.
    ///
    /// # Errors
    /// [`DistillError::Shape`] for mismatched shapes or widths; [`DistillError::NonFinite`]
    /// for NaN / ±∞ states or logits; [`DistillError::InvalidMask`] for a non-0/1 mask or one
    /// that counts no position; [`DistillError::InvalidIds`] for ids out of a vocabulary.
    pub fn try_forward(
        &self,
        input: DskdCmaInput,
        reduction: Reduction,
    ) -> Result<DskdCmaOutput, DistillError> {
        self.check(&input)?;
        let DskdCmaInput { student, teacher } = input;
        let batch = student.hidden.dims()[0];
        let d_t = teacher.hidden.dims()[2];
        let m_s = student.mask.clone().detach();
        let m_t = teacher.mask.clone().detach();
        // Ids zeroed off the counted positions (DSKD's `formal_*`), embedded, detached.
        let embed = |table: &Tensor<2>, ids: Tensor<2, Int>, mask: &Tensor<2>| {
            let ids = ids * mask.clone().int();
            let [b, l] = ids.dims();
            let width = table.dims()[1];
            table
                .clone()
                .detach()
                .select(0, ids.reshape([b * l]))
                .reshape([b, l, width])
        };
        let s_index = Tensor::cat(
            vec![
                embed(&student.embedding, student.inputs, &m_s),
                embed(&student.embedding, student.targets.clone(), &m_s),
            ],
            2,
        );
        let t_target = embed(&teacher.embedding, teacher.targets, &m_t);
        let t_index = Tensor::cat(
            vec![
                embed(&teacher.embedding, teacher.inputs, &m_t),
                t_target.clone(),
            ],
            2,
        );
        let t_hidden = teacher.hidden.detach();
        let key = t_index.clone() / masked_std(&t_index, &m_t);
        let value_t = self.t2s.forward(
            t_hidden.clone() / masked_std(&t_hidden, &m_t)
                + t_target.clone() / masked_std(&t_target, &m_t),
        ); // [B, T, d_S]
        let value_s = self.s2t.forward(student.hidden); // [B, S, d_T]
        let query = self.query.forward(s_index); // [B, S, 2 d_T]
        let pair = m_s.clone().unsqueeze_dim::<3>(2) * m_t.clone().unsqueeze_dim::<3>(1);
        let scores = query
            .matmul(key.swap_dims(1, 2))
            .div_scalar((2.0 * d_t as f64).sqrt())
            + pair.neg().add_scalar(1.0).mul_scalar(DSKD_CMA_MASK); // [B, S, T]
        let t2s_hidden = softmax(scores.clone(), 2).matmul(value_t); // [B, S, d_S]
        let head_s = student.head.detach().transpose().unsqueeze_dim::<3>(0); // [1, d_S, V_S]
        let t2s_logits = t2s_hidden.matmul(head_s);
        let s2t_hidden = softmax(scores.swap_dims(1, 2), 2).matmul(value_s); // [B, T, d_T]
        let head_t = teacher.head.detach().transpose().unsqueeze_dim::<3>(0);
        let s2t_logits = s2t_hidden.matmul(head_t);

        let t2s_ce = try_masked_cross_entropy(
            t2s_logits.clone(),
            student.targets.clone(),
            m_s.clone(),
            Reduction::Sum,
        )?;
        let correct = t2s_logits
            .clone()
            .detach()
            .argmax(2)
            .squeeze_dim::<2>(2)
            .equal(student.targets)
            .float()
            .cast(m_s.dtype())
            * m_s.clone();
        let t2s_kd = KdLossConfig::new(self.divergence)
            .with_temperature(self.temperature)
            .try_init()?
            .try_forward_no_reduction(
                student.logits,
                &TeacherTarget::Full {
                    logits: t2s_logits.detach(),
                },
                m_s.clone(),
            )?;
        let t2s_kd = (t2s_kd * correct.clone()).sum();
        let s2t_kd = KdLossConfig::new(Divergence::ForwardKl)
            .with_temperature(self.temperature)
            .try_init()?
            .try_forward_no_reduction(
                s2t_logits,
                &TeacherTarget::Full {
                    logits: teacher.logits.detach(),
                },
                m_t,
            )?
            .sum();
        let counted = m_s.clone().sum();
        let accuracy = correct.sum() / counted.clone();
        let denominator = match reduction {
            Reduction::Sum => None,
            Reduction::BatchMean => Some(
                Tensor::<1>::ones([1], &m_s.device())
                    .cast(m_s.dtype())
                    .mul_scalar(batch as f64),
            ),
            Reduction::Mean | Reduction::Auto => Some(counted),
        };
        let scale = |t: Tensor<1>| match &denominator {
            Some(d) => t / d.clone(),
            None => t,
        };
        let (t2s_ce, t2s_kd, s2t_kd) = (scale(t2s_ce), scale(t2s_kd), scale(s2t_kd));
        Ok(DskdCmaOutput {
            loss: t2s_ce.clone() + t2s_kd.clone() + s2t_kd.clone(),
            t2s_ce,
            t2s_kd,
            s2t_kd,
            t2s_accuracy: accuracy,
        })
    }

    /// Shape and value checks of both sides.
    fn check(&self, input: &DskdCmaInput) -> Result<(), DistillError> {
        let d_s = self.s2t.weight.dims()[0];
        let d_t = self.t2s.weight.dims()[0];
        let batch = input.student.hidden.dims()[0];
        let mut checks = ValueChecks::new();
        for (name, side, width) in [
            ("student", &input.student, d_s),
            ("teacher", &input.teacher, d_t),
        ] {
            let [b, seq, w] = side.hidden.dims();
            let [b2, seq2, vocab] = side.logits.dims();
            let shape_err = |arg: &'static str, detail: String| DistillError::Shape { arg, detail };
            if b != batch || w != width || seq == 0 || b == 0 {
                return Err(shape_err(
                    if name == "student" {
                        "student.hidden"
                    } else {
                        "teacher.hidden"
                    },
                    format!(
                        "expected [batch, seq, {width}] with the student's batch {batch}, got {}",
                        fmt_shape(&side.hidden.dims())
                    ),
                ));
            }
            if [b2, seq2] != [b, seq] || vocab == 0 {
                return Err(shape_err(
                    if name == "student" {
                        "student.logits"
                    } else {
                        "teacher.logits"
                    },
                    format!(
                        "expected [{b}, {seq}, vocab] (the hidden state's positions), got {}",
                        fmt_shape(&side.logits.dims())
                    ),
                ));
            }
            for (arg, dims) in [
                ("inputs", side.inputs.dims()),
                ("targets", side.targets.dims()),
                ("mask", side.mask.dims()),
            ] {
                if dims != [b, seq] {
                    return Err(DistillError::Shape {
                        arg,
                        detail: format!(
                            "{name}.{arg}: expected [batch, seq] = {}, got {}",
                            fmt_shape(&[b, seq]),
                            fmt_shape(&dims)
                        ),
                    });
                }
            }
            for (arg, table) in [("embedding", &side.embedding), ("head", &side.head)] {
                if table.dims() != [vocab, width] {
                    return Err(DistillError::Shape {
                        arg,
                        detail: format!(
                            "{name}.{arg}: expected [vocab, width] = {}, got {}",
                            fmt_shape(&[vocab, width]),
                            fmt_shape(&table.dims())
                        ),
                    });
                }
            }
            checks.finite(
                if name == "student" {
                    "student.hidden"
                } else {
                    "teacher.hidden"
                },
                &side.hidden,
            );
            checks.finite(
                if name == "student" {
                    "student.logits"
                } else {
                    "teacher.logits"
                },
                &side.logits,
            );
            let (mask_arg, inputs_arg, targets_arg) = if name == "student" {
                ("student.mask", "student.inputs", "student.targets")
            } else {
                ("teacher.mask", "teacher.inputs", "teacher.targets")
            };
            checks.named_mask(mask_arg, &side.mask);
            let counted = side.mask.clone().detach().greater_elem(0.5);
            checks.ids_in_range(inputs_arg, &side.inputs, vocab, Some(counted.clone()));
            checks.ids_in_range(targets_arg, &side.targets, vocab, Some(counted));
        }
        checks.run().map(|_| ())
    }
}

/// The standard deviation (Bessel's correction) of the entries of `x` `[B, L, D]` at the
/// counted positions of `mask` `[B, L]`, as a `[1, 1, 1]` tensor.
fn masked_std(x: &Tensor<3>, mask: &Tensor<2>) -> Tensor<3> {
    let width = x.dims()[2] as f64;
    let m = mask.clone().unsqueeze_dim::<3>(2);
    let n = m.clone().sum().mul_scalar(width);
    let mean = (x.clone() * m.clone()).sum() / n.clone();
    let centred = (x.clone() - mean.reshape([1, 1, 1])) * m;
    (centred.powi_scalar(2).sum() / n.sub_scalar(1.0))
        .sqrt()
        .reshape([1, 1, 1])
}
