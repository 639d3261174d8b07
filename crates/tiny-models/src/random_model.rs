//! [`write_random_model`]: a randomly initialised model of any supported architecture, of a
//! caller-chosen shape, written as a Hugging Face / sentence-transformers directory that
//! [`models::SentenceEncoder::load`] reads.
//!
//! The directory layout, tokenizers and pooling are described on [`write_random_model`].

use std::path::Path;
use std::str::FromStr;

use burn::tensor::Device;
use models::atomic::write_atomic;
use models::llama::{LlamaConfig, LlamaVariant};
use models::{BertConfig, BertVariant, ModelError, Result};
use tokenizers::Tokenizer;

use crate::tiny_bert::unique_words;

/// The architectures [`write_random_model`] can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// A BERT encoder (`model_type = "bert"`), mean pooling.
    Bert,
    /// An XLM-RoBERTa encoder (`"xlm-roberta"`, BGE-M3's architecture): `pad_token_id` 1,
    /// positions from 2, one token type, CLS pooling.
    XlmRoberta,
    /// A Llama decoder (`"llama"`) with an untied output head, last-token pooling.
    Llama,
    /// A Qwen3 decoder (`"qwen3"`: per-head q/k RMSNorm) with a tied head, last-token pooling.
    Qwen3,
}

impl Arch {
    /// Every architecture, in the order above.
    pub const ALL: [Arch; 4] = [Arch::Bert, Arch::XlmRoberta, Arch::Llama, Arch::Qwen3];

    /// The `model_type` written to `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Bert => "bert",
            Arch::XlmRoberta => "xlm-roberta",
            Arch::Llama => "llama",
            Arch::Qwen3 => "qwen3",
        }
    }

    /// Whether the architecture is a decoder (causal attention, last-token pooling).
    pub fn is_decoder(self) -> bool {
        matches!(self, Arch::Llama | Arch::Qwen3)
    }

    /// The special tokens, in id order.
    fn special_tokens(self) -> &'static [&'static str] {
        match self {
            Arch::Bert => &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            Arch::XlmRoberta => &["<s>", "<pad>", "</s>", "<unk>"],
            Arch::Llama | Arch::Qwen3 => &["<unk>", "<s>", "</s>", "<pad>"],
        }
    }

    /// The smallest `vocab_size` that holds the special tokens and the words.
    pub fn min_vocab_size(self) -> usize {
        self.special_tokens().len() + unique_words().len()
    }
}

impl FromStr for Arch {
    type Err = ModelError;

    /// Parses a `model_type` (`bert`, `xlm-roberta`, `llama`, `qwen3`).
    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.model_type() == s)
            .ok_or_else(|| ModelError::InvalidArgument {
                name: "arch",
                message: format!("`{s}` (expected bert, xlm-roberta, llama or qwen3)"),
            })
    }
}

/// The size of a random model. Build it with [`ModelShape::new`] and the `with_*` setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_layers: usize,
    /// Number of (query) attention heads.
    pub num_heads: usize,
    /// Key/value heads of a decoder (grouped-query attention); `None`: as many as `num_heads`.
    /// Encoders have no such notion and refuse any other value.
    pub num_kv_heads: Option<usize>,
    /// Width of one head of a decoder; `None`: `hidden_size / num_heads`. Encoders always use
    /// `hidden_size / num_heads` and refuse any other value.
    pub head_dim: Option<usize>,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Rows of the token-embedding table, at least [`Arch::min_vocab_size`].
    pub vocab_size: usize,
    /// The longest input in tokens (for XLM-R the position table gets two more rows, since
    /// its positions start after the padding id). Default: 64.
    pub max_positions: usize,
}

impl ModelShape {
    /// A shape with `num_kv_heads = num_heads`, `head_dim = hidden_size / num_heads` and 64
    /// positions.
    pub fn new(
        hidden_size: usize,
        num_layers: usize,
        num_heads: usize,
        intermediate_size: usize,
        vocab_size: usize,
    ) -> Self {
        Self {
            hidden_size,
            num_layers,
            num_heads,
            num_kv_heads: None,
            head_dim: None,
            intermediate_size,
            vocab_size,
            max_positions: 64,
        }
    }

    /// Sets the key/value heads (decoders).
    pub fn with_kv_heads(mut self, num_kv_heads: usize) -> Self {
        self.num_kv_heads = Some(num_kv_heads);
        self
    }

    /// Sets the head width (decoders).
    pub fn with_head_dim(mut self, head_dim: usize) -> Self {
        self.head_dim = Some(head_dim);
        self
    }

    /// Sets the longest input.
    pub fn with_max_positions(mut self, max_positions: usize) -> Self {
        self.max_positions = max_positions;
        self
    }
}

fn invalid(name: &'static str, message: String) -> ModelError {
    ModelError::InvalidArgument { name, message }
}

