//! Log-space building blocks shared by the divergences: log-sum-exp, `log(e^a + e^b)` and
//! `Σ e^a (a − b)`, each exact where a probability underflows (no `log` of a probability, no
//! clamping).

use burn::tensor::Tensor;

/// `log Σ exp(x)` along `dim` (kept, size 1), shifted by the detached maximum; a slice that is
/// all `−∞` gives `−∞` (not NaN).
pub(crate) fn logsumexp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let shift = x.clone().detach().max_dim(dim);
    let shift = shift.clone().mask_fill(shift.is_inf(), 0.0);
    (x - shift.clone()).exp().sum_dim(dim).log() + shift
}

/// `log(e^a + e^b)` element-wise, shifted by the detached maximum of the pair.
///
/// Exact when one side is `−∞` (the other is returned); the callers never pass two `−∞`.
pub(crate) fn logaddexp<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let shift = a.clone().detach().max_pair(b.clone().detach());
    let shift = shift.clone().mask_fill(shift.is_inf(), 0.0);
    ((a - shift.clone()).exp() + (b - shift.clone()).exp()).log() + shift
}

/// `Σ_c e^{a_c} (a_c − b_c)` over dim 1 of `[N, C]` log-probabilities: `KL(e^a ‖ e^b)` when
/// both sides are normalised, `[N]`.
///
/// With `a_has_neg_inf`, outcomes with `a = −∞` (zero mass) contribute exactly 0 to the value
/// and to the gradient (`0 · log 0 = 0`): the term is computed on a finite stand-in and then
/// masked, so neither the forward nor the backward pass sees `0 · ∞`.
pub(crate) fn weighted_log_ratio(a: Tensor<2>, b: Tensor<2>, a_has_neg_inf: bool) -> Tensor<1> {
    let [n, _] = a.dims();
    let terms = if a_has_neg_inf {
        let zero_mass = a.clone().equal_elem(f64::NEG_INFINITY);
        let a = a.mask_fill(zero_mass.clone(), 0.0);
        (a.clone().exp() * (a - b)).mask_fill(zero_mass, 0.0)
    } else {
        a.clone().exp() * (a - b)
    };
    terms.sum_dim(1).reshape([n])
}

/// `Σ_c e^{a_c} b_c` over dim 1 of `[N, C]`, with `e^{−∞} b = 0` as in
/// [`weighted_log_ratio`], `[N]`.
pub(crate) fn weighted_sum(a: Tensor<2>, b: Tensor<2>, a_has_neg_inf: bool) -> Tensor<1> {
    let [n, _] = a.dims();
    let terms = if a_has_neg_inf {
        let zero_mass = a.clone().equal_elem(f64::NEG_INFINITY);
        let a = a.mask_fill(zero_mass.clone(), 0.0);
        (a.exp() * b).mask_fill(zero_mass, 0.0)
    } else {
        a.exp() * b
    };
    terms.sum_dim(1).reshape([n])
}
