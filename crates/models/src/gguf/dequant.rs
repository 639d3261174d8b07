//! ggml tensor types and their dequantisation to f32.
//!
//! Block layouts follow ggml's `ggml-common.h` (`QK4_0 = QK4_1 = QK8_0 = 32` values per block,
//! little-endian, scales stored as IEEE half floats):
//!
//! | type | bytes / block | layout | value `j` of the block |
//! |---|---|---|---|
//! | `Q8_0` | 34 | `d: f16, qs: [i8; 32]` | `qs[j] · d` |
//! | `Q4_0` | 18 | `d: f16, qs: [u8; 16]` | `(nibble(j) − 8) · d` |
//! | `Q4_1` | 20 | `d: f16, m: f16, qs: [u8; 16]` | `nibble(j) · d + m` |
//!
//! where `nibble(j)` is the low nibble of `qs[j]` for `j < 16` and the high nibble of
//! `qs[j − 16]` for `j ≥ 16` (the two halves of a block are not interleaved).

use burn::tensor::{bf16, f16};

/// A ggml tensor element type, as stored in a GGUF tensor info (`ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType(pub u32);

impl GgmlType {
    /// 32-bit float.
    pub const F32: GgmlType = GgmlType(0);
    /// IEEE half.
    pub const F16: GgmlType = GgmlType(1);
    /// 4-bit, scale only.
    pub const Q4_0: GgmlType = GgmlType(2);
    /// 4-bit, scale and minimum.
    pub const Q4_1: GgmlType = GgmlType(3);
    /// 8-bit, scale only.
    pub const Q8_0: GgmlType = GgmlType(8);
    /// bfloat16.
    pub const BF16: GgmlType = GgmlType(30);

    /// ggml's name for the type (`"Q4_1"`, `"Q6_K"`, …), or `"unknown"`.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 40] = [
            "F32",
            "F16",
            "Q4_0",
            "Q4_1",
            "Q4_2",
            "Q4_3",
            "Q5_0",
            "Q5_1",
            "Q8_0",
            "Q8_1",
            "Q2_K",
            "Q3_K",
            "Q4_K",
            "Q5_K",
            "Q6_K",
            "Q8_K",
            "IQ2_XXS",
            "IQ2_XS",
            "IQ3_XXS",
            "IQ1_S",
            "IQ4_NL",
            "IQ3_S",
            "IQ2_S",
            "IQ4_XS",
            "I8",
            "I16",
            "I32",
            "I64",
            "F64",
            "IQ1_M",
            "BF16",
            "Q4_0_4_4",
            "Q4_0_4_8",
            "Q4_0_8_8",
            "TQ1_0",
            "TQ2_0",
            "IQ4_NL_4_4",
            "IQ4_NL_4_8",
            "IQ4_NL_8_8",
            "MXFP4",
        ];
        NAMES.get(self.0 as usize).copied().unwrap_or("unknown")
    }

    /// `(values per block, bytes per block)` for the types this crate dequantises, `None` for
    /// the others.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q4_1 => Some((32, 20)),
            _ => None,
        }
    }

    /// Whether [`dequantize`] supports this type.
    pub fn is_supported(self) -> bool {
        self.block_layout().is_some()
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (ggml type {})", self.name(), self.0)
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Dequantises `bytes` holding `n` values of type `ty` to f32.
///
/// Returns `None` if `ty` is not supported or `n` is not a whole number of blocks; panics if
/// `bytes` is shorter than `n` values need (callers check the length first, see
/// [`super::GgufTensorInfo::byte_len`]).
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    let (block, block_bytes) = ty.block_layout()?;
    if !n.is_multiple_of(block) {
        return None;
    }
    let bytes = &bytes[..n / block * block_bytes];
    let mut out = Vec::with_capacity(n);
    match ty {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16_at(c, 0))),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact(block_bytes) {
                let d = f16_at(b, 0);
                out.extend(b[2..].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4_0 => {
            for b in bytes.chunks_exact(block_bytes) {
                let d = f16_at(b, 0);
                let qs = &b[2..];
                out.extend(qs.iter().map(|&q| ((q & 0x0f) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in bytes.chunks_exact(block_bytes) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qs = &b[4..];
                out.extend(qs.iter().map(|&q| (q & 0x0f) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_ggml() {
        assert_eq!(GgmlType::Q4_1.name(), "Q4_1");
        assert_eq!(GgmlType(14).name(), "Q6_K");
        assert_eq!(GgmlType::BF16.name(), "BF16");
        assert_eq!(GgmlType(999).name(), "unknown");
        assert!(!GgmlType(12).is_supported());
    }

    #[test]
    fn q4_0_uses_low_nibbles_first_then_high() {
        // d = 2.0 (f16 0x4000); qs[0] = 0x9F → value 0 = (15 - 8)·2 = 14, value 16 = (9 - 8)·2 = 2.
        let mut block = vec![0x00, 0x40];
        block.extend([0x9F]);
        block.extend([0x88; 15]);
        let v = dequantize(GgmlType::Q4_0, &block, 32).unwrap();
        assert_eq!(v[0], 14.0);
        assert_eq!(v[16], 2.0);
        assert!(v[1..16].iter().chain(&v[17..]).all(|&x| x == 0.0));
    }

    #[test]
    fn partial_blocks_are_rejected() {
        assert!(dequantize(GgmlType::Q8_0, &[0; 34], 31).is_none());
        assert!(dequantize(GgmlType(12), &[0; 144], 256).is_none());
    }
}
