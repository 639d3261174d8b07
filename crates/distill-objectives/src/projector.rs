//! The learnable projectors `Linear(d_S → d_T)` that map student states into the teacher's
//! space in MTA's HRA and SRA's centre-of-mass alignment, and how they start.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::DistillError;

/// How a projector `Linear(d_S → d_T)` starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectorInit {
    /// Burn's default `Linear` initialisation (uniform `±1/√d_S`), then trained (the authors').
    #[default]
    Random,
    /// The identity with a zero bias — only when `d_S = d_T`; with it, the alignment measures
    /// the raw student states against the teacher's (what "measure before training" uses).
    Identity,
}

impl ProjectorInit {
    /// Checks the widths a projector `Linear(student_width → teacher_width)` started this way
    /// needs: both > 0, and equal for [`ProjectorInit::Identity`].
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] naming `student_width`, `teacher_width` or
    /// `projector_init`.
    pub fn check_widths(
        self,
        student_width: usize,
        teacher_width: usize,
    ) -> Result<(), DistillError> {
        let invalid = |field, value: f64, reason: String| DistillError::InvalidConfig {
            field,
            value,
            reason,
        };
        if student_width == 0 {
            return Err(invalid("student_width", 0.0, "it must be > 0".into()));
        }
        if teacher_width == 0 {
            return Err(invalid("teacher_width", 0.0, "it must be > 0".into()));
        }
        if self == ProjectorInit::Identity && student_width != teacher_width {
            return Err(invalid(
                "projector_init",
                student_width as f64,
                format!(
                    "the identity projector needs student_width = teacher_width, got \
                     {student_width} and {teacher_width}"
                ),
            ));
        }
        Ok(())
    }

    /// A projector `Linear(student_width → teacher_width)` with a bias, started this way.
    ///
    /// # Panics
    /// For [`ProjectorInit::Identity`] with `student_width ≠ teacher_width` (the losses'
    /// configurations refuse it first, with a typed error).
    pub fn init(self, student_width: usize, teacher_width: usize, device: &Device) -> Linear {
        match self {
            ProjectorInit::Random => LinearConfig::new(student_width, teacher_width).init(device),
            ProjectorInit::Identity => {
                assert_eq!(
                    student_width, teacher_width,
                    "ProjectorInit::Identity needs student_width = teacher_width"
                );
                Linear {
                    weight: Param::from_tensor(Tensor::eye(student_width, device)),
                    bias: Some(Param::from_tensor(Tensor::zeros([teacher_width], device))),
                }
            }
        }
    }
}
