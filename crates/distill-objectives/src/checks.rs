//! Input validation: host-side shape checks, and value checks (finiteness, 0/1 masks, token ids
//! in range, …) whose statistics are all read back from the device in **one** transfer.

use burn::tensor::{DType, Int, Tensor};

use crate::error::{fmt_shape, DistillError};

type Rule = Box<dyn FnOnce(&[f64]) -> Result<(), DistillError>>;

/// A batch of value checks: each one contributes a few scalar statistics (computed lazily on the
/// device) and a rule that judges them; [`ValueChecks::run`] reads every statistic back at once
/// and applies the rules in the order they were added.
#[derive(Default)]
pub(crate) struct ValueChecks {
    stats: Vec<Tensor<1>>,
    /// Number of values the statistics in `stats` hold (the offset of the next one).
    len: usize,
    rules: Vec<(usize, usize, Rule)>,
}

impl ValueChecks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `stats` (each `[1]`) and the rule that receives their values, in the same order.
    pub fn add(
        &mut self,
        stats: Vec<Tensor<1>>,
        rule: impl FnOnce(&[f64]) -> Result<(), DistillError> + 'static,
    ) {
        let start = self.len;
        for stat in stats {
            self.push(stat);
        }
        self.rules.push((start, self.len, Box::new(rule)));
    }

    /// Appends one statistic (any length) and returns the range of its values.
    fn push(&mut self, stat: Tensor<1>) -> std::ops::Range<usize> {
        let start = self.len;
        self.len += stat.dims()[0];
        // One dtype for the concatenation; f32 holds every statistic used here exactly enough
        // (flags, counts, 0/1 masks and token ids below 2^24).
        self.stats.push(stat.detach().cast(DType::F32));
        start..self.len
    }

    /// `tensor` must hold no NaN or ±∞.
    pub fn finite<const D: usize>(&mut self, arg: &'static str, tensor: &Tensor<D>) {
        let shape = fmt_shape(&tensor.dims());
        // One pass, no temporary: a sum is finite only if every term is (NaN and ±∞ propagate
        // through it). A sum that is not finite can still come from finite terms that overflow
        // (or from the f32 read-back); only then the exact element-wise test runs.
        let sum = tensor.clone().detach().sum();
        let exact = tensor.clone().detach();
        self.add(vec![sum], move |v| {
            if !v[0].is_finite()
                && exact
                    .is_finite()
                    .bool_not()
                    .any()
                    .float()
                    .into_scalar::<f32>()
                    > 0.0
            {
                Err(DistillError::NonFinite {
                    arg,
                    shape,
                    detail: String::new(),
                })
            } else {
                Ok(())
            }
        });
    }

    /// `mask` must hold only 0 and 1, and at least one 1.
    pub fn mask(&mut self, mask: &Tensor<2>) {
        self.mask_rule(None, mask);
    }

    /// [`ValueChecks::mask`] for one of several masks: the error names `arg`.
    pub fn named_mask(&mut self, arg: &'static str, mask: &Tensor<2>) {
        self.mask_rule(Some(arg), mask);
    }

    fn mask_rule(&mut self, arg: Option<&'static str>, mask: &Tensor<2>) {
        let shape = fmt_shape(&mask.dims());
        let m = mask.clone().detach();
        let binary = m.clone().equal_elem(0.0).bool_or(m.clone().equal_elem(1.0));
        let not_binary = binary.bool_not().any().float();
        let count = m.sum();
        let prefix = arg.map(|a| format!("`{a}`: ")).unwrap_or_default();
        self.add(vec![not_binary, count], move |v| {
            if v[0] > 0.0 {
                Err(DistillError::InvalidMask {
                    shape,
                    reason: format!(
                        "{prefix}it must hold only 0 (position ignored) and 1 (position counted)"
                    ),
                })
            } else if v[1] == 0.0 {
                Err(DistillError::InvalidMask {
                    shape,
                    reason: format!(
                        "{prefix}every position is masked out (all zeros): there is nothing to \
                         average over"
                    ),
                })
            } else {
                Ok(())
            }
        });
    }

    /// Token ids must lie in `0..vocab`; with `counted`, only at the positions where it is true
    /// (`[B, S]` broadcast over the last dim of `ids`).
    pub fn ids_in_range<const D: usize>(
        &mut self,
        arg: &'static str,
        ids: &Tensor<D, Int>,
        vocab: usize,
        counted: Option<Tensor<D, burn::tensor::Bool>>,
    ) {
        let shape = fmt_shape(&ids.dims());
        let (low, high) = match counted {
            None => (ids.clone(), ids.clone()),
            Some(counted) => {
                let ignored = counted.bool_not();
                (
                    ids.clone().mask_fill(ignored.clone(), 0),
                    ids.clone().mask_fill(ignored, 0),
                )
            }
        };
        let min = low.min().float();
        let max = high.max().float();
        self.add(vec![min, max], move |v| {
            if v[0] < 0.0 || v[1] >= vocab as f64 {
                Err(DistillError::InvalidIds {
                    arg,
                    shape,
                    reason: format!(
                        "token ids must lie in 0..{vocab} (the student vocabulary), got ids \
                         from {} to {}",
                        v[0], v[1]
                    ),
                })
            } else {
                Ok(())
            }
        });
    }

    /// Adds a statistic without a rule, to be read back with the others; returns its index in
    /// the values [`ValueChecks::run`] returns.
    pub fn value(&mut self, stat: Tensor<1>) -> usize {
        self.push(stat).start
    }

    /// Adds a vector of values without a rule (e.g. a flattened mask, read back for host-side
    /// bookkeeping with the other statistics); returns their range in the values
    /// [`ValueChecks::run`] returns.
    pub fn values(&mut self, stat: Tensor<1>) -> std::ops::Range<usize> {
        self.push(stat)
    }

    /// Reads every statistic back (one device transfer), applies the rules in order and returns
    /// the values.
    pub fn run(self) -> Result<Vec<f64>, DistillError> {
        if self.stats.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<f64> = Tensor::cat(self.stats, 0)
            .into_data()
            .try_into_vec_as::<f64>()
            .expect("statistics read back as f64");
        for (start, end, rule) in self.rules {
            rule(&values[start..end])?;
        }
        Ok(values)
    }
}

