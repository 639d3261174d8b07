//! The building blocks of the host implementations of backend operations on the CPU backends
//! (flex, ndarray) in the burn-mrl crates: reading a tensor's f32 buffer in place
//! ([`HostF32`]), and element functions and row reductions written as branch-free straight-line
//! f32 arithmetic (no libm calls, no `mul_add`), so loops over them vectorise and every
//! instruction set gives the same bits.

use burn::backend::{
    tensor::{FloatTensor, IntTensor},
    Backend, TensorMetadata,
};
use burn::tensor::{try_read_sync, DType, TensorData};

/// The f32 values of a host tensor of backend `B` (the input side of every host
/// implementation), read as slices in place: flex hands over a uniquely owned contiguous buffer
/// without a copy, and [`HostF32::into_tensor`] gives the (possibly rewritten) buffer back the
/// same way, so an in-place operation costs no copy on either side.
///
/// A flex tensor whose buffer is shared (an activation that autodiff also keeps for the
/// backward, a parameter) is read in place as well and copied only when it is written
/// ([`DerefMut`](std::ops::DerefMut)), in one pass split across the cores. Burn's `into_data`
/// would copy it on the calling thread, twice (into a byte vector, then into an aligned
/// buffer), while the other cores wait.
pub struct HostF32(Values);

/// Where the values of a [`HostF32`] live.
enum Values {
    /// A buffer of our own: the tensor's, when it was uniquely owned, or a copy.
    Owned(TensorData),
    /// A shared, contiguous f32 flex tensor, read where it is.
    #[cfg(feature = "flex")]
    Shared(burn::backend::flex::FlexTensor),
}

/// Elements per parallel task when copying a shared buffer.
#[cfg(feature = "flex")]
const COPY_BLOCK: usize = 1 << 16;

/// `tensor` as a flex tensor when it is one whose f32 buffer is shared and contiguous (read in
/// place, see [`HostF32`]); otherwise `tensor` back.
#[cfg(feature = "flex")]
fn shared_flex<T: 'static>(tensor: T) -> Result<burn::backend::flex::FlexTensor, T> {
    use burn::backend::flex::FlexTensor;
    let readable = (&tensor as &dyn std::any::Any)
        .downcast_ref::<FlexTensor>()
        .is_some_and(|t| {
            t.dtype() == DType::F32 && !t.is_unique() && t.as_slice::<f32>().is_some()
        });
    if !readable {
        return Err(tensor);
    }
    let boxed: Box<dyn std::any::Any> = Box::new(tensor);
    Ok(*boxed
        .downcast::<FlexTensor>()
        .expect("the type was checked above"))
}

impl HostF32 {
    /// Reads `tensor`; `op` and `what` name the operation and the argument in the panic.
    ///
    /// # Panics
    /// If the tensor cannot be read synchronously or is not f32 (callers check the dtype first).
    pub fn read<B: Backend>(tensor: FloatTensor<B>, op: &str, what: &str) -> Self {
        #[cfg(feature = "flex")]
        let tensor = match shared_flex(tensor) {
            Ok(shared) => return Self(Values::Shared(shared)),
            Err(tensor) => tensor,
        };
        let data = try_read_sync(B::float_into_data(tensor))
            .unwrap_or_else(|| panic!("{op}: `{what}` cannot be read synchronously"))
            .unwrap_or_else(|e| panic!("{op}: reading `{what}` failed: {e:?}"));
        assert_eq!(data.dtype(), DType::F32, "{op}: `{what}` must be f32");
        Self(Values::Owned(data))
    }

    /// The values as a tensor of `B` again, with the shape they were read with (a shared tensor
    /// that was only read is handed back as it was).
    pub fn into_tensor<B: Backend>(self, device: &B::Device) -> FloatTensor<B> {
        match self.0 {
            Values::Owned(data) => B::float_from_data(data, device),
            #[cfg(feature = "flex")]
            Values::Shared(tensor) => {
                let boxed: Box<dyn std::any::Any> = Box::new(tensor);
                match boxed.downcast::<FloatTensor<B>>() {
                    Ok(tensor) => *tensor,
                    Err(other) => {
                        let tensor = other
                            .downcast::<burn::backend::flex::FlexTensor>()
                            .expect("a shared HostF32 holds a flex tensor");
                        B::float_from_data(tensor.into_data(), device)
                    }
                }
            }
        }
    }
}

impl std::ops::Deref for HostF32 {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &self.0 {
            Values::Owned(data) => data.as_slice().expect("checked f32 when read"),
            #[cfg(feature = "flex")]
            Values::Shared(tensor) => tensor
                .as_slice::<f32>()
                .expect("checked contiguous f32 when read"),
        }
    }
}

