//! Options shared by every subcommand that loads a model.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use models::{EncoderOptions, Pooling, SentenceEncoder};

use mrl_common::DeviceKind;

/// Where the model is and how to run it.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A model directory (Hugging Face layout) or a Hugging Face id `org/name[@revision]`:
    /// looked up in `$MRL_SHARED/models/<name>` and the hub cache (`$HF_HUB_CACHE`,
    /// `$HF_HOME/hub`, `~/.cache/huggingface/hub`), else downloaded into it (not with
    /// `HF_HUB_OFFLINE=1`). `mrl eval --task instruct` also takes a decoder's `.gguf` file.
    #[arg(long)]
    pub model: String,
    /// Pooling (default: the model's `1_Pooling/config.json`, else mean).
    #[arg(long, value_parser = parse_pooling)]
    pub pooling: Option<Pooling>,
    /// Sentences per forward pass, ≥ 1 (default 32); with `eval --task instruct`, answers
    /// generated together, one decoding step for all (default 16).
    #[arg(long, value_parser = crate::numeric::positive)]
    pub batch_size: Option<usize>,
    /// Truncation length in tokens, ≥ 2 (default: `max_seq_length` of
    /// `sentence_bert_config.json`, else the model's maximum).
    #[arg(long, value_parser = crate::numeric::max_length)]
    pub max_length: Option<usize>,
    /// Backend.
    #[arg(long, default_value_t = DeviceKind::Flex)]
    pub device: DeviceKind,
}

fn parse_pooling(s: &str) -> Result<Pooling, String> {
    s.parse()
        .map_err(|e: mrl_common::CommonError| e.to_string())
}

/// `--batch-size` when not given.
pub const DEFAULT_BATCH_SIZE: usize = 32;

impl ModelArgs {
    /// `--batch-size`, else [`DEFAULT_BATCH_SIZE`].
    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE)
    }

    /// The encoder flags that were given (`--pooling`, `--batch-size`, `--max-length`); of
    /// these, `eval --task instruct` takes `--batch-size` only.
    pub fn encoder_flags_given(&self) -> Vec<&'static str> {
        [
            ("--pooling", self.pooling.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--max-length", self.max_length.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// Resolves, loads and returns the encoder and the directory it came from.
    pub fn load(&self) -> anyhow::Result<(SentenceEncoder, PathBuf)> {
        let dir = models::resolve::resolve_model(&self.model)?;
        let device = self.device.device()?;
        let options = EncoderOptions {
            pooling: self.pooling,
            max_length: self.max_length,
        };
        let encoder = SentenceEncoder::load(&dir, &device, &options)
            .with_context(|| format!("loading model {}", dir.display()))?;
        Ok((encoder, dir))
    }

    /// Embeds `texts` with a progress bar labelled `what`.
    pub fn encode_with_progress(
        &self,
        encoder: &SentenceEncoder,
        texts: &[&str],
        what: &str,
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        let bar = crate::progress::bar(texts.len(), what);
        let out = encoder.encode(texts, self.batch_size(), |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        Ok(out)
    }
}

/// Where a decoder is: a `.gguf` file (or any file) as it is, anything else through the one
/// model resolver (`models::resolve::resolve_model`: a directory, `$MRL_SHARED/models`, the hub
/// cache, else a download).
pub fn resolve_decoder(model: &str) -> anyhow::Result<PathBuf> {
    if Path::new(model).is_file() {
        Ok(PathBuf::from(model))
    } else {
        Ok(models::resolve::resolve_model(model)?)
    }
}
