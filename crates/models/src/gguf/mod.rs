//! A small reader for llama.cpp's GGUF files (versions 2 and 3).
//!
//! Layout (all little-endian): magic `GGUF`, `version: u32`, `tensor_count: u64`,
//! `kv_count: u64`, then `kv_count` metadata entries (`key: string, type: u32, value`), then
//! `tensor_count` tensor infos (`name: string, n_dims: u32, ne: [u64; n_dims], type: u32,
//! offset: u64`), then padding to `general.alignment` (default 32) and the tensor data; each
//! tensor's `offset` is relative to the start of the data and a multiple of the alignment.
//! A string is `len: u64` followed by UTF-8 bytes.
//!
//! ggml lists dimensions fastest-first: `ne[0]` is the contiguous axis. A PyTorch weight of
//! shape `[out, in]` is stored with `ne = [in, out]`; [`GgufTensorInfo::shape`] returns the
//! row-major (PyTorch) order.
//!
//! Tensors are dequantised to f32 on request ([`GgufFile::tensor_f32`]) for the types in
//! [`dequant`]; any other type is a [`GgufError::UnsupportedType`] naming it.

pub mod dequant;

use std::collections::BTreeMap;
use std::path::Path;

pub use dequant::{dequantize, GgmlType};

/// Default `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// What can be wrong with a GGUF file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GgufError {
    /// The file does not start with `GGUF`.
    #[error("not a GGUF file (magic {found:?}, expected \"GGUF\")")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A GGUF version this reader does not handle.
    #[error("GGUF version {version} is not supported (only 2 and 3)")]
    UnsupportedVersion {
        /// The version in the header.
        version: u32,
    },
    /// The file ends before a field or a tensor's data.
    #[error("truncated file: {what} needs bytes {start}..{end}, the file has {len}")]
    Truncated {
        /// What was being read.
        what: String,
        /// First byte needed.
        start: u64,
        /// One past the last byte needed.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// A structurally invalid field (bad value type, non-UTF-8 string, absurd count, …).
    #[error("corrupt file: {0}")]
    Corrupt(String),
    /// A tensor of a ggml type that cannot be dequantised.
    #[error(
        "tensor `{tensor}` has type {ty}, which is not supported \
         (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"
    )]
    UnsupportedType {
        /// The tensor's name.
        tensor: String,
        /// Its ggml type.
        ty: GgmlType,
    },
    /// A tensor that is not in the file.
    #[error("no tensor named `{0}`")]
    MissingTensor(String),
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f32`.
    F32(f32),
    /// `f64`.
    F64(f64),
    /// `bool`.
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// An array of values of one type.
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`, …).
    pub name: String,
    /// ggml dimensions, fastest axis first.
    pub ne: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
}

impl GgufTensorInfo {
    /// The row-major shape (PyTorch order): `ne` reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements.
    pub fn num_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// Bytes of data, for the supported types (`None` otherwise or on overflow or a partial
    /// block).
    pub fn byte_len(&self) -> Option<u64> {
        let (block, block_bytes) = self.ty.block_layout()?;
        let n = self.num_elements();
        n.is_multiple_of(block as u64).then_some(())?;
        (n / block as u64).checked_mul(block_bytes as u64)
    }
}

/// A parsed GGUF file: metadata, tensor infos and the raw tensor data.
#[derive(Debug, Clone)]
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata, by key.
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor infos, in file order.
    pub tensors: Vec<GgufTensorInfo>,
    bytes: Vec<u8>,
    data_start: u64,
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let len = self.bytes.len() as u64;
        let start = self.pos as u64;
        let end = start.saturating_add(n);
        if end > len {
            return Err(GgufError::Truncated {
                what: what(),
                start,
                end,
                len,
            });
        }
        let slice = &self.bytes[self.pos..end as usize];
        self.pos = end as usize;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        Ok(self
            .take(N as u64, what)?
            .try_into()
            .expect("take returns N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| GgufError::Corrupt(format!("{} is not valid UTF-8", what())))
    }

    fn value(&mut self, ty: u32, what: &dyn Fn() -> String) -> Result<GgufValue, GgufError> {
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>(what)?[0]),
            1 => GgufValue::I8(self.array::<1>(what)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => GgufValue::U32(self.u32(what)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => {
                    return Err(GgufError::Corrupt(format!(
                        "{} is a bool with byte {b}",
                        what()
                    )))
                }
            },
            8 => GgufValue::String(self.string(what)?),
            9 => {
                let item_ty = self.u32(what)?;
                let len = self.u64(what)?;
                // Every item takes at least one byte: a count beyond the remaining bytes is
                // corrupt, and refusing it early avoids a huge allocation.
                let remaining = (self.bytes.len() - self.pos) as u64;
                if len > remaining {
                    return Err(GgufError::Truncated {
                        what: format!("{} ({len} array items)", what()),
                        start: self.pos as u64,
                        end: (self.pos as u64).saturating_add(len),
                        len: self.bytes.len() as u64,
                    });
                }
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(self.value(item_ty, what)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(what)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => {
                return Err(GgufError::Corrupt(format!(
                    "{} has unknown value type {other}",
                    what()
                )))
            }
        })
    }
}

