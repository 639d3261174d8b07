//! Which truncated dims top-k CKA compares, and how many tokens each one keeps.

use burn::config::Config;

use crate::error::CkaError;

/// How many top-ranked tokens the CKA of each truncated dim uses.
#[derive(Config, Debug, PartialEq)]
pub enum KSchedule {
    /// One explicit `k_i` per truncated dim, capped at each example's real length.
    Explicit(Vec<usize>),
    /// `k_i = max(k_min, ceil(gamma_i * m_b))`, capped at the example's real length `m_b`
    /// (MIPIC Eq. 9, arXiv 2604.24374).
    Gammas {
        /// One fraction in `(0, 1]` per truncated dim.
        gammas: Vec<f64>,
        /// Lower bound on `k` before the cap at `m_b`.
        k_min: usize,
    },
}

/// The nested dims and k-schedule of a top-k CKA evaluation.
///
/// The default is the MIPIC paper's schedule for six truncated dims of a 768-wide encoder:
/// dims `16, 32, 64, 128, 256, 512`, gammas `0.2 … 0.7`, `k_min = 8`.
#[derive(Config, Debug, PartialEq)]
pub struct TopKCkaSpec {
    /// Strictly increasing truncated widths `d_1 < … < d_n`, each `<= D` (the hidden width).
    #[config(default = "vec![16, 32, 64, 128, 256, 512]")]
    pub dims: Vec<usize>,
    /// Tokens kept per truncated dim.
    #[config(
        default = "KSchedule::Gammas { gammas: vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7], k_min: 8 }"
    )]
    pub schedule: KSchedule,
    /// When true, `Y` (the full-width teacher side) carries no gradient.
    #[config(default = false)]
    pub detach_teacher: bool,
}

impl TopKCkaSpec {
    /// The paper schedule (`gamma_i = 0.2 + 0.1 i`, `k_min = 8`) for the given dims; at most six
    /// dims follow the paper exactly, further dims continue the sequence capped at 1.0.
    pub fn paper(dims: Vec<usize>) -> Self {
        let gammas = (0..dims.len())
            .map(|i| ((2 + i) as f64 / 10.0).min(1.0))
            .collect();
        Self::new()
            .with_dims(dims)
            .with_schedule(KSchedule::Gammas { gammas, k_min: 8 })
    }

    /// Checks the spec against a hidden width `width` (the `D` of `hidden [B, m, D]`).
    pub fn validate(&self, width: usize) -> Result<(), CkaError> {
        if self.dims.is_empty() {
            return Err(CkaError::InvalidDims {
                reason: "no dims given; at least one truncated dim is required".into(),
            });
        }
        if let Some(w) = self.dims.windows(2).find(|w| w[0] >= w[1]) {
            return Err(CkaError::InvalidDims {
                reason: format!(
                    "dims must be strictly increasing, got {:?} ({} is followed by {})",
                    self.dims, w[0], w[1]
                ),
            });
        }
        if self.dims[0] == 0 {
            return Err(CkaError::InvalidDims {
                reason: format!("dims must be positive, got {:?}", self.dims),
            });
        }
        let last = *self.dims.last().expect("non-empty");
        if last > width {
            return Err(CkaError::InvalidDims {
                reason: format!(
                    "dim {last} exceeds the hidden width D = {width} (dims {:?})",
                    self.dims
                ),
            });
        }
        match &self.schedule {
            KSchedule::Explicit(ks) => {
                if ks.len() != self.dims.len() {
                    return Err(CkaError::InvalidSchedule {
                        reason: format!(
                            "{} ks for {} dims (ks {:?}, dims {:?})",
                            ks.len(),
                            self.dims.len(),
                            ks,
                            self.dims
                        ),
                    });
                }
                if ks.contains(&0) {
                    return Err(CkaError::InvalidSchedule {
                        reason: format!("every k must be >= 1, got {ks:?}"),
                    });
                }
            }
            KSchedule::Gammas { gammas, k_min } => {
                if gammas.len() != self.dims.len() {
                    return Err(CkaError::InvalidSchedule {
                        reason: format!(
                            "{} gammas for {} dims (gammas {:?}, dims {:?})",
                            gammas.len(),
                            self.dims.len(),
                            gammas,
                            self.dims
                        ),
                    });
                }
                if let Some(g) = gammas.iter().find(|g| !(**g > 0.0 && **g <= 1.0)) {
                    return Err(CkaError::InvalidSchedule {
                        reason: format!("every gamma must lie in (0, 1], got {g} in {gammas:?}"),
                    });
                }
                if *k_min == 0 {
                    return Err(CkaError::InvalidSchedule {
                        reason: "k_min must be >= 1".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// `k` for truncated dim `i` of an example with `real_len` real tokens.
    pub fn k_for(&self, i: usize, real_len: usize) -> usize {
        let k = match &self.schedule {
            KSchedule::Explicit(ks) => ks[i],
            KSchedule::Gammas { gammas, k_min } => {
                // `0.3 * 100` is 30.000000000000004 in binary floating point: a product within
                // 1e-9 of an integer is that integer, so decimal gammas give the paper's ks.
                let exact = gammas[i] * real_len as f64;
                let by_gamma = if (exact - exact.round()).abs() < 1e-9 {
                    exact.round()
                } else {
                    exact.ceil()
                };
                (by_gamma as usize).max(*k_min)
            }
        };
        k.min(real_len)
    }
}
