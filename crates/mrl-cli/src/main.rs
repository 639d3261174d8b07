//! `mrl` — evaluate and encode with Matryoshka embedding models.
//!
//! One file per subcommand (`eval.rs`, `encode.rs`, …); `main` only parses and dispatches.

mod distill;
mod encode;
mod eval;
mod eval_instruct;
mod generate;
mod model_args;
mod numeric;
mod output;
mod progress;
mod train;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: a training step frees and reallocates hundreds of
/// megabytes of tensor buffers, which glibc hands back to the kernel and page-faults in again
/// (docs/benchmarks.md, "Training steps").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Matryoshka representation learning on Burn.
#[derive(Debug, Parser)]
#[command(name = "mrl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate an encoder at every Matryoshka dim (STS, a classification probe, pair
    /// classification, or all three), or a decoder on instruction following (ROUGE-L ×100 per
    /// seed).
    #[command(allow_negative_numbers = true)]
    Eval(eval::EvalArgs),
    /// Embed sentences (one per line) at one dim, truncated and L2-normalised, to JSON lines.
    #[command(allow_negative_numbers = true)]
    Encode(encode::EncodeArgs),
    /// Generate text with a Llama-family decoder (GGUF or safetensors), optionally as a chat.
    #[command(allow_negative_numbers = true)]
    Generate(generate::GenerateArgs),
    /// Fine-tune an encoder or decoder backbone with a Matryoshka objective (MRL, ESE, 2D, MIPIC) from a TOML config.
    #[command(allow_negative_numbers = true)]
    Train(train::TrainArgs),
    /// Distil a decoder teacher into a smaller student (KD), write its teacher cache, or
    /// measure a student against its teacher.
    #[command(allow_negative_numbers = true)]
    Distill(distill::DistillArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval(args) => eval::run(args),
        Command::Encode(args) => encode::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Train(args) => train::run(args),
        Command::Distill(args) => distill::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message already
/// holds (an I/O error that names its OS error and also carries it as its source).
fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let os = std::io::Error::from_raw_os_error(28);
        let err = anyhow::Error::new(models::ModelError::Write {
            path: "out.json".into(),
            source: os,
        })
        .context("--json");
        let text = message(&err);
        assert_eq!(text.matches("os error 28").count(), 1, "{text}");
        assert!(text.starts_with("--json: cannot write out.json"), "{text}");
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn eval_parses_the_documented_flags() {
        let cli = Cli::try_parse_from([
            "mrl",
            "eval",
            "--model",
            "m",
            "--task",
            "sts",
            "--data",
            "d.tsv",
            "--dims",
            "384,64,8",
            "--pooling",
            "cls",
            "--batch-size",
            "16",
            "--max-length",
            "64",
            "--device",
            "flex",
            "--json",
            "out.json",
        ])
        .unwrap();
        let Command::Eval(args) = cli.command else {
            panic!("parsed {cli:?}")
        };
        assert_eq!(args.dims, Some(numeric::DimList(vec![384, 64, 8])));
        assert_eq!(args.model.batch_size(), 16);
        assert_eq!(args.model.max_length, Some(64));
    }

    #[test]
    fn unknown_tasks_and_devices_are_rejected() {
        assert!(Cli::try_parse_from([
            "mrl", "eval", "--model", "m", "--task", "mteb", "--data", "d.tsv"
        ])
        .is_err());
        let err = Cli::try_parse_from([
            "mrl", "encode", "--model", "m", "--input", "a", "--dim", "8", "--output", "o",
            "--device", "tpu",
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown device `tpu` (expected one of: "),
            "{err}"
        );
    }
}