/// Writes a randomly initialised `arch` model of `shape` to `dir` (created if missing).
///
/// The directory holds `config.json`, `model.safetensors` (F32, Hugging Face key names),
/// `tokenizer.json` and `1_Pooling/config.json`. The tokenizer is word-level over the tiny
/// vocabulary of [`crate::WORDS`] (lower-cased, split on whitespace and punctuation), with the
/// architecture's special tokens, and padded with never-produced filler tokens up to the
/// shape's `vocab_size`, so that the embedding table has the requested size:
///
/// | arch             | special tokens (ids)                                   | template         | pooling    |
/// |------------------|--------------------------------------------------------|------------------|------------|
/// | `bert`           | `[PAD]` 0, `[UNK]` 1, `[CLS]` 2, `[SEP]` 3, `[MASK]` 4 | `[CLS] $A [SEP]` | mean       |
/// | `xlm-roberta`    | `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3                | `<s> $A </s>`    | CLS        |
/// | `llama`, `qwen3` | `<unk>` 0, `<s>` 1 (bos), `</s>` 2 (eos), `<pad>` 3    | `$A </s>`        | last token |
///
/// Decoders get the end-of-sequence token appended (as Qwen3-Embedding does), so that the last
/// token, whose state is the embedding, is the same for every text.
///
/// The weights are Burn's initialisation after seeding `device` with `seed`, so one seed gives
/// one model, as long as no other thread draws random numbers on the same backend meanwhile
/// (Burn has one generator per backend).
///
/// # Errors
/// [`ModelError::InvalidArgument`] naming `vocab_size` when it is below
/// [`Arch::min_vocab_size`], or `shape` when the architecture's config rejects it (heads that
/// do not divide the hidden size, kv heads or a head width given for an encoder, …);
/// [`ModelError::Write`] / [`ModelError::Weights`] naming the file that cannot be written.
pub fn write_random_model(
    dir: &Path,
    arch: Arch,
    shape: &ModelShape,
    seed: u64,
    device: &Device,
) -> Result<()> {
    if shape.vocab_size < arch.min_vocab_size() {
        return Err(invalid(
            "vocab_size",
            format!(
                "{} is below the {} tokens of the {} tokenizer (special tokens and words)",
                shape.vocab_size,
                arch.min_vocab_size(),
                arch.model_type()
            ),
        ));
    }
    let pooling_dir = dir.join("1_Pooling");
    std::fs::create_dir_all(&pooling_dir).map_err(|source| ModelError::Write {
        path: pooling_dir.clone(),
        source,
    })?;
    let json = |v: serde_json::Value| serde_json::to_vec_pretty(&v).expect("a JSON value");
    let pooling_mode = match arch {
        Arch::Bert => "pooling_mode_mean_tokens",
        Arch::XlmRoberta => "pooling_mode_cls_token",
        Arch::Llama | Arch::Qwen3 => "pooling_mode_lasttoken",
    };
    if arch.is_decoder() {
        let config = decoder_config(arch, shape)?;
        device.seed(seed);
        config.init(device).save_pretrained(&config, dir)?;
    } else {
        let config = encoder_config(arch, shape)?;
        device.seed(seed);
        let model = config.init(device);
        write_atomic(&dir.join("config.json"), &json(config.to_hf_json()))?;
        model.save_hf_safetensors(&dir.join("model.safetensors"))?;
    }
    write_tokenizer(
        &word_tokenizer(arch, shape.vocab_size),
        &dir.join("tokenizer.json"),
    )?;
    let mut pooling = serde_json::json!({"word_embedding_dimension": shape.hidden_size});
    pooling[pooling_mode] = true.into();
    write_atomic(&pooling_dir.join("config.json"), &json(pooling))
}

/// The encoder config of `shape` for `bert` / `xlm-roberta`.
fn encoder_config(arch: Arch, shape: &ModelShape) -> Result<BertConfig> {
    if shape.num_kv_heads.is_some_and(|kv| kv != shape.num_heads) {
        return Err(invalid(
            "shape",
            format!(
                "num_kv_heads {:?} for the {} encoder (encoders have as many key/value heads \
                 as heads, {})",
                shape.num_kv_heads,
                arch.model_type(),
                shape.num_heads
            ),
        ));
    }
    if let Some(head_dim) = shape.head_dim {
        if head_dim * shape.num_heads != shape.hidden_size {
            return Err(invalid(
                "shape",
                format!(
                    "head_dim {head_dim} for the {} encoder (its heads split hidden_size {} \
                     into {} heads)",
                    arch.model_type(),
                    shape.hidden_size,
                    shape.num_heads
                ),
            ));
        }
    }
    let base = BertConfig::new(
        shape.vocab_size,
        shape.hidden_size,
        shape.num_layers,
        shape.num_heads,
        shape.intermediate_size,
    );
    let config = match arch {
        Arch::XlmRoberta => base
            .with_variant(BertVariant::XlmRoberta)
            .with_pad_token_id(1)
            .with_type_vocab_size(1)
            .with_layer_norm_eps(1e-5)
            .with_max_position_embeddings(shape.max_positions + 2),
        _ => base.with_max_position_embeddings(shape.max_positions),
    };
    config
        .validate()
        .map_err(|message| invalid("shape", message))?;
    Ok(config)
}

