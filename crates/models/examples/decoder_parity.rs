//! Reproduces the SmolLM2 knowledge-distillation reference from the GGUF file: teacher (30
//! layers) and first-10-layers student cross-entropy over the 2597 response positions of the
//! 64 Dolly examples in `$MRL_SHARED/fixtures/smollm2_dolly64_kd_reference.json`, and the
//! teacher's forward throughput.
//!
//! ```text
//! MRL_SHARED=../shared cargo run --release -p models --example decoder_parity -- [flex|ndarray] [batch]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use models::{LayerSelection, LlamaInput, LlamaModel};
use mrl_common::log_softmax_select;

#[derive(serde::Deserialize)]
struct Reference {
    ce_t: f64,
    ce_s: f64,
    examples: Vec<Example>,
}

#[derive(serde::Deserialize)]
struct Example {
    input_ids: Vec<u32>,
    response_mask: Vec<u8>,
}

/// `(summed response CE, response positions, real tokens)` of one right-padded batch.
fn batch_ce(model: &LlamaModel, examples: &[Example], device: &Device) -> (f64, usize, usize) {
    let batch = examples.len();
    let seq = examples.iter().map(|e| e.input_ids.len()).max().unwrap();
    let mut ids = vec![2i64; batch * seq];
    let mut mask = vec![0i64; batch * seq];
    for (b, e) in examples.iter().enumerate() {
        for (t, &id) in e.input_ids.iter().enumerate() {
            ids[b * seq + t] = id as i64;
            mask[b * seq + t] = 1;
        }
    }
    let input_ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
    let attention_mask = Tensor::<2, Int>::from_data(TensorData::new(mask, [batch, seq]), device);
    let out = model.forward(
        LlamaInput {
            input_ids: input_ids.clone(),
            attention_mask,
        },
        false,
    );
    // The targets' log-probabilities as distillation's cross-entropy takes them: without the
    // full log-softmax over the vocabulary.
    let logits = out.logits.unwrap().slice([0..batch, 0..seq - 1]);
    let vocab = logits.dims()[2];
    let targets = input_ids
        .slice([0..batch, 1..seq])
        .reshape([batch * (seq - 1), 1]);
    let picked = log_softmax_select(
        logits.reshape([batch * (seq - 1), vocab]),
        targets,
        1.0,
        false,
    )
    .into_data();
    let picked = picked.as_slice::<f32>().unwrap();
    let (mut sum, mut n, mut tokens) = (0.0, 0, 0);
    for (b, e) in examples.iter().enumerate() {
        tokens += e.input_ids.len();
        for t in 1..e.input_ids.len() {
            if e.response_mask[t] == 1 {
                sum -= picked[b * (seq - 1) + t - 1] as f64;
                n += 1;
            }
        }
    }
    (sum, n, tokens)
}

/// The `mrl` binary's allocator (mimalloc without transparent huge pages), so this benchmark
/// measures what `mrl` runs: with glibc's, every large tensor buffer is returned to the kernel
/// and page-faulted in again (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    #[allow(deprecated)]
    let (name, device) = match args.next().as_deref() {
        None | Some("flex") => ("flex", Device::flex()),
        Some("ndarray") => ("ndarray", Device::ndarray()),
        Some(other) => return Err(format!("unknown device {other}").into()),
    };
    let batch: usize = args.next().map_or(Ok(8), |b| b.parse())?;
    let shared = PathBuf::from(std::env::var("MRL_SHARED").unwrap_or_else(|_| "../shared".into()));
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(
        shared.join("fixtures/smollm2_dolly64_kd_reference.json"),
    )?)?;
    let start = Instant::now();
    let (_, teacher) = LlamaModel::from_pretrained(
        &shared.join("models/SmolLM2-135M-Instruct-Q4_1"),
        LayerSelection::All,
        &device,
    )?;
    let student = teacher.clone().first_layers(10)?;
    println!(
        "{name}: loaded the GGUF in {:.2} s",
        start.elapsed().as_secs_f64()
    );

    for (label, model, want) in [
        ("teacher (30 layers)", &teacher, reference.ce_t),
        ("student (first 10)", &student, reference.ce_s),
    ] {
        let start = Instant::now();
        let (mut sum, mut n, mut tokens) = (0.0, 0, 0);
        for chunk in reference.examples.chunks(batch) {
            let (s, k, t) = batch_ce(model, chunk, &device);
            sum += s;
            n += k;
            tokens += t;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name} {label}: CE {:.5} over {n} positions (reference {want:.5}, diff {:+.5}); \
             forward + CE {secs:.2} s, {:.0} tokens/s (batch {batch})",
            sum / n as f64,
            sum / n as f64 - want,
            tokens as f64 / secs
        );
    }
    Ok(())
}
