//! Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p,
//! no-repeat-n-gram), stop tokens, a seed; chat prompts from the model's Jinja template.
//!
//! - [`generate`] — token ids in, token ids out, one cached forward step per new token;
//! - [`generate_batch`] — the same for many prompts at once (left-padded, one step for all);
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

/// One sequence of a [`generate_batch`] call: its prompt and the seed of its own sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRow<'a> {
    /// Token ids to continue (at least one).
    pub prompt: &'a [u32],
    /// Seed of this row's [`SplitMix64`] stream (takes the place of
    /// [`GenerationOptions::seed`]).
    pub seed: u64,
}

/// Token id written at left-padding positions (any id would do: they are masked out).
const PAD_ID: i64 = 0;

/// An empty prompt, or one that leaves no room for `max_new_tokens` in `context`, is an error.
fn check_prompt(prompt: &[u32], max_new_tokens: usize, context: usize) -> Result<()> {
    if prompt.is_empty() {
        return Err(ModelError::InvalidArgument {
            name: "prompt",
            message: "no tokens".into(),
        });
    }
    let needed = prompt.len() + max_new_tokens;
    if needed > context {
        return Err(ModelError::ContextOverflow {
            prompt_tokens: prompt.len(),
            max_new_tokens,
            needed,
            context,
        });
    }
    Ok(())
}

/// Continues `prompt` (token ids) with up to `options.max_new_tokens` tokens, calling
/// `on_token` with each new token as soon as it is chosen.
///
/// The prompt runs in one forward pass that fills the KV cache; every new token then costs one
/// single-position step. This is [`generate_batch`] with one row seeded by `options.seed`.
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
    check_prompt(prompt, options.max_new_tokens, model.max_positions)?;
    let row = BatchRow {
        prompt,
        seed: options.seed,
    };
    let mut generations =
        generate_batch(model, &[row], options, device, |_, token| on_token(token))?;
    Ok(generations.pop().expect("one generation per row"))
}