/// The decoder config of `shape` for `llama` / `qwen3`.
fn decoder_config(arch: Arch, shape: &ModelShape) -> Result<LlamaConfig> {
    let (variant, tied, theta) = match arch {
        Arch::Llama => (LlamaVariant::Llama, false, 10_000.0),
        _ => (LlamaVariant::Qwen3, true, 1_000_000.0),
    };
    if shape.num_heads == 0 {
        return Err(invalid("shape", "num_heads must be positive".to_string()));
    }
    let config = LlamaConfig::new(
        variant,
        shape.vocab_size,
        shape.hidden_size,
        shape.intermediate_size,
        shape.num_layers,
        shape.num_heads,
        shape.num_kv_heads.unwrap_or(shape.num_heads),
        shape
            .head_dim
            .unwrap_or(shape.hidden_size / shape.num_heads),
    )
    .with_rms_norm_eps(1e-6)
    .with_rope_theta(theta)
    .with_max_position_embeddings(shape.max_positions)
    .with_tie_word_embeddings(tied)
    .with_bos_token_id(Some(1))
    .with_eos_token_ids(vec![2]);
    config
        .validate()
        .map_err(|message| invalid("shape", message))?;
    Ok(config)
}

/// The word-level tokenizer of `arch` (special tokens, [`crate::WORDS`], then filler tokens up
/// to `vocab_size`).
///
/// # Panics
/// If `vocab_size` is below [`Arch::min_vocab_size`].
pub fn word_tokenizer(arch: Arch, vocab_size: usize) -> Tokenizer {
    let specials = arch.special_tokens();
    let words = unique_words();
    assert!(
        vocab_size >= arch.min_vocab_size(),
        "vocab_size {vocab_size} is below {}",
        arch.min_vocab_size()
    );
    let filler = vocab_size - specials.len() - words.len();
    let vocab: serde_json::Map<String, serde_json::Value> = specials
        .iter()
        .map(|s| s.to_string())
        .chain(words.iter().map(|w| w.to_string()))
        .chain((0..filler).map(|i| format!("<extra_{i}>")))
        .enumerate()
        .map(|(i, t)| (t, serde_json::Value::from(i)))
        .collect();
    let special = |token: &str| serde_json::json!({"SpecialToken": {"id": token, "type_id": 0}});
    let (a, b) = (
        serde_json::json!({"Sequence": {"id": "A", "type_id": 0}}),
        serde_json::json!({"Sequence": {"id": "B", "type_id": 0}}),
    );
    // (single template, pair template, special tokens the templates use, unk, pad)
    let (single, pair, used, unk, pad) = match arch {
        Arch::Bert => (
            vec![special("[CLS]"), a.clone(), special("[SEP]")],
            vec![special("[CLS]"), a, special("[SEP]"), b, special("[SEP]")],
            vec!["[CLS]", "[SEP]"],
            "[UNK]",
            "[PAD]",
        ),
        Arch::XlmRoberta => (
            vec![special("<s>"), a.clone(), special("</s>")],
            vec![
                special("<s>"),
                a,
                special("</s>"),
                special("</s>"),
                b,
                special("</s>"),
            ],
            vec!["<s>", "</s>"],
            "<unk>",
            "<pad>",
        ),
        Arch::Llama | Arch::Qwen3 => (
            vec![a.clone(), special("</s>")],
            vec![a, special("</s>"), b, special("</s>")],
            vec!["</s>"],
            "<unk>",
            "<pad>",
        ),
    };
    let special_tokens: serde_json::Map<String, serde_json::Value> = used
        .iter()
        .map(|t| {
            let id = specials
                .iter()
                .position(|s| s == t)
                .expect("a special token");
            (
                t.to_string(),
                serde_json::json!({"id": t, "ids": [id], "tokens": [t]}),
            )
        })
        .collect();
    let added_tokens: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(id, t)| {
            serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                               "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let pad_id = specials
        .iter()
        .position(|s| *s == pad)
        .expect("a pad token");
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": pad_id, "pad_type_id": 0, "pad_token": pad},
        "added_tokens": added_tokens,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing", "single": single, "pair": pair,
                           "special_tokens": special_tokens},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": unk}
    });
    Tokenizer::from_bytes(serde_json::to_vec(&json).expect("json")).expect("a valid tokenizer.json")
}

/// Writes `tokenizer` as `path` (atomically), naming `path` in the error.
pub(crate) fn write_tokenizer(tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    let text = tokenizer
        .to_string(false)
        .map_err(|e| ModelError::Tokenizer {
            path: path.to_path_buf(),
            message: format!("cannot serialise: {e}"),
        })?;
    write_atomic(path, text.as_bytes())
}