impl std::ops::DerefMut for HostF32 {
    fn deref_mut(&mut self) -> &mut [f32] {
        #[cfg(feature = "flex")]
        if let Values::Shared(tensor) = &self.0 {
            use rayon::prelude::*;
            let values: &[f32] = tensor
                .as_slice::<f32>()
                .expect("checked contiguous f32 when read");
            let mut copy = Vec::with_capacity(values.len());
            copy.par_extend(values.par_iter().copied().with_min_len(COPY_BLOCK));
            let shape = tensor.layout().shape().clone();
            self.0 = Values::Owned(TensorData::new(copy, shape));
        }
        match &mut self.0 {
            Values::Owned(data) => data.as_mut_slice().expect("checked f32 when read"),
            #[cfg(feature = "flex")]
            Values::Shared(_) => unreachable!("a shared buffer was copied above"),
        }
    }
}

/// The ids of an integer tensor of backend `B` as row-major `usize`s, each checked against
/// `0..bound`; `op` and `what` name the operation and the argument, `of` what `bound` counts, in
/// the panic.
///
/// # Panics
/// If the tensor cannot be read synchronously, or an id is negative or not below `bound`.
pub fn read_ids<B: Backend>(
    ids: IntTensor<B>,
    bound: usize,
    op: &str,
    what: &str,
    of: &str,
) -> Vec<usize> {
    let shape = ids.shape();
    let data: TensorData = try_read_sync(B::int_into_data(ids))
        .unwrap_or_else(|| panic!("{op}: `{what}` cannot be read synchronously"))
        .unwrap_or_else(|e| panic!("{op}: reading `{what}` failed: {e:?}"));
    data.iter::<i64>()
        .enumerate()
        .map(|(at, id)| {
            usize::try_from(id)
                .ok()
                .filter(|&id| id < bound)
                .unwrap_or_else(|| {
                    panic!(
                        "{op}: `{what}` {:?} holds {id} at flat index {at}, outside 0..{bound} \
                         ({of})",
                        shape.as_slice()
                    )
                })
        })
        .collect()
}

/// Elements per parallel task of a row-wise host operation.
const BLOCK: usize = 1 << 14;

/// Rows per parallel task for rows of `row_len` elements: whole rows, about 16384 elements (at
/// least one row), so a task is large enough to amortise its scheduling and small enough to
/// spread a batch across the cores.
pub fn rows_per_block(row_len: usize) -> usize {
    (BLOCK / row_len.max(1)).max(1)
}

