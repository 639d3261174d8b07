//! Greedy chat generation with a Llama-family decoder, timed: prefill and per-token decode
//! throughput with the KV cache.
//!
//! ```text
//! cargo run --release -p models --example decoder_generate -- MODEL [flex|ndarray] [max_new_tokens] [prompt]
//! ```
//! `MODEL` is a `.gguf` file or a model directory (e.g. `../shared/models/SmolLM2-135M-Instruct-Q4_1`).

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use models::generation::{generate, GenerationOptions, TextGenerator};

/// The `mrl` binary's allocator (mimalloc without transparent huge pages), so this benchmark
/// measures what `mrl` runs: with glibc's, every large tensor buffer is returned to the kernel
/// and page-faulted in again (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .ok_or("usage: decoder_generate MODEL [device] [n] [prompt]")?,
    );
    #[allow(deprecated)]
    let (name, device) = match args.next().as_deref() {
        None | Some("flex") => ("flex", Device::flex()),
        Some("ndarray") => ("ndarray", Device::ndarray()),
        Some(other) => return Err(format!("unknown device {other}").into()),
    };
    let max_new_tokens: usize = args.next().map_or(Ok(64), |n| n.parse())?;
    let prompt = args
        .next()
        .unwrap_or_else(|| "Write a short paragraph about the history of Paris.".into());
    let generator = TextGenerator::load(&model, &device)?;
    let ids = generator.prompt_ids(&prompt, true)?;
    // Greedy, no stop tokens: exactly max_new_tokens steps.
    let options = GenerationOptions {
        max_new_tokens,
        ..GenerationOptions::default()
    };
    let start = Instant::now();
    let mut first = None;
    let generation = generate(&generator.model, &ids, &options, &device, |_| {
        first.get_or_insert_with(|| start.elapsed().as_secs_f64());
    })?;
    let total = start.elapsed().as_secs_f64();
    let prefill = first.unwrap_or(total);
    let decoded = generation.tokens.len().saturating_sub(1);
    println!("{}", generator.decode(&generation.tokens)?);
    println!(
        "{name}: prompt {} tokens, prefill + first token {prefill:.3} s; {decoded} more tokens in \
         {:.2} s = {:.1} tokens/s (KV cache)",
        ids.len(),
        total - prefill,
        decoded as f64 / (total - prefill)
    );
    Ok(())
}
