//! Batch tokenisation with a Hugging Face `tokenizer.json`: longest-in-batch padding,
//! truncation at a configurable length, attention mask and character offsets.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, PostProcessor, Tokenizer,
    TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::bert::BertInput;
use crate::error::{ModelError, Result};

/// File name of the tokenizer in a Hugging Face model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The `tokenizer.json` a path stands for: a `.json` file is the tokenizer file itself; any
/// other file (a model's `.gguf`) has it beside it, in its directory; anything else (a model
/// directory, or a path that does not exist) holds it as [`TOKENIZER_FILE`].
pub fn tokenizer_file(path: &Path) -> PathBuf {
    if path.extension().is_some_and(|e| e == "json") {
        path.to_path_buf()
    } else if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).join(TOKENIZER_FILE)
    } else {
        path.join(TOKENIZER_FILE)
    }
}

/// A `tokenizers` tokenizer set up for batched encoder input.
///
/// Whatever padding the file declares (all-MiniLM-L6-v2 ships a fixed 128) is replaced by
/// longest-in-batch padding on the right, and truncation is set to `max_length` tokens
/// (special tokens included), so token counts match sentence-transformers.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_length: usize,
    path: PathBuf,
}

/// One tokenised batch, padded to its longest member.
///
/// Row-major `[batch, seq]` buffers; `offsets[i][t]` is the character span (start, end) of token
/// `t` of text `i` in that text (`(0, 0)` for special and padding tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Number of texts.
    pub batch_size: usize,
    /// Padded length (the longest text's token count).
    pub seq_len: usize,
    /// Token ids, `[batch, seq]` row-major.
    pub input_ids: Vec<u32>,
    /// 1 for a real token, 0 for padding, `[batch, seq]` row-major.
    pub attention_mask: Vec<u32>,
    /// Segment ids, `[batch, seq]` row-major.
    pub token_type_ids: Vec<u32>,
    /// Character offsets of every token of every text.
    pub offsets: Vec<Vec<(usize, usize)>>,
}

impl TokenBatch {
    /// Number of real (non-padding) tokens of each text.
    pub fn lengths(&self) -> Vec<usize> {
        self.attention_mask
            .chunks(self.seq_len.max(1))
            .take(self.batch_size)
            .map(|row| row.iter().filter(|&&m| m != 0).count())
            .collect()
    }

    /// Token ids of text `i` without padding.
    pub fn ids(&self, i: usize) -> &[u32] {
        let row = &self.input_ids[i * self.seq_len..(i + 1) * self.seq_len];
        &row[..self.lengths()[i]]
    }

    /// The batch as encoder input tensors on `device`.
    pub fn to_bert_input(&self, device: &Device) -> BertInput {
        let shape = [self.batch_size, self.seq_len];
        let int = |v: &[u32]| {
            let data: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            Tensor::<2, Int>::from_data(TensorData::new(data, shape), device)
        };
        BertInput::new(int(&self.input_ids), int(&self.attention_mask))
            .with_token_type_ids(int(&self.token_type_ids))
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and configures longest-in-batch padding and truncation at
    /// `max_length` tokens.
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] naming the file if it cannot be read or parsed, or if
    /// `max_length` is too small for the tokenizer's special tokens.
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        let fail = |message: String| ModelError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(fail("no such file".to_string()));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| fail(e.to_string()))?;
        Self::configure(&mut inner, max_length).map_err(fail)?;
        Ok(Self {
            inner,
            max_length,
            path: path.to_path_buf(),
        })
    }

    /// Wraps an already-built tokenizer (e.g. from `Tokenizer::from_bytes`), configured as in
    /// [`TextTokenizer::from_file`].
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] if `max_length` is too small for the special tokens.
    pub fn from_tokenizer(mut inner: Tokenizer, max_length: usize) -> Result<Self> {
        Self::configure(&mut inner, max_length).map_err(|message| ModelError::Tokenizer {
            path: PathBuf::from("<in memory>"),
            message,
        })?;
        Ok(Self {
            inner,
            max_length,
            path: PathBuf::from("<in memory>"),
        })
    }

    fn configure(inner: &mut Tokenizer, max_length: usize) -> std::result::Result<(), String> {
        if max_length == 0 {
            return Err("max_length must be at least 1".to_string());
        }
        let special = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_length <= special {
            return Err(format!(
                "max_length {max_length} leaves no room for text: the tokenizer adds {special} \
                 special tokens to every sequence (use at least {})",
                special + 1
            ));
        }
        let mut padding = inner.get_padding().cloned().unwrap_or_else(|| {
            let mut p = PaddingParams::default();
            for pad in ["[PAD]", "<pad>"] {
                if let Some(id) = inner.token_to_id(pad) {
                    p.pad_id = id;
                    p.pad_token = pad.to_string();
                    break;
                }
            }
            p
        });
        padding.strategy = PaddingStrategy::BatchLongest;
        padding.direction = PaddingDirection::Right;
        padding.pad_to_multiple_of = None;
        inner.with_padding(Some(padding));
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| format!("cannot truncate at max_length {max_length}: {e}"))?;
        Ok(())
    }

    /// Longest token sequence produced (special tokens included).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The file this tokenizer was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Tokenises `texts` (with special tokens), padded to the longest and truncated to
    /// [`TextTokenizer::max_length`].
    ///
    /// # Errors
    /// [`ModelError::Encode`] if the tokenizer fails, or [`ModelError::InvalidArgument`] for an
    /// empty batch.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<TokenBatch> {
        if texts.is_empty() {
            return Err(ModelError::InvalidArgument {
                name: "texts",
                message: "cannot tokenise an empty batch".to_string(),
            });
        }
        let encodings = self
            .inner
            .encode_batch_char_offsets(texts.to_vec(), true)
            .map_err(|e| ModelError::Encode(e.to_string()))?;
        let seq_len = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut batch = TokenBatch {
            batch_size: encodings.len(),
            seq_len,
            input_ids: Vec::with_capacity(encodings.len() * seq_len),
            attention_mask: Vec::with_capacity(encodings.len() * seq_len),
            token_type_ids: Vec::with_capacity(encodings.len() * seq_len),
            offsets: Vec::with_capacity(encodings.len()),
        };
        for encoding in &encodings {
            debug_assert_eq!(encoding.len(), seq_len, "BatchLongest pads every row");
            batch.input_ids.extend_from_slice(encoding.get_ids());
            batch
                .attention_mask
                .extend_from_slice(encoding.get_attention_mask());
            batch
                .token_type_ids
                .extend_from_slice(encoding.get_type_ids());
            batch.offsets.push(encoding.get_offsets().to_vec());
        }
        Ok(batch)
    }
}
