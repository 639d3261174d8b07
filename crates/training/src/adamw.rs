//! AdamW with one fused pass per parameter tensor on the CPU backends.
//!
//! The update is Burn's [`AdamW`] (Loshchilov & Hutter, *Decoupled Weight Decay
//! Regularization*, arXiv:1711.05101) term for term: with step `t`, learning rate `η` and weight
//! decay `λ`,
//!
//! - `m ← β₁ m + (1 − β₁) g`, `v ← β₂ v + (1 − β₂) g²` (both start at 0)
//! - `m̂ = m / (1 − β₁ᵗ)`, `v̂ = v / (1 − β₂ᵗ)`
//! - `θ ← θ (1 − η λ) − η m̂ / (√v̂ + ε)`
//!
//! Burn writes it as about fifteen tensor operations per parameter, each a pass over the
//! parameter on one core in flex and ndarray, with a fresh allocation each; for MiniLM's 22.7M
//! parameters that is a sizeable share of a training step. Here, on flex and ndarray f32
//! tensors, parameter, gradient and both moments are read once and updated in one pass split
//! across the cores. The state is Burn's [`AdamWState`], so checkpoints are interchangeable with
//! Burn's optimizer; other backends and dtypes run Burn's [`AdamW`] itself.

use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// AdamW with a fused host step on flex and ndarray (see the module docs).
#[derive(Clone)]
pub struct FusedAdamW {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    /// Burn's optimizer with the same settings: the step on every other backend and dtype.
    reference: AdamW,
}

impl FusedAdamW {
    /// AdamW with moments `beta_1`, `beta_2`, `epsilon` added to `√v̂` and decoupled weight
    /// decay `weight_decay` (multiplied by the learning rate).
    ///
    /// # Panics
    /// If a `beta` is not in `[0, 1)`, or `epsilon` or `weight_decay` is negative or not finite.
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32) -> Self {
        for (name, beta) in [("beta_1", beta_1), ("beta_2", beta_2)] {
            assert!(
                (0.0..1.0).contains(&beta),
                "FusedAdamW: `{name}` must be in [0, 1), got {beta}"
            );
        }
        for (name, value) in [("epsilon", epsilon), ("weight_decay", weight_decay)] {
            assert!(
                value.is_finite() && value >= 0.0,
                "FusedAdamW: `{name}` must be finite and ≥ 0, got {value}"
            );
        }
        let reference = AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
            reference,
        }
    }
}

impl std::fmt::Debug for FusedAdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedAdamW")
            .field("beta_1", &self.beta_1)
            .field("beta_2", &self.beta_2)
            .field("epsilon", &self.epsilon)
            .field("weight_decay", &self.weight_decay)
            .finish()
    }
}

/// The values of an f32 tensor, written in place: flex hands over a uniquely owned buffer and
/// takes it back without a copy.
fn values_mut(data: &mut TensorData) -> &mut [f32] {
    data.as_mut_slice::<f32>()
        .expect("an f32 tensor reads as f32")
}

/// The constants of one step (see the module docs): `f = 1 − β`, `c = 1 − βᵗ`, `keep = 1 − ηλ`.
struct Update {
    b1: f32,
    b2: f32,
    f1: f32,
    f2: f32,
    c1: f32,
    c2: f32,
    eps: f32,
    keep: f32,
    lr: f32,
}

/// One chunk of the update, compiled by `pulp` for the widest instruction set the CPU has (the
/// body is inlined into pulp's `#[target_feature]` entry point, so the loop vectorises with that
/// width; without it the divisions and square roots ran four lanes wide). The operations and
/// their order are Burn's, and Rust does not fuse a multiply and an add, so every width gives
/// the same bits.
struct Chunk<'a> {
    update: &'a Update,
    theta: &'a mut [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    g: &'a [f32],
}

impl pulp::WithSimd for Chunk<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let u = self.update;
        let values = self.theta.iter_mut().zip(self.m).zip(self.v).zip(self.g);
        for (((theta, m), v), g) in values {
            *m = *m * u.b1 + g * u.f1;
            *v = *v * u.b2 + g * g * u.f2;
            let delta = (*m / u.c1) / ((*v / u.c2).sqrt() + u.eps);
            *theta = *theta * u.keep - delta * u.lr;
        }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        let fused = models::is_host_cpu(&device)
            && tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && state
                .as_ref()
                .is_none_or(|s| s.momentum.max_moment_2.is_none());
        if !fused {
            return self.reference.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let mut theta = tensor.into_data();
        let grad = grad.into_data();
        let (mut m, mut v, time) = match state {
            Some(s) => (
                s.momentum.moment_1.into_data(),
                s.momentum.moment_2.into_data(),
                s.momentum.time + 1,
            ),
            None => {
                let zeros = || TensorData::zeros::<f32, _>(shape.clone());
                (zeros(), zeros(), 1)
            }
        };
        let (b1, b2) = (self.beta_1, self.beta_2);
        let t = i32::try_from(time).unwrap_or(i32::MAX);
        // Burn skips the decay multiplication at λ = 0; multiplying by exactly 1 is the same.
        let keep = (1.0 - lr * self.weight_decay as f64) as f32;
        let update = Update {
            b1,
            b2,
            f1: 1.0 - b1,
            f2: 1.0 - b2,
            c1: 1.0 - b1.powi(t),
            c2: 1.0 - b2.powi(t),
            eps: self.epsilon,
            keep,
            lr: lr as f32,
        };
        let g = grad.as_slice::<f32>().expect("an f32 tensor reads as f32");
        let arch = pulp::Arch::new();
        values_mut(&mut theta)
            .par_chunks_mut(CHUNK)
            .zip(values_mut(&mut m).par_chunks_mut(CHUNK))
            .zip(values_mut(&mut v).par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((theta, m), v), g)| {
                arch.dispatch(Chunk {
                    update: &update,
                    theta,
                    m,
                    v,
                    g,
                })
            });
        let tensor = |values: TensorData| Tensor::<D>::from_data(values, &device);
        let state = AdamWState::new(AdaptiveMomentumState::new(time, tensor(m), tensor(v)));
        (tensor(theta), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}
