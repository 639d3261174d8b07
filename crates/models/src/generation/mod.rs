//! Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p,
//! no-repeat-n-gram), stop tokens, a seed; chat prompts from the model's Jinja template.
//!
//! - [`generate`] — token ids in, token ids out, one cached forward step per new token;
//! - [`TextGenerator`] — a decoder with its tokenizer and chat template: text in, text out;
//! - [`sampling`] — the per-step choice of the next token;
//! - [`chat`] — chat templates.

pub mod chat;
pub mod sampling;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use mrl_common::SplitMix64;
use tokenizers::Tokenizer;

pub use chat::{ChatMessage, ChatTemplate};
pub use sampling::SamplingOptions;

use crate::error::{ModelError, Result};
use crate::llama::{KvCache, LayerSelection, LlamaConfig, LlamaModel};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOptions {
    /// Upper bound on new tokens.
    pub max_new_tokens: usize,
    /// How each token is chosen.
    pub sampling: SamplingOptions,
    /// Generation ends (without emitting it) at any of these tokens.
    pub stop_tokens: Vec<u32>,
    /// Seed of the sampler (unused when greedy).
    pub seed: u64,
}

impl Default for GenerationOptions {
    /// 128 greedy tokens, no stop tokens, seed 0.
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            sampling: SamplingOptions::default(),
            stop_tokens: Vec::new(),
            seed: 0,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop token was produced.
    StopToken(u32),
    /// `max_new_tokens` were produced.
    MaxNewTokens,
}

/// The result of [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// New tokens (without the prompt and without the stop token).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub stop_reason: StopReason,
}

/// The last position's logits of `[1, seq, vocab]` as a vector.
fn last_row(logits: Tensor<3>) -> Vec<f32> {
    let [_, seq, vocab] = logits.dims();
    logits
        .slice([0..1, seq - 1..seq])
        .reshape([vocab])
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 logits")
}

/// Continues `prompt` (token ids) with up to `options.max_new_tokens` tokens, calling
/// `on_token` with each new token as soon as it is chosen.
///
/// The prompt runs in one forward pass that fills the KV cache; every new token then costs one
/// single-position step.
///
/// # Errors
/// [`ModelError::InvalidArgument`] for an empty prompt; [`ModelError::ContextOverflow`] when
/// the prompt plus `max_new_tokens` does not fit the context window.
pub fn generate(
    model: &LlamaModel,
    prompt: &[u32],
    options: &GenerationOptions,
    device: &Device,
    mut on_token: impl FnMut(u32),
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(ModelError::InvalidArgument {
            name: "prompt",
            message: "no tokens".into(),
        });
    }
    let context = model.max_positions;
    let needed = prompt.len() + options.max_new_tokens;
    if needed > context {
        return Err(ModelError::ContextOverflow {
            prompt_tokens: prompt.len(),
            max_new_tokens: options.max_new_tokens,
            needed,
            context,
        });
    }
    let mut rng = SplitMix64::new(options.seed);
    let mut cache = KvCache::new();
    let ids = |tokens: &[u32]| {
        let data: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        Tensor::<2, Int>::from_data(TensorData::new(data, [1, tokens.len()]), device)
    };
    let ones = |len: usize| Tensor::<2, Int>::ones([1, len], device);
    let mut logits = last_row(model.forward_cached(ids(prompt), ones(prompt.len()), &mut cache));
    let mut history = prompt.to_vec();
    let mut tokens = Vec::new();
    loop {
        let next = sampling::next_token(&logits, &history, &options.sampling, &mut rng);
        if options.stop_tokens.contains(&next) {
            return Ok(Generation {
                tokens,
                stop_reason: StopReason::StopToken(next),
            });
        }
        tokens.push(next);
        history.push(next);
        on_token(next);
        if tokens.len() >= options.max_new_tokens {
            return Ok(Generation {
                tokens,
                stop_reason: StopReason::MaxNewTokens,
            });
        }
        logits = last_row(model.forward_cached(ids(&[next]), ones(cache.len + 1), &mut cache));
    }
}

/// A decoder with its tokenizer and (optional) chat template.
#[derive(Debug)]
pub struct TextGenerator {
    /// The model.
    pub model: LlamaModel,
    /// Its config.
    pub config: LlamaConfig,
    /// `tokenizer.json`.
    pub tokenizer: Tokenizer,
    /// The chat template, if the model has one.
    pub template: Option<ChatTemplate>,
    /// Tokens that end a reply: the config's EOS ids and the tokenizer config's `eos_token`.
    pub stop_tokens: Vec<u32>,
    tokenizer_path: PathBuf,
    device: Device,
}

