//! `1 − top-k CKA` as a Burn loss module (MIPIC Eq. 12, arXiv 2604.24374).

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::tensor::Tensor;

use crate::error::CkaError;
use crate::spec::TopKCkaSpec;
use crate::top_k_cka::{top_k_cka, top_k_cka_reference};

/// Which implementation of top-k CKA a [`TopKCkaLoss`] runs.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum CkaImplementation {
    /// [`top_k_cka`]: the nested-prefix op (fused kernels on CubeCL devices).
    Fused,
    /// [`top_k_cka_reference`]: one independent CKA per dim in tensor ops.
    Reference,
}

/// Configuration of [`TopKCkaLoss`].
#[derive(Config, Debug)]
pub struct TopKCkaLossConfig {
    /// Dims, k-schedule and `detach_teacher`. Default: the paper's six truncated dims of a
    /// 768-wide encoder with gammas 0.2 … 0.7 and `k_min = 8`, gradient into both sides.
    #[config(default = "TopKCkaSpec::new()")]
    pub spec: TopKCkaSpec,
    /// Implementation to run. Default: [`CkaImplementation::Fused`].
    #[config(default = "CkaImplementation::Fused")]
    pub implementation: CkaImplementation,
}

impl TopKCkaLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    /// When the spec is malformed independently of the input width (no dims, dims not strictly
    /// increasing, a schedule whose length differs from the dims). A dim above the hidden width
    /// is reported by [`TopKCkaLoss::forward`], which sees the width.
    pub fn init(&self) -> TopKCkaLoss {
        if let Err(err) = self.spec.validate(usize::MAX) {
            panic!("TopKCkaLossConfig: {err}");
        }
        TopKCkaLoss {
            spec: self.spec.clone(),
            implementation: self.implementation,
        }
    }
}

/// Top-k CKA self-distillation loss between truncated and full-width token states.
///
/// ```text
/// L[b, i] = 1 − CKA(H[b, S_{k_i}, :d_i], H[b, S_{k_i}, :])
/// ```
///
/// with the tokens `S_k` ranked by `scores` (see [`top_k_cka`] for the exact definition).
/// MIPIC applies it at every SIA layer `l` and truncated dim `d_i < D` (arXiv 2604.24374, Eq. 12).
#[derive(Module, Debug)]
pub struct TopKCkaLoss {
    /// Dims, schedule and detach switch.
    #[module(skip)]
    pub spec: TopKCkaSpec,
    /// Which implementation runs.
    #[module(skip)]
    pub implementation: CkaImplementation,
}

impl TopKCkaLoss {
    /// Reduced loss: `Mean`/`Auto` averages over the `B × n` terms, `Sum` adds them, `BatchMean`
    /// divides the sum by `B`.
    ///
    /// # Shapes
    /// - `hidden`: `[B, m, D]`, `mask`: `[B, m]`, `scores`: `[B, m]`
    /// - output: `[1]`
    ///
    /// # Panics
    /// With the [`CkaError`] message on bad input (see [`TopKCkaLoss::try_forward_no_reduction`]).
    pub fn forward(
        &self,
        hidden: Tensor<3>,
        mask: Tensor<2>,
        scores: Tensor<2>,
        reduction: Reduction,
    ) -> Tensor<1> {
        let loss = self.forward_no_reduction(hidden, mask, scores);
        let batch = loss.dims()[0];
        match reduction {
            Reduction::Mean | Reduction::Auto => loss.mean(),
            Reduction::Sum => loss.sum(),
            Reduction::BatchMean => loss.sum() / batch as f64,
        }
    }

    /// Unreduced loss `1 − CKA`, `[B, n]`.
    ///
    /// # Panics
    /// With the [`CkaError`] message on bad input.
    pub fn forward_no_reduction(
        &self,
        hidden: Tensor<3>,
        mask: Tensor<2>,
        scores: Tensor<2>,
    ) -> Tensor<2> {
        self.try_forward_no_reduction(hidden, mask, scores)
            .unwrap_or_else(|err| panic!("TopKCkaLoss: {err}"))
    }

    /// Unreduced loss `1 − CKA`, `[B, n]`, or the input error.
    pub fn try_forward_no_reduction(
        &self,
        hidden: Tensor<3>,
        mask: Tensor<2>,
        scores: Tensor<2>,
    ) -> Result<Tensor<2>, CkaError> {
        let cka = match self.implementation {
            CkaImplementation::Fused => top_k_cka(hidden, mask, scores, &self.spec)?,
            CkaImplementation::Reference => top_k_cka_reference(hidden, mask, scores, &self.spec)?,
        };
        Ok(cka.neg() + 1.0)
    }
}
