//! `mrl generate`: continue a prompt (or answer it as a chat message) with a Llama-family
//! decoder loaded from a GGUF file or a Hugging Face directory, streaming the text to stdout.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use models::generation::{GenerationOptions, SamplingOptions, StopReason, TextGenerator};

use mrl_common::DeviceKind;

/// Arguments of `mrl generate`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct GenerateArgs {
    /// A `.gguf` file; or a directory with `config.json` and `model.safetensors` (or one
    /// `*.gguf`), `tokenizer.json` and, for `--chat`, `chat_template.jinja`; or a Hugging Face
    /// id `org/name[@revision]`, resolved like every command's `--model` (`$MRL_SHARED/models`,
    /// the hub cache, else a download).
    #[arg(long)]
    pub model: String,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt as a user message with the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// Upper bound on new tokens, ≥ 1.
    #[arg(long, default_value_t = 128, value_parser = crate::numeric::positive)]
    pub max_new_tokens: usize,
    /// 0 = greedy; otherwise the sampling temperature (a finite number ≥ 0).
    #[arg(long, default_value_t = 0.0, value_parser = crate::numeric::temperature)]
    pub temperature: f32,
    /// Sample among the k most likely tokens only (≥ 1).
    #[arg(long, value_parser = crate::numeric::positive)]
    pub top_k: Option<usize>,
    /// Nucleus sampling: the smallest set of tokens with this total probability, in (0, 1].
    #[arg(long, value_parser = crate::numeric::top_p)]
    pub top_p: Option<f32>,
    /// Never repeat an n-gram of this size (0 = off).
    #[arg(long, default_value_t = 0, value_parser = crate::numeric::non_negative)]
    pub no_repeat_ngram_size: usize,
    /// Seed of the sampler (0 ..= 2^64 − 1).
    #[arg(long, default_value_t = 0, value_parser = crate::numeric::seed)]
    pub seed: u64,
    /// Backend.
    #[arg(long, default_value_t = DeviceKind::Flex)]
    pub device: DeviceKind,
}

/// Runs `mrl generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let model = crate::model_args::resolve_decoder(&args.model)?;
    let device = args.device.device()?;
    let start = Instant::now();
    let generator = TextGenerator::load(&model, &device)
        .with_context(|| format!("loading {}", model.display()))?;
    eprintln!(
        "loaded {} ({} layers) in {:.1} s",
        model.display(),
        generator.config.num_hidden_layers,
        start.elapsed().as_secs_f64()
    );
    let options = GenerationOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingOptions {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            no_repeat_ngram_size: args.no_repeat_ngram_size,
        },
        stop_tokens: Vec::new(),
        seed: args.seed,
    };

    // Stream: print the decoded text grown by each token.
    let mut tokens = Vec::new();
    let mut printed = 0;
    let mut stdout = std::io::stdout();
    let start = Instant::now();
    let (text, generation) = generator.generate_text(&args.prompt, args.chat, &options, |t| {
        tokens.push(t);
        if let Ok(text) = generator.decode(&tokens) {
            // Only print up to a char boundary that is stable (a partial UTF-8 sequence decodes
            // to U+FFFD and is completed by a later token).
            let stable = text.trim_end_matches('\u{FFFD}');
            if stable.len() > printed && stable.is_char_boundary(printed) {
                let _ = write!(stdout, "{}", &stable[printed..]);
                let _ = stdout.flush();
                printed = stable.len();
            }
        }
    })?;
    if text.len() > printed && text.is_char_boundary(printed) {
        print!("{}", &text[printed..]);
    }
    println!();
    let secs = start.elapsed().as_secs_f64();
    let why = match generation.stop_reason {
        StopReason::StopToken(t) => format!("stop token {t}"),
        StopReason::MaxNewTokens => "max new tokens".to_string(),
    };
    eprintln!(
        "{} tokens in {secs:.2} s ({:.1} tokens/s, prompt included), stopped at {why}",
        generation.tokens.len(),
        generation.tokens.len() as f64 / secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: GenerateArgs,
    }

    #[test]
    fn parses_the_documented_flags() {
        let w = Wrapper::try_parse_from([
            "generate",
            "--model",
            "m.gguf",
            "--prompt",
            "What is the capital of France?",
            "--chat",
            "--max-new-tokens",
            "16",
            "--temperature",
            "0.7",
            "--seed",
            "3",
            "--top-p",
            "0.9",
        ])
        .unwrap();
        assert!(w.args.chat);
        assert_eq!(w.args.max_new_tokens, 16);
        assert_eq!(w.args.temperature, 0.7);
        assert_eq!(w.args.seed, 3);
        assert_eq!(w.args.top_p, Some(0.9));
        assert!(Wrapper::try_parse_from(["generate", "--model", "m"]).is_err());
    }

    #[test]
    fn bad_sampling_flags_are_rejected_when_parsed() {
        for (flag, value) in [
            ("--top-p", "1.5"),
            ("--temperature", "-0.5"),
            ("--max-new-tokens", "0"),
            ("--top-k", "0"),
            ("--seed", "-1"),
        ] {
            let err =
                Wrapper::try_parse_from(["generate", "--model", "m", "--prompt", "x", flag, value])
                    .unwrap_err()
                    .to_string();
            assert!(err.contains(flag) && err.contains(value), "{err}");
        }
    }
}
