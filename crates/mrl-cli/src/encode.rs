//! `mrl encode`: one embedding per input line, truncated to `--dim` and L2-normalised, written
//! as JSON lines (one array of floats per line, in input order).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::model_args::ModelArgs;

/// Arguments of `mrl encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text file, one sentence per line (blank lines are skipped).
    #[arg(long)]
    pub input: PathBuf,
    /// Matryoshka dim to keep (1 ..= the hidden size).
    #[arg(long, value_parser = crate::numeric::positive)]
    pub dim: usize,
    /// Output file: one JSON array per line.
    #[arg(long)]
    pub output: PathBuf,
}

/// Runs `mrl encode`.
pub fn run(args: EncodeArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let sentences: Vec<&str> = text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .collect();
    if sentences.is_empty() {
        anyhow::bail!("{} has no sentences", args.input.display());
    }
    let (encoder, _) = args.model.load()?;
    mrl_common::check_dim(args.dim, encoder.hidden_size()).context("--dim")?;
    let embeddings = args
        .model
        .encode_with_progress(&encoder, &sentences, "encoding")?;

    // Embeddings are checked finite by `encode`; the file appears whole or not at all.
    models::atomic::write_atomic_with(&args.output, |out| {
        for embedding in &embeddings {
            let unit: Vec<f32> = mrl_eval::sts::truncate_normalize(embedding, args.dim)
                .into_iter()
                .map(|v| v as f32)
                .collect();
            serde_json::to_writer(&mut *out, &unit)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
    .context("--output")?;
    eprintln!(
        "wrote {} vectors of dim {} to {}",
        embeddings.len(),
        args.dim,
        args.output.display()
    );
    Ok(())
}