impl GgufFile {
    /// Reads and parses a GGUF file (the whole file is kept in memory).
    ///
    /// # Errors
    /// [`crate::ModelError::Io`] if the file cannot be read, [`crate::ModelError::Gguf`] if it
    /// does not parse.
    pub fn open(path: &Path) -> crate::Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| crate::ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(bytes).map_err(|source| crate::ModelError::Gguf {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses a GGUF file held in memory. Every tensor's data range is checked against the
    /// file length; tensor types are checked only when a tensor is read.
    ///
    /// # Errors
    /// [`GgufError`] for a bad magic or version, a truncated header or data section, or a
    /// malformed field.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GgufError> {
        let mut c = Cursor {
            bytes: &bytes,
            pos: 0,
        };
        let magic: [u8; 4] = c.array(&|| "the magic".into())?;
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = c.u32(&|| "the version".into())?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion { version });
        }
        let tensor_count = c.u64(&|| "the tensor count".into())?;
        let kv_count = c.u64(&|| "the metadata count".into())?;
        let mut metadata = BTreeMap::new();
        for i in 0..kv_count {
            let key = c.string(&|| format!("metadata key #{i}"))?;
            let what = || format!("metadata `{key}`");
            let ty = c.u32(&what)?;
            let value = c.value(ty, &what)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::new();
        for i in 0..tensor_count {
            let name = c.string(&|| format!("tensor info #{i}"))?;
            let what = || format!("tensor info `{name}`");
            let n_dims = c.u32(&what)?;
            if n_dims > 8 {
                return Err(GgufError::Corrupt(format!(
                    "tensor `{name}` has {n_dims} dimensions"
                )));
            }
            let ne = (0..n_dims)
                .map(|_| c.u64(&what))
                .collect::<Result<Vec<_>, _>>()?;
            let ty = GgmlType(c.u32(&what)?);
            let offset = c.u64(&what)?;
            tensors.push(GgufTensorInfo {
                name,
                ne,
                ty,
                offset,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    return Err(GgufError::Corrupt(format!(
                        "general.alignment is {v:?}, not a power of two"
                    )))
                }
            },
        };
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let len = bytes.len() as u64;
        for t in &tensors {
            if !t.offset.is_multiple_of(alignment) {
                return Err(GgufError::Corrupt(format!(
                    "tensor `{}` starts at offset {}, not a multiple of the alignment {alignment}",
                    t.name, t.offset
                )));
            }
            // Unsupported types are reported when read; their size is unknown here.
            if let Some(n) = t.byte_len() {
                let start = data_start.saturating_add(t.offset);
                let end = start.saturating_add(n);
                if end > len {
                    return Err(GgufError::Truncated {
                        what: format!("the data of tensor `{}` ({})", t.name, t.ty),
                        start,
                        end,
                        len,
                    });
                }
            }
        }
        Ok(Self {
            version,
            metadata,
            tensors,
            bytes,
            data_start,
        })
    }

    /// The tensor info named `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A metadata entry.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// Reads a tensor as f32, with its row-major shape (see [`GgufTensorInfo::shape`]).
    ///
    /// # Errors
    /// [`GgufError::MissingTensor`], or [`GgufError::UnsupportedType`] naming the tensor's
    /// ggml type.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), GgufError> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
        let unsupported = || GgufError::UnsupportedType {
            tensor: name.to_string(),
            ty: info.ty,
        };
        let n_bytes = info.byte_len().ok_or_else(unsupported)?;
        // Checked against the file length in `from_bytes`.
        let start = (self.data_start + info.offset) as usize;
        let data = &self.bytes[start..start + n_bytes as usize];
        let values =
            dequantize(info.ty, data, info.num_elements() as usize).ok_or_else(unsupported)?;
        Ok((info.shape(), values))
    }
}
