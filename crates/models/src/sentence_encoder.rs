//! [`SentenceEncoder`]: a BERT-family model, its tokenizer and its pooling, loaded from one
//! sentence-transformers / Hugging Face model directory, turning texts into vectors.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::bert::{BertConfig, BertModel};
use crate::error::{read_json, ModelError, Result};
use crate::pooling::Pooling;
use crate::tokenizer::{TextTokenizer, TOKENIZER_FILE};

/// sentence-transformers' `sentence_bert_config.json` (the fields we read).
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// Choices that override what the model directory says.
#[derive(Debug, Clone, Default)]
pub struct EncoderOptions {
    /// Pooling; default: `1_Pooling/config.json`, else mean.
    pub pooling: Option<Pooling>,
    /// Truncation length in tokens; default: `max_seq_length` of `sentence_bert_config.json`,
    /// else `max_position_embeddings`.
    pub max_length: Option<usize>,
}

/// Texts in, pooled sentence vectors out.
#[derive(Debug)]
pub struct SentenceEncoder {
    model: BertModel,
    config: BertConfig,
    tokenizer: TextTokenizer,
    pooling: Pooling,
    device: Device,
    dir: PathBuf,
}

impl SentenceEncoder {
    /// Loads `config.json`, `model.safetensors`, `tokenizer.json` and the pooling choice from
    /// `dir` onto `device`.
    ///
    /// # Errors
    /// A [`ModelError`] naming the missing or malformed file, or the offending option
    /// (`max_length` larger than the model's positions).
    pub fn load(dir: &Path, device: &Device, options: &EncoderOptions) -> Result<Self> {
        if !dir.is_dir() {
            return Err(ModelError::NotFound {
                spec: dir.display().to_string(),
                searched: vec![dir.to_path_buf()],
            });
        }
        let (config, model) = BertModel::from_pretrained(dir, device)?;
        let max_length = match options.max_length {
            Some(n) => n,
            None => default_max_length(dir, &config)?,
        };
        if max_length == 0 || max_length > config.max_position_embeddings {
            return Err(ModelError::InvalidArgument {
                name: "max_length",
                message: format!(
                    "{max_length} is outside 1..={} (max_position_embeddings of {})",
                    config.max_position_embeddings,
                    dir.join(crate::bert::CONFIG_FILE).display()
                ),
            });
        }
        let tokenizer = TextTokenizer::from_file(&dir.join(TOKENIZER_FILE), max_length)?;
        let pooling = match options.pooling {
            Some(p) => p,
            None => Pooling::from_model_dir(dir)?.unwrap_or(Pooling::Mean),
        };
        Ok(Self {
            model,
            config,
            tokenizer,
            pooling,
            device: device.clone(),
            dir: dir.to_path_buf(),
        })
    }

    /// Builds an encoder from parts already in memory.
    pub fn from_parts(
        model: BertModel,
        config: BertConfig,
        tokenizer: TextTokenizer,
        pooling: Pooling,
        device: Device,
    ) -> Self {
        Self {
            model,
            config,
            tokenizer,
            pooling,
            device,
            dir: PathBuf::new(),
        }
    }

    /// Embedding width (the model's hidden size).
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Truncation length in tokens.
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    /// The architecture config.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The encoder.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The directory the model was loaded from (empty for [`SentenceEncoder::from_parts`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pooled, full-width, un-normalised embeddings of one batch, `[batch, hidden]`.
    ///
    /// # Errors
    /// Tokenisation errors, or an empty batch.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Tensor<2>> {
        let batch = self.tokenizer.encode_batch(texts)?;
        let input = batch.to_bert_input(&self.device);
        let mask = input.attention_mask.clone();
        let output = self.model.forward(input, false);
        Ok(self.pooling.pool(output.last_hidden_state(), mask))
    }

    /// Pooled, full-width, un-normalised embeddings of `texts`, in input order.
    ///
    /// Like sentence-transformers, texts are sorted by length (longest first) before batching,
    /// so that each batch pads little; `progress` is called with the number of texts finished
    /// after each batch.
    ///
    /// # Errors
    /// [`ModelError::InvalidArgument`] for `batch_size == 0`; tokenisation errors.
    pub fn encode(
        &self,
        texts: &[&str],
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        if batch_size == 0 {
            return Err(ModelError::InvalidArgument {
                name: "batch_size",
                message: "must be at least 1".to_string(),
            });
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].chars().count()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let pooled = self.embed_batch(&batch)?;
            let width = pooled.dims()[1];
            let values: Vec<f32> = pooled
                .into_data()
                .try_into_vec_as::<f32>()
                .expect("converted to f32");
            for (row, &i) in values.chunks(width).zip(chunk) {
                out[i] = row.to_vec();
            }
            progress(chunk.len());
        }
        Ok(out)
    }
}

/// `max_seq_length` of `sentence_bert_config.json` if present, else `max_position_embeddings`.
fn default_max_length(dir: &Path, config: &BertConfig) -> Result<usize> {
    let path = dir.join("sentence_bert_config.json");
    if path.is_file() {
        let st: SentenceBertConfig = read_json(&path)?;
        if let Some(n) = st.max_seq_length {
            return Ok(n.min(config.max_position_embeddings));
        }
    }
    Ok(config.max_position_embeddings)
}
