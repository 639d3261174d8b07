//! The divergences between a teacher distribution `p` and a student distribution `q`.
//!
//! Definitions as in DSKD's `code/criterions/various_divergence.py` (Zhang et al., "Dual-Space
//! Knowledge Distillation for Large Language Models", arXiv 2406.17328) and DistiLLM's
//! `distillm/losses.py` (Ko et al., "DistiLLM: Towards Streamlined Distillation for Large
//! Language Models", arXiv 2402.03898); adaptive KL from Wu et al., "Rethinking Kullback-Leibler
//! Divergence in Knowledge Distillation for Large Language Models", arXiv 2404.02657.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Tensor;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::DistillError;
use crate::numerics::{logaddexp, weighted_log_ratio, weighted_sum};

/// A divergence `D(p ‖ q)` between the teacher distribution `p` and the student distribution
/// `q` at one position (both `softmax(logits / τ)` over the vocabulary, or their top-k
/// coarsening, see [`TeacherTarget`](crate::TeacherTarget)).
///
/// | variant | name | formula | source |
/// |---|---|---|---|
/// | [`ForwardKl`](Self::ForwardKl) | `fkl` | `Σ p (log p − log q)` | DSKD, DistiLLM |
/// | [`ReverseKl`](Self::ReverseKl) | `rkl` | `Σ q (log q − log p)` | DSKD, DistiLLM |
/// | [`JensenShannon`](Self::JensenShannon) | `js` | `β KL(p‖m) + (1−β) KL(q‖m)`, `m = β p + (1−β) q` | DSKD (β = ½) |
/// | [`TotalVariation`](Self::TotalVariation) | `tv` | `½ Σ |p − q|` | DistiLLM |
/// | [`SkewedForwardKl`](Self::SkewedForwardKl) | `sfkl` | `KL(p ‖ λ p + (1−λ) q)` | DSKD, DistiLLM |
/// | [`SkewedReverseKl`](Self::SkewedReverseKl) | `srkl` | `KL(q ‖ (1−λ) p + λ q)` | DSKD, DistiLLM |
/// | [`AdaptiveKl`](Self::AdaptiveKl) | `akl` | `(g_head FKL + g_tail RKL) / (g_head + g_tail)` | AKL via DSKD |
/// | [`DistillmSkewKl`](Self::DistillmSkewKl) | `skew_kl` | `−Σ p log(λ p + (1−λ) q)` | DistiLLM |
///
/// Every mixture is evaluated in log space,
/// `log(λ p + (1−λ) q) = logaddexp(log λ + log p, log(1−λ) + log q)`, so a probability that
/// underflows to 0 never reaches a `log`.
///
/// # Serialisation
/// Serialised as a tagged object, `{"kind": "jensen_shannon", "beta": 0.5}`. Deserialisation
/// also accepts the short names as the tag (`{"kind": "js"}`), omitted parameters (their
/// defaults), and a bare string parsed with [`FromStr`]: `"fkl"`, `"js"`, `"js:0.3"`,
/// `"skewed_forward_kl:0.2"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Divergence {
    /// Forward KL, `KL(p ‖ q) = Σ_v p_v (log p_v − log q_v)`: mean-seeking, the classic KD
    /// objective (Hinton et al., arXiv 1503.02531).
    ForwardKl,
    /// Reverse KL, `KL(q ‖ p) = Σ_v q_v (log q_v − log p_v)`: mode-seeking (MiniLLM,
    /// arXiv 2306.08543). Needs `p > 0` wherever `q > 0`.
    ReverseKl,
    /// Jensen–Shannon with weight `β ∈ (0, 1)` on the teacher:
    /// `m = β p + (1−β) q`, `JS_β = β KL(p ‖ m) + (1−β) KL(q ‖ m)`.
    ///
    /// DSKD's `compute_js_divergence` is the `β = ½` case (it adds `1e-9` inside its logs; this
    /// one is exact). DistiLLM's `js_distance(lam)` is `β = 1 − lam`. Bounded by the binary
    /// entropy `H(β) ≤ ln 2`.
    JensenShannon {
        /// Weight of the teacher, in the mixture and on its KL term. Default `0.5`.
        beta: f64,
    },
    /// Total variation distance `½ Σ_v |p_v − q_v| ∈ [0, 1]`, with the `½` as DistiLLM's
    /// `tv_distance` (DSKD has no TV).
    TotalVariation,
    /// Skewed forward KL `KL(p ‖ λ p + (1−λ) q)`, `λ ∈ (0, 1)`, DSKD's
    /// `compute_skewed_forward_kl_divergence` (DistiLLM's `skewed_forward_kl` minus the teacher
    /// entropy). Default `λ = 0.1`.
    SkewedForwardKl {
        /// Teacher weight `λ` in the mixture. Default `0.1`.
        lambda: f64,
    },
    /// Skewed reverse KL `KL(q ‖ (1−λ) p + λ q)`, `λ ∈ (0, 1)`, DSKD's
    /// `compute_skewed_reverse_kl_divergence`. Default `λ = 0.1`.
    SkewedReverseKl {
        /// Student weight `λ` in the mixture. Default `0.1`.
        lambda: f64,
    },
    /// Adaptive KL (Wu et al., arXiv 2404.02657), as DSKD's `compute_adaptive_kl_divergence`:
    /// sort the teacher probabilities **ascending**, take the student probabilities in that
    /// order, `gap_i = |p_(i) − q_(i)|`; the outcomes whose ascending cumulative teacher mass is
    /// `≤ head_ratio` are the *tail* (the least likely tokens), the others the *head*;
    /// `g_head`, `g_tail` are the sums of the gap over each part, **detached** (no gradient
    /// flows through the weights), and
    ///
    /// ```text
    /// AKL = (g_head · FKL + g_tail · RKL) / (g_head + g_tail)
    /// ```
    ///
    /// When `p = q` exactly (`g_head + g_tail = 0`), both KLs are 0 and the weights are taken as
    /// ½ each. Needs `p > 0` wherever `q > 0` (its RKL term).
    AdaptiveKl {
        /// Cumulative teacher mass that bounds the tail (DSKD's `adaptive_kl_alpha`, the AKL
        /// paper's `μ`). Default `0.5`.
        head_ratio: f64,
    },
    /// DistiLLM's skew KL in its cross-entropy form, `−Σ_v p_v log(λ p_v + (1−λ) q_v)`, as
    /// `distillm/losses.py`'s `skewed_forward_kl`: equal to `SkewedForwardKl(λ) + H(p)`, so its
    /// minimum over `q` is the teacher entropy `H(p)`, not 0. Default `λ = 0.1`.
    DistillmSkewKl {
        /// Teacher weight `λ` in the mixture. Default `0.1`.
        lambda: f64,
    },
}

