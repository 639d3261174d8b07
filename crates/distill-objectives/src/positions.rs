//! Host-side bookkeeping of the cross-tokenizer losses: the shared input checks, the two
//! response masks read back from the device as position lists, and index tensors that gather
//! or scatter rows of `[B·S, V]`.

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::checks::{logits_dims, named_mask_shape, ValueChecks};
use crate::error::{fmt_shape, DistillError};

/// The counted positions of each row of a `[batch, seq]` 0/1 mask given as its row-major
/// values: `out[b]` lists the `t` with `mask[b, t] = 1`, increasing.
pub(crate) fn counted_positions(mask: &[f64], batch: usize, seq: usize) -> Vec<Vec<usize>> {
    debug_assert_eq!(mask.len(), batch * seq);
    (0..batch)
        .map(|b| {
            (0..seq)
                .filter(|&t| mask[b * seq + t] != 0.0)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A 1-D index tensor on `device`.
pub(crate) fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [indices.len()]), device)
}

/// The rows `rows` (flat indices `b · seq + t`) of `[B, S, V]` logits, `[N, V]`.
pub(crate) fn gather_rows(logits: Tensor<3>, rows: &[usize]) -> Tensor<2> {
    let [batch, seq, vocab] = logits.dims();
    let device = logits.device();
    logits
        .reshape([batch * seq, vocab])
        .select(0, index_tensor(rows, &device))
}

/// `[batch, seq]` zeros that stay on the autodiff graph of `logits` (so a loss without any
/// counted pair still gives the student a gradient, of zeros); `logits` are finite (checked).
pub(crate) fn zeros_on_graph(logits: &Tensor<3>) -> Tensor<2> {
    let [batch, seq, _] = logits.dims();
    logits
        .clone()
        .narrow(2, 0, 1)
        .reshape([batch, seq])
        .mul_scalar(0.0)
}

/// `[batch, seq]` per-position values: `values[i]` at flat position `rows[i]`, 0 elsewhere.
/// Differentiable w.r.t. `values`.
pub(crate) fn scatter_rows(
    values: Tensor<1>,
    rows: &[usize],
    batch: usize,
    seq: usize,
) -> Tensor<2> {
    let device = values.device();
    let zeros = Tensor::<1>::zeros([batch * seq], (&device, values.dtype()));
    if rows.is_empty() {
        return zeros.reshape([batch, seq]);
    }
    zeros
        .select_assign(
            0,
            index_tensor(rows, &device),
            values,
            IndexingUpdateOp::Add,
        )
        .reshape([batch, seq])
}

/// The counted positions of the student's and the teacher's response masks, per sequence
/// (increasing).
pub(crate) struct ResponsePositions {
    pub student: Vec<Vec<usize>>,
    pub teacher: Vec<Vec<usize>>,
}

/// Validates the inputs shared by the cross-tokenizer losses (logits non-empty and finite, one
/// batch size, masks `[B, S]` of their logits, 0/1 and not all zero) and reads back both masks'
/// counted positions, in one transfer.
pub(crate) fn check_pair_inputs(
    student_logits: &Tensor<3>,
    student_mask: &Tensor<2>,
    teacher_logits: &Tensor<3>,
    teacher_mask: &Tensor<2>,
) -> Result<ResponsePositions, DistillError> {
    check_pair_shapes(student_logits, student_mask, teacher_logits, teacher_mask)?;
    let mut checks = ValueChecks::new();
    let readback = pair_value_checks(
        &mut checks,
        student_logits,
        student_mask,
        teacher_logits,
        teacher_mask,
    );
    Ok(readback.read(&checks.run()?))
}

/// The shape checks of [`check_pair_inputs`].
pub(crate) fn check_pair_shapes(
    student_logits: &Tensor<3>,
    student_mask: &Tensor<2>,
    teacher_logits: &Tensor<3>,
    teacher_mask: &Tensor<2>,
) -> Result<(), DistillError> {
    let s = logits_dims("student_logits", student_logits)?;
    let t = logits_dims("teacher_logits", teacher_logits)?;
    if s[0] != t[0] {
        return Err(DistillError::Shape {
            arg: "teacher_logits",
            detail: format!(
                "expected the batch size {} of `student_logits` {}, got {}",
                s[0],
                fmt_shape(&s),
                fmt_shape(&t)
            ),
        });
    }
    named_mask_shape("student_mask", student_mask, "student_logits", s)?;
    named_mask_shape("teacher_mask", teacher_mask, "teacher_logits", t)
}

/// Where the two masks' values land in the values read back.
pub(crate) struct MaskReadback {
    student: std::ops::Range<usize>,
    teacher: std::ops::Range<usize>,
    batch: usize,
    seq_s: usize,
    seq_t: usize,
}

impl MaskReadback {
    /// The counted positions of both masks.
    pub(crate) fn read(self, values: &[f64]) -> ResponsePositions {
        ResponsePositions {
            student: counted_positions(&values[self.student], self.batch, self.seq_s),
            teacher: counted_positions(&values[self.teacher], self.batch, self.seq_t),
        }
    }
}

/// Adds the value checks of [`check_pair_inputs`] and the two masks' read-back to `checks`.
pub(crate) fn pair_value_checks(
    checks: &mut ValueChecks,
    student_logits: &Tensor<3>,
    student_mask: &Tensor<2>,
    teacher_logits: &Tensor<3>,
    teacher_mask: &Tensor<2>,
) -> MaskReadback {
    let [batch, seq_s] = student_mask.dims();
    let [_, seq_t] = teacher_mask.dims();
    checks.finite("student_logits", student_logits);
    checks.finite("teacher_logits", teacher_logits);
    checks.named_mask("student_mask", student_mask);
    checks.named_mask("teacher_mask", teacher_mask);
    MaskReadback {
        student: checks.values(student_mask.clone().reshape([batch * seq_s])),
        teacher: checks.values(teacher_mask.clone().reshape([batch * seq_t])),
        batch,
        seq_s,
        seq_t,
    }
}
