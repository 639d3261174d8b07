//! [`SentenceEncoder`]: a model, its tokenizer and its pooling, loaded from one
//! sentence-transformers / Hugging Face model directory, turning texts into vectors.
//!
//! The model is a BERT-family encoder or a Llama-family decoder ([`Backbone`]); which one is
//! read from `model_type` in `config.json` (a directory with only a `*.gguf` file is a decoder).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use mrl_common::{pool, Pooling};

use crate::backbone::Backbone;
use crate::bert::{BertConfig, BertModel};
use crate::error::{ModelError, Result};
use crate::llama::{LlamaInput, LlamaModel};
use crate::pooling::pooling_from_model_dir;
use crate::st_pipeline::{read_modules, SentenceBertConfig};
use crate::tokenizer::{TextTokenizer, TOKENIZER_FILE};
use mrl_common::is_host_cpu;

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
    backbone: Backbone,
    tokenizer: TextTokenizer,
    pooling: Pooling,
    device: Device,
    dir: PathBuf,
}

impl SentenceEncoder {
    /// Loads `config.json`, the weights (`model.safetensors`, or a `*.gguf` file for a
    /// decoder), `tokenizer.json` and the pooling choice from `dir` onto `device`.
    ///
    /// Pooling: `options.pooling`, else `1_Pooling/config.json`, else mean for an encoder and
    /// last-token for a decoder. A `modules.json` must describe a pipeline this encoder
    /// reproduces (Transformer → Pooling, optionally → Normalize; see [`crate::st_pipeline`]).
    ///
    /// # Errors
    /// A [`ModelError`] naming the missing or malformed file, the module of `modules.json` that
    /// cannot be reproduced, or the offending option (`max_length` larger than the model's
    /// positions).
    pub fn load(dir: &Path, device: &Device, options: &EncoderOptions) -> Result<Self> {
        if dir.is_file() {
            return Err(ModelError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        if !dir.is_dir() {
            return Err(ModelError::NotFound {
                spec: dir.display().to_string(),
                searched: vec![crate::resolve::Place::absent(dir)],
                download: crate::resolve::NoDownload::NotAnId,
                fetch_into: None,
            });
        }
        read_modules(dir)?;
        let backbone = Backbone::load(dir, device)?;
        let max_positions = backbone.max_position_embeddings();
        let max_length = match options.max_length {
            Some(n) => n,
            None => default_max_length(dir, max_positions)?,
        };
        if max_length == 0 || max_length > max_positions {
            return Err(ModelError::InvalidArgument {
                name: "max_length",
                message: format!(
                    "{max_length} is outside 1..={max_positions} (max_position_embeddings of {})",
                    dir.join(crate::bert::CONFIG_FILE).display()
                ),
            });
        }
        let tokenizer = TextTokenizer::from_file(&dir.join(TOKENIZER_FILE), max_length)?;
        let pooling = match options.pooling {
            Some(p) => p,
            None => pooling_from_model_dir(dir)?.unwrap_or(backbone.default_pooling()),
        };
        Ok(Self {
            backbone,
            tokenizer,
            pooling,
            device: device.clone(),
            dir: dir.to_path_buf(),
        })
    }

    /// Builds an encoder around a BERT-family model already in memory.
    pub fn from_parts(
        model: BertModel,
        config: BertConfig,
        tokenizer: TextTokenizer,
        pooling: Pooling,
        device: Device,
    ) -> Self {
        Self::from_backbone(Backbone::bert(model, config), tokenizer, pooling, device)
    }

    /// Builds an encoder around any [`Backbone`] already in memory.
    pub fn from_backbone(
        backbone: Backbone,
        tokenizer: TextTokenizer,
        pooling: Pooling,
        device: Device,
    ) -> Self {
        Self {
            backbone,
            tokenizer,
            pooling,
            device,
            dir: PathBuf::new(),
        }
    }

    /// Embedding width (the model's hidden size).
    pub fn hidden_size(&self) -> usize {
        self.backbone.hidden_size()
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.backbone.num_layers()
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Truncation length in tokens.
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    /// The network.
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The BERT-family encoder, if that is the backbone.
    pub fn bert(&self) -> Option<&BertModel> {
        self.backbone.as_bert().map(|b| &b.model)
    }

    /// The Llama-family decoder, if that is the backbone.
    pub fn decoder(&self) -> Option<&LlamaModel> {
        self.backbone.as_decoder().map(|d| &d.model)
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
        match &self.backbone {
            Backbone::Bert(b) => {
                let mask = input.attention_mask.clone().float();
                let output = b.model.forward(input, false);
                Ok(pool(output.last_hidden_state(), mask, self.pooling)?)
            }
            Backbone::Decoder(d) => {
                // Right padding: positions 0.. of every row are the text's own.
                let input = LlamaInput {
                    input_ids: input.input_ids,
                    attention_mask: input.attention_mask,
                };
                d.model.embed(input, self.pooling)
            }
        }
    }

    /// [`SentenceEncoder::embed_batch`] of `texts[rows]`, read back row-major.
    fn embed_rows(&self, texts: &[&str], rows: &[usize]) -> Result<Vec<f32>> {
        let batch: Vec<&str> = rows.iter().map(|&i| texts[i]).collect();
        let values = self
            .embed_batch(&batch)?
            .into_data()
            .try_into_vec_as::<f32>()
            .expect("converted to f32");
        let width = values.len() / rows.len().max(1);
        for (row, &i) in values.chunks(width.max(1)).zip(rows) {
            let count = crate::finite::count_non_finite(row);
            if count > 0 {
                let text: String = texts[i].chars().take(40).collect();
                return Err(ModelError::NonFiniteOutput {
                    what: format!("the embedding of text {i} ({text:?})"),
                    count,
                });
            }
        }
        Ok(values)
    }

    /// How many batches [`SentenceEncoder::encode`] runs at once: one per core on the CPU
    /// backends (flex, ndarray), whose element-wise and copy kernels run on one thread, so a
    /// second batch fills the other core meanwhile; one elsewhere.
    fn batches_in_flight(&self) -> usize {
        if is_host_cpu(&self.device) {
            rayon::current_num_threads().max(1)
        } else {
            1
        }
    }

    /// Pooled, full-width, un-normalised embeddings of `texts`, in input order.
    ///
    /// Like sentence-transformers, texts are sorted by length (longest first) before batching,
    /// so that each batch pads little; `progress` is called with the number of texts finished
    /// after each batch (in the order batches finish). On the CPU backends (flex, ndarray) one
    /// batch runs per core, each on its own one-thread rayon pool, so the single-threaded
    /// kernels of one batch overlap with the other's work; elsewhere batches run one at a time.
    /// Either way every batch is the same forward pass, so the vectors do not depend on it.
    ///
    /// # Errors
    /// [`ModelError::InvalidArgument`] for `batch_size == 0`; tokenisation errors;
    /// [`ModelError::NonFiniteOutput`] naming the first text (0-based) whose embedding holds a
    /// NaN or an infinity.
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
        let chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
        let workers = self.batches_in_flight().min(chunks.len()).max(1);
        if workers == 1 {
            for chunk in &chunks {
                let values = self.embed_rows(texts, chunk)?;
                scatter(&mut out, chunk, &values);
                progress(chunk.len());
            }
            return Ok(out);
        }
        // One batch per core, each on its own one-thread rayon pool: the backend's kernels see
        // one thread, and the cores never wait on each other inside a forward pass.
        let pools = (0..workers)
            .map(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ModelError::InvalidArgument {
                name: "threads",
                message: format!("cannot start the encoding threads: {e}"),
            })?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for (w, pool) in pools.iter().enumerate() {
                let (sender, chunks) = (sender.clone(), &chunks);
                scope.spawn(move || {
                    for c in (w..chunks.len()).step_by(workers) {
                        let values = pool.install(|| self.embed_rows(texts, chunks[c]));
                        let failed = values.is_err();
                        if sender.send((c, values)).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            drop(sender);
            for (c, values) in receiver {
                let values = values?;
                scatter(&mut out, chunks[c], &values);
                progress(chunks[c].len());
            }
            Ok::<(), ModelError>(())
        })?;
        Ok(out)
    }
}

/// Writes the rows of one batch's `values` (`[rows.len(), width]`, row-major) to `out[rows[r]]`.
fn scatter(out: &mut [Vec<f32>], rows: &[usize], values: &[f32]) {
    let width = values.len() / rows.len();
    for (row, &i) in values.chunks(width).zip(rows) {
        out[i] = row.to_vec();
    }
}

/// `max_seq_length` of `sentence_bert_config.json` if present, else `max_position_embeddings`.
fn default_max_length(dir: &Path, max_positions: usize) -> Result<usize> {
    Ok(SentenceBertConfig::read(dir)?
        .and_then(|st| st.max_seq_length)
        .map_or(max_positions, |n| n.min(max_positions)))
}