impl Divergence {
    /// Default `β` of [`Divergence::JensenShannon`].
    pub const DEFAULT_BETA: f64 = 0.5;
    /// Default `λ` of the skewed divergences.
    pub const DEFAULT_LAMBDA: f64 = 0.1;
    /// Default `head_ratio` of [`Divergence::AdaptiveKl`].
    pub const DEFAULT_HEAD_RATIO: f64 = 0.5;

    /// The accepted short names, in the order of the error messages.
    pub const NAMES: [&'static str; 8] =
        ["fkl", "rkl", "js", "tv", "sfkl", "srkl", "akl", "skew_kl"];

    /// The short name: `fkl`, `rkl`, `js`, `tv`, `sfkl`, `srkl`, `akl` or `skew_kl`.
    pub fn name(&self) -> &'static str {
        match self {
            Divergence::ForwardKl => "fkl",
            Divergence::ReverseKl => "rkl",
            Divergence::JensenShannon { .. } => "js",
            Divergence::TotalVariation => "tv",
            Divergence::SkewedForwardKl { .. } => "sfkl",
            Divergence::SkewedReverseKl { .. } => "srkl",
            Divergence::AdaptiveKl { .. } => "akl",
            Divergence::DistillmSkewKl { .. } => "skew_kl",
        }
    }

