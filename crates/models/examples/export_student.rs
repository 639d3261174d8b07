//! Builds the "first K layers" student of a Llama-family teacher, exports it as a Hugging Face
//! directory (weights, config and the teacher's tokenizer files) and writes the student's
//! logits for a prompt, for `scripts/check_export_decoder.py` to compare with transformers.
//!
//! ```text
//! cargo run --release -p models --example export_student -- \
//!     ../shared/models/SmolLM2-135M-Instruct-Q4_1 10 /tmp/smollm2-10l \
//!     [--logits /tmp/smollm2-10l-logits.json] [--prompt TEXT] [--device flex|ndarray] [--untie-head]
//!     [--vocab ../shared/models/gpt2-tokenizer/tokenizer.json]
//! python3 scripts/check_export_decoder.py /tmp/smollm2-10l /tmp/smollm2-10l-logits.json
//! ```
//! The logits file (default: `OUT-logits.json` beside `OUT`) holds
//! `{"prompt", "input_ids", "logits": [[vocab floats] per position]}`; the prompt is tokenised
//! with the exported `tokenizer.json` without special tokens. With `--vocab`, the student gets
//! that tokenizer and an embedding made by vocabulary transplant (`models::vocab_transplant`),
//! and the export carries that tokenizer.

use std::path::PathBuf;
use std::str::FromStr;

use models::atomic::write_atomic;
use models::llama::{build_student, export_decoder, StudentInit};
use models::LlamaInput;
use mrl_common::DeviceKind;

struct Args {
    teacher: PathBuf,
    layers: usize,
    out: PathBuf,
    logits: PathBuf,
    prompt: String,
    device: DeviceKind,
    untie_head: bool,
    vocab: Option<PathBuf>,
}

const USAGE: &str = "usage: export_student TEACHER LAYERS OUT [--logits PATH] [--prompt TEXT] \
                     [--device flex|ndarray] [--untie-head] [--vocab TOKENIZER_JSON]";

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut logits = None;
    let mut prompt = "Gravity is the force that".to_string();
    let mut device = DeviceKind::Flex;
    let mut untie_head = false;
    let mut vocab = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--logits" => logits = Some(PathBuf::from(value()?)),
            "--prompt" => prompt = value()?,
            "--device" => device = DeviceKind::from_str(&value()?)?,
            "--untie-head" => untie_head = true,
            "--vocab" => vocab = Some(PathBuf::from(value()?)),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown flag {flag}; {USAGE}").into())
            }
            _ => positional.push(arg),
        }
    }
    let [teacher, layers, out] = <[String; 3]>::try_from(positional)
        .map_err(|p| format!("expected 3 arguments, got {}; {USAGE}", p.len()))?;
    let out = PathBuf::from(out);
    let logits = logits.unwrap_or_else(|| {
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push("-logits.json");
        out.with_file_name(name)
    });
    Ok(Args {
        teacher: teacher.into(),
        layers: layers
            .parse()
            .map_err(|e| format!("LAYERS `{layers}`: {e}"))?,
        out,
        logits,
        prompt,
        device,
        untie_head,
        vocab,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let device = args.device.device()?;
    let init = StudentInit::FirstLayers {
        layers: args.layers,
        untie_head: args.untie_head,
        vocab: args.vocab.clone(),
    };
    let (config, student) = build_student(&args.teacher, &init, &device)?;
    export_decoder(
        &student,
        &config,
        &args.out,
        init.tokenizer_source(&args.teacher),
    )?;
    println!(
        "exported {} layers of {} to {}",
        config.num_hidden_layers,
        args.teacher.display(),
        args.out.display()
    );

    let tokenizer_path = args.out.join("tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path)
        .map_err(|e| format!("{}: {e}", tokenizer_path.display()))?;
    let ids: Vec<u32> = tokenizer
        .encode(args.prompt.as_str(), false)
        .map_err(|e| format!("tokenising the prompt: {e}"))?
        .get_ids()
        .to_vec();
    if ids.is_empty() {
        return Err("the prompt has no tokens".into());
    }
    let seq = ids.len();
    let input = LlamaInput {
        input_ids: burn::tensor::Tensor::from_data(
            burn::tensor::TensorData::new(ids.iter().map(|&i| i as i64).collect(), [1, seq]),
            &device,
        ),
        attention_mask: burn::tensor::Tensor::ones([1, seq], &device),
    };
    let logits = student
        .forward(input, false)
        .logits
        .expect("forward computes logits")
        .into_data()
        .try_into_vec::<f32>()?;
    let vocab = config.vocab_size;
    let rows: Vec<&[f32]> = logits.chunks(vocab).collect();
    let json = serde_json::json!({
        "teacher": args.teacher.display().to_string(),
        "layers": config.num_hidden_layers,
        "prompt": args.prompt,
        "input_ids": ids,
        "logits": rows,
    });
    write_atomic(&args.logits, serde_json::to_string(&json)?.as_bytes())?;
    println!(
        "{} positions x {vocab} logits of {:?} written to {}",
        seq,
        args.prompt,
        args.logits.display()
    );
    Ok(())
}
