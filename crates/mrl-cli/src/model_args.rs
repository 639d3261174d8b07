//! Options shared by every subcommand that loads a model.

use std::path::PathBuf;

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
    /// `HF_HUB_OFFLINE=1`).
    #[arg(long)]
    pub model: String,
    /// Pooling (default: the model's `1_Pooling/config.json`, else mean).
    #[arg(long, value_parser = parse_pooling)]
    pub pooling: Option<Pooling>,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Truncation length in tokens (default: `max_seq_length` of
    /// `sentence_bert_config.json`, else the model's maximum).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Backend.
    #[arg(long, default_value_t = DeviceKind::Flex)]
    pub device: DeviceKind,
}

fn parse_pooling(s: &str) -> Result<Pooling, String> {
    s.parse()
        .map_err(|e: mrl_common::CommonError| e.to_string())
}

impl ModelArgs {
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
        let out = encoder.encode(texts, self.batch_size as usize, |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        Ok(out)
    }
}