/// `student_logits` must be a non-empty `[B, S, V]`.
pub(crate) fn student_dims(student_logits: &Tensor<3>) -> Result<[usize; 3], DistillError> {
    logits_dims("student_logits", student_logits)
}

/// The logits `arg` must be a non-empty `[B, S, V]`.
pub(crate) fn logits_dims(
    arg: &'static str,
    logits: &Tensor<3>,
) -> Result<[usize; 3], DistillError> {
    let dims = logits.dims();
    if dims.contains(&0) {
        return Err(DistillError::Shape {
            arg,
            detail: format!(
                "expected a non-empty [batch, seq, vocab], got {}",
                fmt_shape(&dims)
            ),
        });
    }
    Ok(dims)
}

/// `mask` must be `[B, S]` like the logits.
pub(crate) fn mask_shape(
    mask: &Tensor<2>,
    logits_arg: &'static str,
    logits_dims: [usize; 3],
) -> Result<(), DistillError> {
    named_mask_shape("mask", mask, logits_arg, logits_dims)
}

/// The mask `arg` must be `[B, S]` like the logits `logits_arg`.
pub(crate) fn named_mask_shape(
    arg: &'static str,
    mask: &Tensor<2>,
    logits_arg: &'static str,
    logits_dims: [usize; 3],
) -> Result<(), DistillError> {
    let [batch, seq, _] = logits_dims;
    if mask.dims() != [batch, seq] {
        return Err(DistillError::Shape {
            arg,
            detail: format!(
                "expected [batch, seq] = {} to match `{logits_arg}` {}, got {}",
                fmt_shape(&[batch, seq]),
                fmt_shape(&logits_dims),
                fmt_shape(&mask.dims())
            ),
        });
    }
    Ok(())
}

/// A configuration value that must be finite and `> 0`.
pub(crate) fn positive(field: &'static str, value: f64) -> Result<(), DistillError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(DistillError::InvalidConfig {
            field,
            value,
            reason: "it must be finite and > 0".into(),
        })
    }
}