    /// The variant of `name` (short or long, any case) with its default parameter.
    pub fn from_name(name: &str) -> Result<Self, DistillError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "fkl" | "forward_kl" => Divergence::ForwardKl,
            "rkl" | "reverse_kl" => Divergence::ReverseKl,
            "js" | "jensen_shannon" => Divergence::JensenShannon {
                beta: Self::DEFAULT_BETA,
            },
            "tv" | "total_variation" => Divergence::TotalVariation,
            "sfkl" | "skewed_forward_kl" => Divergence::SkewedForwardKl {
                lambda: Self::DEFAULT_LAMBDA,
            },
            "srkl" | "skewed_reverse_kl" => Divergence::SkewedReverseKl {
                lambda: Self::DEFAULT_LAMBDA,
            },
            "akl" | "adaptive_kl" => Divergence::AdaptiveKl {
                head_ratio: Self::DEFAULT_HEAD_RATIO,
            },
            "skew_kl" | "distillm_skew_kl" => Divergence::DistillmSkewKl {
                lambda: Self::DEFAULT_LAMBDA,
            },
            _ => {
                return Err(DistillError::UnknownDivergence {
                    got: name.to_string(),
                    expected: Self::NAMES.join(", "),
                })
            }
        })
    }

    /// The parameter of the variant, with its field name (`None` for FKL, RKL, TV).
    pub fn parameter(&self) -> Option<(&'static str, f64)> {
        match *self {
            Divergence::ForwardKl | Divergence::ReverseKl | Divergence::TotalVariation => None,
            Divergence::JensenShannon { beta } => Some(("beta", beta)),
            Divergence::SkewedForwardKl { lambda }
            | Divergence::SkewedReverseKl { lambda }
            | Divergence::DistillmSkewKl { lambda } => Some(("lambda", lambda)),
            Divergence::AdaptiveKl { head_ratio } => Some(("head_ratio", head_ratio)),
        }
    }

    /// The same variant with its parameter set to `value` (ignored by FKL, RKL, TV).
    fn with_parameter(self, value: f64) -> Self {
        match self {
            Divergence::ForwardKl | Divergence::ReverseKl | Divergence::TotalVariation => self,
            Divergence::JensenShannon { .. } => Divergence::JensenShannon { beta: value },
            Divergence::SkewedForwardKl { .. } => Divergence::SkewedForwardKl { lambda: value },
            Divergence::SkewedReverseKl { .. } => Divergence::SkewedReverseKl { lambda: value },
            Divergence::AdaptiveKl { .. } => Divergence::AdaptiveKl { head_ratio: value },
            Divergence::DistillmSkewKl { .. } => Divergence::DistillmSkewKl { lambda: value },
        }
    }

    /// Checks the parameter: `β`, `λ` and `head_ratio` must lie in the open interval `(0, 1)`.
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] naming the field and the value.
    pub fn validate(&self) -> Result<(), DistillError> {
        match self.parameter() {
            Some((field, value)) if !(value.is_finite() && value > 0.0 && value < 1.0) => {
                Err(DistillError::InvalidConfig {
                    field,
                    value,
                    reason: format!("the `{}` divergence needs {field} in (0, 1)", self.name()),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the divergence contains a reverse-KL term `Σ q log(q / p)`, infinite when the
    /// teacher gives zero mass to an outcome the student does not.
    pub fn needs_teacher_support(&self) -> bool {
        matches!(self, Divergence::ReverseKl | Divergence::AdaptiveKl { .. })
    }

    /// The divergence of each row of the `[N, C]` teacher / student log-probabilities, `[N]`.
    ///
    /// `log_q` is finite; `log_p` may hold `−∞` (zero teacher mass) only when `p_has_zeros`.
    pub(crate) fn per_row(
        &self,
        log_p: Tensor<2>,
        log_q: Tensor<2>,
        p_has_zeros: bool,
    ) -> RowDivergence {
        let kl_pq =
            |log_p: Tensor<2>, log_q: Tensor<2>| weighted_log_ratio(log_p, log_q, p_has_zeros);
        let kl_qp = |log_q: Tensor<2>, log_p: Tensor<2>| weighted_log_ratio(log_q, log_p, false);
        // log(w p + (1 − w) q).
        let mix = |w: f64, log_p: Tensor<2>, log_q: Tensor<2>| {
            logaddexp(log_p.add_scalar(w.ln()), log_q.add_scalar((1.0 - w).ln()))
        };
        let value = match *self {
            Divergence::ForwardKl => kl_pq(log_p, log_q),
            Divergence::ReverseKl => kl_qp(log_q, log_p),
            Divergence::JensenShannon { beta } => {
                let log_m = mix(beta, log_p.clone(), log_q.clone());
                kl_pq(log_p, log_m.clone()).mul_scalar(beta)
                    + kl_qp(log_q, log_m).mul_scalar(1.0 - beta)
            }
            Divergence::TotalVariation => {
                let [n, _] = log_p.dims();
                (log_p.exp() - log_q.exp())
                    .abs()
                    .sum_dim(1)
                    .reshape([n])
                    .mul_scalar(0.5)
            }
            Divergence::SkewedForwardKl { lambda } => {
                let log_mix = mix(lambda, log_p.clone(), log_q);
                kl_pq(log_p, log_mix)
            }
            Divergence::SkewedReverseKl { lambda } => {
                let log_mix = mix(1.0 - lambda, log_p, log_q.clone());
                kl_qp(log_q, log_mix)
            }
            Divergence::DistillmSkewKl { lambda } => {
                let log_mix = mix(lambda, log_p.clone(), log_q);
                weighted_sum(log_p, log_mix, p_has_zeros).neg()
            }
            Divergence::AdaptiveKl { head_ratio } => {
                let head_weight = akl_head_weight(log_p.clone(), log_q.clone(), head_ratio);
                let fkl = kl_pq(log_p.clone(), log_q.clone());
                let rkl = kl_qp(log_q, log_p);
                let value = fkl.clone() * head_weight.clone()
                    + rkl.clone() * head_weight.clone().neg().add_scalar(1.0);
                return RowDivergence {
                    value,
                    adaptive: Some(AdaptiveParts {
                        fkl,
                        rkl,
                        head_weight,
                    }),
                };
            }
        };
        RowDivergence {
            value,
            adaptive: None,
        }
    }
}

/// The per-row value of a divergence, with the parts of the adaptive KL.
pub(crate) struct RowDivergence {
    /// `[N]`.
    pub value: Tensor<1>,
    /// For [`Divergence::AdaptiveKl`]: its FKL, RKL and head weight per row.
    pub adaptive: Option<AdaptiveParts>,
}

/// The parts of the adaptive KL per row, `[N]` each.
pub(crate) struct AdaptiveParts {
    pub fkl: Tensor<1>,
    pub rkl: Tensor<1>,
    /// `g_head / (g_head + g_tail)`, detached; ½ where `g_head + g_tail = 0`.
    pub head_weight: Tensor<1>,
}

/// AKL's detached head weight `g_head / (g_head + g_tail)` of each row, `[N]` (see
/// [`Divergence::AdaptiveKl`]).
fn akl_head_weight(log_p: Tensor<2>, log_q: Tensor<2>, head_ratio: f64) -> Tensor<1> {
    let [n, _] = log_p.dims();
    let p = log_p.detach().exp();
    let q = log_q.detach().exp();
    let (p_sorted, order) = p.sort_with_indices(1); // ascending, as DSKD's `torch.sort`
    let gap = (p_sorted.clone() - q.gather(1, order)).abs();
    let tail = p_sorted.cumsum(1).lower_equal_elem(head_ratio);
    let g_tail = gap
        .clone()
        .mask_fill(tail.clone().bool_not(), 0.0)
        .sum_dim(1);
    let g_head = gap.mask_fill(tail, 0.0).sum_dim(1);
    let total = g_head.clone() + g_tail;
    let equal = total.clone().equal_elem(0.0);
    (g_head / total.mask_fill(equal.clone(), 1.0))
        .mask_fill(equal, 0.5)
        .reshape([n])
}

impl fmt::Display for Divergence {
    /// The short name, followed by `:parameter` when there is one (`js:0.5`); [`FromStr`]
    /// parses it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parameter() {
            None => f.write_str(self.name()),
            Some((_, value)) => write!(f, "{}:{value}", self.name()),
        }
    }
}

impl FromStr for Divergence {
    type Err = DistillError;

    /// Parses `name` or `name:parameter`, with the short or long names (any case):
    /// `fkl`, `forward_kl`, `js`, `js:0.3`, `sfkl:0.2`, `akl:0.5`, `skew_kl`, ….
    /// The parameter is validated ([`Divergence::validate`]).
    fn from_str(s: &str) -> Result<Self, DistillError> {
        let (name, parameter) = match s.split_once(':') {
            Some((name, p)) => (name.trim(), Some(p.trim())),
            None => (s.trim(), None),
        };
        let divergence = Self::from_name(name)?;
        let Some(p) = parameter else {
            return Ok(divergence);
        };
        let Some((field, _)) = divergence.parameter() else {
            return Err(DistillError::UnknownDivergence {
                got: s.to_string(),
                expected: format!("`{}` without a parameter (it has none)", divergence.name()),
            });
        };
        let value: f64 = p.parse().map_err(|_| DistillError::InvalidConfig {
            field,
            value: f64::NAN,
            reason: format!("`{p}` in `{s}` is not a number"),
        })?;
        let divergence = divergence.with_parameter(value);
        divergence.validate()?;
        Ok(divergence)
    }
}

/// The tagged form, with the short names as aliases and the parameters' defaults.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    #[serde(alias = "fkl")]
    ForwardKl,
    #[serde(alias = "rkl")]
    ReverseKl,
    #[serde(alias = "js")]
    JensenShannon {
        #[serde(default = "default_beta")]
        beta: f64,
    },
    #[serde(alias = "tv")]
    TotalVariation,
    #[serde(alias = "sfkl")]
    SkewedForwardKl {
        #[serde(default = "default_lambda")]
        lambda: f64,
    },
    #[serde(alias = "srkl")]
    SkewedReverseKl {
        #[serde(default = "default_lambda")]
        lambda: f64,
    },
    #[serde(alias = "akl")]
    AdaptiveKl {
        #[serde(default = "default_head_ratio")]
        head_ratio: f64,
    },
    #[serde(alias = "skew_kl")]
    DistillmSkewKl {
        #[serde(default = "default_lambda")]
        lambda: f64,
    },
}

fn default_beta() -> f64 {
    Divergence::DEFAULT_BETA
}

fn default_lambda() -> f64 {
    Divergence::DEFAULT_LAMBDA
}

fn default_head_ratio() -> f64 {
    Divergence::DEFAULT_HEAD_RATIO
}

impl From<Tagged> for Divergence {
    fn from(t: Tagged) -> Self {
        match t {
            Tagged::ForwardKl => Divergence::ForwardKl,
            Tagged::ReverseKl => Divergence::ReverseKl,
            Tagged::JensenShannon { beta } => Divergence::JensenShannon { beta },
            Tagged::TotalVariation => Divergence::TotalVariation,
            Tagged::SkewedForwardKl { lambda } => Divergence::SkewedForwardKl { lambda },
            Tagged::SkewedReverseKl { lambda } => Divergence::SkewedReverseKl { lambda },
            Tagged::AdaptiveKl { head_ratio } => Divergence::AdaptiveKl { head_ratio },
            Tagged::DistillmSkewKl { lambda } => Divergence::DistillmSkewKl { lambda },
        }
    }
}

impl<'de> Deserialize<'de> for Divergence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DivergenceVisitor;

        impl<'de> Visitor<'de> for DivergenceVisitor {
            type Value = Divergence;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a divergence name such as \"fkl\" or \"js:0.3\", or an object such as \
                     {\"kind\": \"jensen_shannon\", \"beta\": 0.5}",
                )
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Divergence, E> {
                s.parse().map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Divergence, A::Error> {
                let tagged = Tagged::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let divergence = Divergence::from(tagged);
                divergence.validate().map_err(de::Error::custom)?;
                Ok(divergence)
            }
        }

        deserializer.deserialize_any(DivergenceVisitor)
    }
}
