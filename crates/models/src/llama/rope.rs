//! Rotary position embedding (Su et al., 2021, "RoFormer"), in the Hugging Face layout: the
//! two rotated coordinates of a pair are `j` and `j + head_dim/2` ("rotate half"), not adjacent
//! as in the original paper and llama.cpp (whose GGUF q/k weights are permuted to match, see
//! [`super::weights`]).
//!
//! `inv_freq[j] = theta^(−2j/head_dim)`; a token at position `p` is rotated by the angles
//! `p · inv_freq[j]`: `rope(x) = x · cos + rotate_half(x) · sin`, with
//! `rotate_half([x₁, x₂]) = [−x₂, x₁]`.

use burn::tensor::{Device, Tensor, TensorData};

use super::config::{LlamaConfig, RopeScaling};

/// The per-pair inverse frequencies of one head.
#[derive(Debug, Clone, PartialEq)]
pub struct RotaryEmbedding {
    /// `head_dim / 2` inverse frequencies, after any scaling.
    pub inv_freq: Vec<f64>,
}

impl RotaryEmbedding {
    /// The frequencies for `config` (theta, head size and scaling).
    pub fn new(config: &LlamaConfig) -> Self {
        let dim = config.head_dim;
        let base: Vec<f64> = (0..dim / 2)
            .map(|j| config.rope_theta.powf(-((2 * j) as f64) / dim as f64))
            .collect();
        let inv_freq = match config.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
            // transformers' `_compute_llama3_parameters`.
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old = original_max_position_embeddings as f64;
                let low_freq_wavelen = old / low_freq_factor;
                let high_freq_wavelen = old / high_freq_factor;
                base.into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_freq_wavelen {
                            f
                        } else if wavelen > low_freq_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        };
        Self { inv_freq }
    }

    /// `(cos, sin)` for positions `start..start + len`, each `[len, head_dim]`
    /// (the angles repeated for both halves).
    pub fn cos_sin(&self, start: usize, len: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * 2 * half);
        let mut sin = Vec::with_capacity(len * 2 * half);
        for p in start..start + len {
            for _ in 0..2 {
                for f in &self.inv_freq {
                    // f32 angles, like transformers (`inv_freq` and positions in float32).
                    let angle = (p as f32 * *f as f32) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let shape = [len, 2 * half];
        (
            Tensor::from_data(TensorData::new(cos, shape), device),
            Tensor::from_data(TensorData::new(sin, shape), device),
        )
    }
}

/// Rotates `x` by the angles in `cos`/`sin`.
///
/// # Shapes
/// - `x`: `[batch, heads, seq, head_dim]`
/// - `cos`, `sin`: `[seq, head_dim]`
pub fn apply_rotary(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    let [batch, heads, seq, dim] = x.dims();
    let half = dim / 2;
    let x1 = x.clone().slice([0..batch, 0..heads, 0..seq, 0..half]);
    let x2 = x.clone().slice([0..batch, 0..heads, 0..seq, half..dim]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone().unsqueeze::<4>() + rotated * sin.clone().unsqueeze::<4>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tolerance;

    fn config(theta: f64) -> LlamaConfig {
        LlamaConfig::new(super::super::LlamaVariant::Llama, 8, 8, 8, 1, 1, 1, 4)
            .with_rope_theta(theta)
    }

    #[test]
    fn rotates_pairs_j_and_j_plus_half() {
        let device = Device::flex();
        let rope = RotaryEmbedding::new(&config(100.0));
        // inv_freq = [1, 100^(-1/2) = 0.1].
        assert_eq!(rope.inv_freq, vec![1.0, 0.1]);
        let (cos, sin) = rope.cos_sin(3, 1, &device);
        let x = Tensor::<4>::from_floats([[[[1.0, 0.0, 0.0, 1.0]]]], &device);
        // Pair (x0, x2) = (1, 0) rotated by 3 rad; pair (x1, x3) = (0, 1) rotated by 0.3 rad.
        let (c3, s3, c03, s03) = (3f64.cos(), 3f64.sin(), 0.3f64.cos(), 0.3f64.sin());
        let expected = [[[[c3, -s03, s3, c03]]]].map(|a| a.map(|b| b.map(|r| r.map(|v| v as f32))));
        apply_rotary(x, &cos, &sin)
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::absolute(1e-5));
    }

    #[test]
    fn linear_scaling_divides_the_frequencies() {
        let scaled = RotaryEmbedding::new(
            &config(100.0).with_rope_scaling(RopeScaling::Linear { factor: 4.0 }),
        );
        assert_eq!(scaled.inv_freq, vec![0.25, 0.025]);
    }
}