/// Continues every row's prompt together: rows share each read of the weights, which is what a
/// decoding step of a small model spends its time on.
///
/// The prompts are padded on the left to the longest (`attention_mask` 0 on the pads) and run
/// in one forward pass that fills the KV cache; then every step feeds the last token of each
/// unfinished row at once. Row `i` samples with [`sampling::next_token`] from its own
/// [`SplitMix64`] stream seeded by `rows[i].seed`, with the n-gram ban over its own prompt and
/// answer, and ends at a stop token of `options` or after `options.max_new_tokens` tokens;
/// finished rows leave the batch (their cache rows are dropped). `on_token(i, token)` is called
/// with each new token of row `i`. `options.seed` is not used.
///
/// A row's answer is the one [`generate`] gives it alone (same prompt, same seed) up to float
/// rounding: rotary attention depends only on the distance between positions, so the left
/// padding shifts no score, but the same sums are computed over different shapes. A batch of
/// one is [`generate`], exactly.
///
/// # Errors
/// [`ModelError::InvalidArgument`] when `rows` is empty or `max_new_tokens` is 0;
/// [`ModelError::NonFiniteOutput`] when a row of logits holds a NaN or an infinity;
/// [`ModelError::BatchRow`] naming the
/// row for an empty prompt or a prompt plus `max_new_tokens` beyond the context window
/// (checked for every row before anything runs).
pub fn generate_batch(
    model: &LlamaModel,
    rows: &[BatchRow<'_>],
    options: &GenerationOptions,
    device: &Device,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Generation>> {
    if rows.is_empty() {
        return Err(ModelError::InvalidArgument {
            name: "rows",
            message: "no rows to generate".into(),
        });
    }
    if options.max_new_tokens == 0 {
        return Err(ModelError::InvalidArgument {
            name: "max_new_tokens",
            message: "must be at least 1".into(),
        });
    }
    for (row, r) in rows.iter().enumerate() {
        check_prompt(r.prompt, options.max_new_tokens, model.max_positions).map_err(|e| {
            ModelError::BatchRow {
                row,
                source: Box::new(e),
            }
        })?;
    }
    let int_tensor = |values: Vec<i64>, shape: [usize; 2]| {
        Tensor::<2, Int>::from_data(TensorData::new(values, shape), device)
    };
    let mask_tensor = |masks: &[Vec<i64>]| {
        let shape = [masks.len(), masks[0].len()];
        int_tensor(masks.concat(), shape)
    };

    // Left padding: the last prompt token of every row is at position `longest - 1`.
    let longest = rows.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * longest);
    let mut masks: Vec<Vec<i64>> = Vec::with_capacity(rows.len());
    for r in rows {
        let pad = longest - r.prompt.len();
        ids.extend(std::iter::repeat_n(PAD_ID, pad));
        ids.extend(r.prompt.iter().map(|&t| i64::from(t)));
        let mut mask = vec![0; pad];
        mask.resize(longest, 1);
        masks.push(mask);
    }
    let mut cache = KvCache::new();
    let (ids, mask) = (int_tensor(ids, [rows.len(), longest]), mask_tensor(&masks));
    let mut logits = if rows.len() == 1 {
        // One row: the head over every prompt position, as `generate` has always computed it
        // (the head over the last position alone rounds differently on some backends), so a
        // single answer stays bit-identical. Batches run the head on the last position only.
        let all = model.forward_cached(ids, mask, &mut cache);
        let [_, seq, vocab] = all.dims();
        all.slice([0..1, seq - 1..seq]).reshape([1, vocab])
    } else {
        model.forward_cached_last(ids, mask, &mut cache)
    };

    let vocab = model.vocab_size();
    let mut rngs: Vec<SplitMix64> = rows.iter().map(|r| SplitMix64::new(r.seed)).collect();
    let mut histories: Vec<Vec<u32>> = rows.iter().map(|r| r.prompt.to_vec()).collect();
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); rows.len()];
    let mut stops: Vec<Option<StopReason>> = vec![None; rows.len()];
    // Batch position `b` of the cache and of `masks` holds row `active[b]`.
    let mut active: Vec<usize> = (0..rows.len()).collect();
    loop {
        let values = logits
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 logits");
        for (b, &row) in active.iter().enumerate() {
            let row_logits = &values[b * vocab..(b + 1) * vocab];
            let bad = crate::finite::count_non_finite(row_logits);
            if bad > 0 {
                return Err(ModelError::NonFiniteOutput {
                    what: format!(
                        "the next-token logits of row {row} after {} new token(s)",
                        tokens[row].len()
                    ),
                    count: bad,
                });
            }
            let next = sampling::next_token(
                row_logits,
                &histories[row],
                &options.sampling,
                &mut rngs[row],
            );
            if options.stop_tokens.contains(&next) {
                stops[row] = Some(StopReason::StopToken(next));
                continue;
            }
            tokens[row].push(next);
            histories[row].push(next);
            on_token(row, next);
            if tokens[row].len() >= options.max_new_tokens {
                stops[row] = Some(StopReason::MaxNewTokens);
            }
        }
        let keep: Vec<usize> = (0..active.len())
            .filter(|&b| stops[active[b]].is_none())
            .collect();
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            cache.retain_rows(&keep);
            active = keep.iter().map(|&b| active[b]).collect();
            masks = keep
                .iter()
                .map(|&b| std::mem::take(&mut masks[b]))
                .collect();
        }
        let next: Vec<i64> = active
            .iter()
            .map(|&row| i64::from(*tokens[row].last().expect("an unfinished row has a token")))
            .collect();
        masks.iter_mut().for_each(|m| m.push(1));
        logits = model.forward_cached_last(
            int_tensor(next, [active.len(), 1]),
            mask_tensor(&masks),
            &mut cache,
        );
    }
    Ok(tokens
        .into_iter()
        .zip(stops)
        .map(|(tokens, stop)| Generation {
            tokens,
            stop_reason: stop.expect("every row has stopped"),
        })
        .collect())
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

    /// [`generate_batch`] with the model's stop tokens added to `options.stop_tokens`: the
    /// decoded new text and the generation of every row, in the order of `rows`.
    ///
    /// # Errors
    /// See [`generate_batch`]; [`ModelError::Encode`] if decoding fails.
    pub fn generate_batch_from_ids(
        &self,
        rows: &[BatchRow<'_>],
        options: &GenerationOptions,
        on_token: impl FnMut(usize, u32),
    ) -> Result<Vec<(String, Generation)>> {
        let mut options = options.clone();
        options.stop_tokens.extend(&self.stop_tokens);
        generate_batch(&self.model, rows, &options, &self.device, on_token)?
            .into_iter()
            .map(|generation| Ok((self.decode(&generation.tokens)?, generation)))
            .collect()
    }
}