/// `exp(y)` for `y ≤ 0` (Cephes `expf`: `y = k·ln 2 + r`, `|r| ≤ ½ ln 2`, degree-6 polynomial
/// for `exp(r)`, `2^k` built from the exponent bits; relative error ~1 ulp).
///
/// Below −87 the result is flushed to `exp(−87) ≈ 1.6e-38`: GELU cannot tell it from 0 (it
/// multiplies a factor ≤ 1 that is subtracted from 1 or added to `Φ(x) = 0`); the attention
/// softmax and the log-softmax select an exact 0 there. NaN gives NaN.
#[inline(always)]
pub fn exp_nonpositive(y: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5 · 2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [
        1.987_569_2e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    // Not `y.max(−87)`: that maps NaN to −87; a comparison keeps NaN.
    let y = if y < -87.0 { -87.0 } else { y };
    let shifted = y * LOG2E + ROUND;
    let k = shifted - ROUND;
    let k_int = shifted.to_bits() as i32 - ROUND_BITS;
    let r = y - k * LN2_HI - k * LN2_LO;
    let poly = ((((P[0] * r + P[1]) * r + P[2]) * r + P[3]) * r + P[4]) * r + P[5];
    let exp_r = poly * (r * r) + r + 1.0;
    exp_r * f32::from_bits(((k_int + 127) << 23) as u32)
}

/// `exp(y)` for `y ≤ 0`, exactly 0 below −87 (and for `−∞`), NaN for NaN.
#[inline(always)]
pub fn exp_or_zero(y: f32) -> f32 {
    let e = exp_nonpositive(y);
    if y < -87.0 {
        0.0
    } else {
        e
    }
}

/// Lanes of the reductions below: eight partial results, combined at the end, so the loops
/// vectorise (a sequential f32 sum cannot be reordered by the compiler). The result differs from
/// a sequential sum by rounding only.
const LANES: usize = 8;

/// `Σ_i x_i` over eight lanes.
#[inline(always)]
pub fn sum_lanes(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ_i a_i b_i` over eight lanes.
#[inline(always)]
pub fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `max_i x_i` over eight lanes (`−∞` for an empty slice; NaN is skipped as `f32::max` does).
#[inline(always)]
pub fn max_lanes(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, x| m.max(*x));
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = a.max(*x);
        }
    }
    acc.iter().fold(tail, |m, x| m.max(*x))
}

/// `Σ f(x)` over eight f64 lanes: a row is up to a vocabulary long (49152 for SmolLM2), where
/// f32 lanes of 6144 terms each lose ~1e-5 of the sum; `f` is evaluated in f32 (vectorised).
#[inline(always)]
pub fn sum_f64(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| f(x) as f64).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x) as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `Σ f(a_i, b_i)` over eight f64 lanes, like [`sum_f64`] for two rows of the same length.
#[inline(always)]
pub fn sum2_f64(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y) as f64)
        .sum();
    for (ca, cb) in ca.zip(cb) {
        for ((acc, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *acc += f(x, y) as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::{dot_lanes, exp_nonpositive, max_lanes, sum_lanes};

    #[test]
    fn exp_matches_std_on_the_nonpositive_axis() {
        for i in 0..=8_700 {
            let y = -(i as f32) * 1e-2;
            let (got, want) = (exp_nonpositive(y), (y as f64).exp());
            assert!(
                ((got as f64 - want) / want).abs() < 3e-7,
                "exp({y}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn exp_keeps_nan_and_flushes_below_minus_87() {
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert_eq!(exp_nonpositive(-1e9), exp_nonpositive(-87.0));
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), exp_nonpositive(-87.0));
    }

    #[test]
    fn lane_reductions_match_sequential_ones() {
        for n in [0usize, 1, 7, 8, 9, 37, 384, 1000] {
            let a: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.11).cos()).collect();
            let sum: f64 = a.iter().map(|&x| x as f64).sum();
            let dot: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let max = a.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
            assert!((sum_lanes(&a) as f64 - sum).abs() < 1e-4, "sum, n = {n}");
            assert!(
                (dot_lanes(&a, &b) as f64 - dot).abs() < 1e-4,
                "dot, n = {n}"
            );
            assert_eq!(max_lanes(&a), max, "max, n = {n}");
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod shared_reads {
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Flex, FlexDevice};
    use burn::tensor::TensorData;

    use super::HostF32;

    fn flex(values: Vec<f32>, shape: [usize; 2]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape))
    }

    fn values(tensor: FlexTensor) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn a_shared_buffer_is_read_in_place_and_handed_back_unchanged() {
        let x: Vec<f32> = (0..600).map(|i| i as f32 * 0.5).collect();
        let tensor = flex(x.clone(), [20, 30]);
        let other_owner = tensor.clone();
        let read = HostF32::read::<Flex>(tensor, "test", "x");
        assert_eq!(&read[..], &x[..]);
        assert_eq!(
            read[..].as_ptr(),
            other_owner.as_slice::<f32>().unwrap().as_ptr(),
            "a shared contiguous buffer is read where it is"
        );
        let back = read.into_tensor::<Flex>(&FlexDevice);
        assert_eq!(back.layout().shape().as_slice(), [20, 30]);
        assert_eq!(values(back), x);
        assert_eq!(values(other_owner), x);
    }

    #[test]
    fn writing_a_shared_buffer_copies_it_and_leaves_the_other_owner_alone() {
        // Large enough that the copy is split into several parallel tasks.
        let n = 3 * super::COPY_BLOCK + 17;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let tensor = flex(x.clone(), [n, 1]);
        let other_owner = tensor.clone();
        let mut read = HostF32::read::<Flex>(tensor, "test", "x");
        for v in read.iter_mut() {
            *v = 2.0 * *v + 1.0;
        }
        let want: Vec<f32> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        let back = read.into_tensor::<Flex>(&FlexDevice);
        assert_eq!(back.layout().shape().as_slice(), [n, 1]);
        assert_eq!(values(back), want);
        assert_eq!(values(other_owner), x, "the other owner's values changed");
    }

    #[test]
    fn shared_views_with_an_offset_or_a_transpose_read_their_own_values() {
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let tensor = flex(x, [4, 3]);
        // Rows 1..3: contiguous, starting at an offset into the shared buffer.
        let rows = tensor.narrow(0, 1, 2);
        let mut read = HostF32::read::<Flex>(rows, "test", "x");
        assert_eq!(&read[..], &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        read[0] = -1.0;
        let back = read.into_tensor::<Flex>(&FlexDevice);
        assert_eq!(values(back), [-1.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        // A transposed view is not contiguous: read as a contiguous copy in logical order.
        let transposed = tensor.transpose(0, 1);
        let read = HostF32::read::<Flex>(transposed, "test", "x");
        assert_eq!(
            &read[..],
            &[0.0, 3.0, 6.0, 9.0, 1.0, 4.0, 7.0, 10.0, 2.0, 5.0, 8.0, 11.0]
        );
        assert_eq!(
            values(tensor),
            (0..12).map(|i| i as f32).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_uniquely_owned_buffer_is_written_in_place() {
        let tensor = flex(vec![1.0; 64], [8, 8]);
        let at = tensor.as_slice::<f32>().unwrap().as_ptr();
        let mut read = HostF32::read::<Flex>(tensor, "test", "x");
        read[3] = 5.0;
        assert_eq!(read[..].as_ptr(), at, "no copy of an unshared buffer");
        let back = read.into_tensor::<Flex>(&FlexDevice);
        assert_eq!(back.as_slice::<f32>().unwrap()[3], 5.0);
    }
}