impl TextGenerator {
    /// Loads a model (see [`LlamaModel::from_pretrained`]: a directory or a `.gguf` file) with
    /// the `tokenizer.json`, chat template and `tokenizer_config.json` of its directory.
    ///
    /// # Errors
    /// See [`LlamaModel::from_pretrained`]; [`ModelError::Tokenizer`] if `tokenizer.json`
    /// is missing or invalid.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (config, model) = LlamaModel::from_pretrained(path, LayerSelection::All, device)?;
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        let tokenizer_path = dir.join(crate::tokenizer::TOKENIZER_FILE);
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| ModelError::Tokenizer {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        let template = ChatTemplate::from_model_dir(&dir)?;
        let mut stop_tokens = config.eos_token_ids.clone();
        let tokenizer_config = dir.join("tokenizer_config.json");
        if tokenizer_config.is_file() {
            let json: serde_json::Value = crate::error::read_json(&tokenizer_config)?;
            if let Some(id) = json
                .get("eos_token")
                .and_then(|t| t.as_str())
                .and_then(|t| tokenizer.token_to_id(t))
            {
                if !stop_tokens.contains(&id) {
                    stop_tokens.push(id);
                }
            }
        }
        Ok(Self {
            model,
            config,
            tokenizer,
            template,
            stop_tokens,
            tokenizer_path,
            device: device.clone(),
        })
    }

    /// The token ids of `prompt`: rendered as one user message with the chat template and
    /// the assistant header when `chat`, else the raw text with the tokenizer's special tokens.
    ///
    /// # Errors
    /// [`ModelError::InvalidArgument`] when `chat` but the model has no template;
    /// [`ModelError::Encode`] if tokenisation fails.
    pub fn prompt_ids(&self, prompt: &str, chat: bool) -> Result<Vec<u32>> {
        let (text, special) = if chat {
            let template = self
                .template
                .as_ref()
                .ok_or_else(|| ModelError::InvalidArgument {
                    name: "chat",
                    message: format!(
                        "no {} or chat_template in tokenizer_config.json beside {}",
                        chat::CHAT_TEMPLATE_FILE,
                        self.tokenizer_path.display()
                    ),
                })?;
            // transformers tokenises a rendered chat without adding special tokens.
            (
                template.render(&[ChatMessage::new("user", prompt)], true)?,
                false,
            )
        } else {
            (prompt.to_string(), true)
        };
        let encoding = self
            .tokenizer
            .encode(text, special)
            .map_err(|e| ModelError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The token ids of `text` exactly as written: no chat template and no special tokens
    /// (no BOS or EOS, whatever the tokenizer's post-processor would add) — transformers'
    /// `tokenizer(text, add_special_tokens=False)`, how instruction-tuning templates such as
    /// `### Instruction:` prompts are tokenised.
    ///
    /// # Errors
    /// [`ModelError::Encode`] if tokenisation fails.
    pub fn plain_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ModelError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The context window in tokens (prompt plus generated tokens).
    pub fn context_length(&self) -> usize {
        self.model.max_positions
    }

    /// Decodes token ids to text, without special tokens.
    ///
    /// # Errors
    /// [`ModelError::Encode`] if decoding fails.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| ModelError::Encode(e.to_string()))
    }

    /// Generates a reply to `prompt` (see [`TextGenerator::prompt_ids`]), stopping at the
    /// model's stop tokens in addition to `options.stop_tokens`.
    ///
    /// # Errors
    /// See [`TextGenerator::prompt_ids`] and [`generate`].
    pub fn generate_text(
        &self,
        prompt: &str,
        chat: bool,
        options: &GenerationOptions,
        on_token: impl FnMut(u32),
    ) -> Result<(String, Generation)> {
        let ids = self.prompt_ids(prompt, chat)?;
        self.generate_from_ids(&ids, options, on_token)
    }

    /// Continues the token ids `prompt` (from [`TextGenerator::prompt_ids`] or
    /// [`TextGenerator::plain_ids`]), stopping at the model's stop tokens in addition to
    /// `options.stop_tokens`; returns the decoded new text and the generation.
    ///
    /// # Errors
    /// See [`generate`]; [`ModelError::Encode`] if decoding fails.
    pub fn generate_from_ids(
        &self,
        prompt: &[u32],
        options: &GenerationOptions,
        on_token: impl FnMut(u32),
    ) -> Result<(String, Generation)> {
        let mut options = options.clone();
        options.stop_tokens.extend(&self.stop_tokens);
        let generation = generate(&self.model, prompt, &options, &self.device, on_token)?;
        Ok((self.decode(&generation.tokens)?, generation))
    }
}
