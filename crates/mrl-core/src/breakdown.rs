//! Every term of a loss, as tensors, with a one-sync conversion for logging.

use burn::tensor::Tensor;

/// A loss result that exposes each of its terms by name.
///
/// The terms stay tensors (the total is differentiable and the terms share its graph); call
/// [`LossBreakdown::to_f64`] once per logging step to read them all in a single device sync.
pub trait LossBreakdown {
    /// The differentiable total (`[1]`).
    fn total(&self) -> Tensor<1>;

    /// `(name, [1] tensor)` for the total and every term, e.g. `("mrl/dim_64", ..)`,
    /// `("sia/layer_4/dim_32/att_kl", ..)`, `("pic/link_16@2->32@4", ..)`.
    fn named_terms(&self) -> Vec<(String, Tensor<1>)>;

    /// The values of [`named_terms`](LossBreakdown::named_terms) as `f64`, read in one sync.
    fn to_f64(&self) -> Vec<(String, f64)> {
        let (names, tensors): (Vec<String>, Vec<Tensor<1>>) = self
            .named_terms()
            .into_iter()
            .map(|(n, t)| (n, t.detach().reshape([1])))
            .unzip();
        if tensors.is_empty() {
            return Vec::new();
        }
        let values = Tensor::cat(tensors, 0)
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("float tensor converts to f64");
        names.into_iter().zip(values).collect()
    }
}

/// The element-wise mean of several `[1]` tensors.
pub(crate) fn mean_of(tensors: Vec<Tensor<1>>) -> Tensor<1> {
    let n = tensors.len();
    assert!(n > 0, "mean_of: no tensors");
    tensors
        .into_iter()
        .reduce(|a, b| a + b)
        .expect("non-empty")
        .div_scalar(n as f64)
}
