//! One MIPIC training loop on a Hugging Face BERT encoder: `models` gives the hidden states,
//! `mrl-core` turns them into the MIPIC loss (arXiv 2604.24374) and its breakdown.
//!
//! ```sh
//! cargo run --release -p example-mipic-with-bert -- [MODEL_DIR] [STEPS]
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use models::{EncoderOptions, SentenceEncoder};
use mrl_core::{LossBreakdown, MipicLoss, MipicPreset, MipicView, Pooling};

const SENTENCES: [&str; 8] = [
    "A man is playing a guitar on stage.",
    "The cat sleeps on the warm windowsill.",
    "Stock markets fell sharply after the announcement.",
    "Children are building a sandcastle at the beach.",
    "The recipe calls for two cups of flour.",
    "A plane takes off from the runway at dawn.",
    "She is reading a novel in the library.",
    "Heavy rain flooded the streets of the city.",
];

/// The encoder and the loss are trained together (the lifts and projectors are parameters).
#[derive(Module, Debug)]
struct Trainable {
    encoder: models::BertModel,
    loss: MipicLoss,
}

fn model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::args().nth(1) {
        return Ok(PathBuf::from(dir));
    }
    let shared = std::env::var("MRL_SHARED").unwrap_or_else(|_| "../shared".to_string());
    let dir = PathBuf::from(shared).join("models/all-MiniLM-L6-v2");
    if !dir.is_dir() {
        bail!(
            "no model directory given and {} does not exist; pass MODEL_DIR or set MRL_SHARED",
            dir.display()
        );
    }
    Ok(dir)
}

fn main() -> Result<()> {
    let dir = model_dir()?;
    let steps: usize = match std::env::args().nth(2) {
        Some(s) => s
            .parse()
            .with_context(|| format!("STEPS must be an integer, got `{s}`"))?,
        None => 3,
    };
    // Training needs gradients: an autodiff device. Dropout is active on it, which is what
    // makes the two SimCSE views of the same batch differ.
    let device: Device = Device::flex().autodiff();
    let encoder = SentenceEncoder::load(&dir, &device, &EncoderOptions::default())
        .with_context(|| format!("loading the encoder from {}", dir.display()))?;
    let tokenizer = encoder.tokenizer().clone();

    // The MiniLM-L6 preset: dims 8 … 384, SIA on layers 1..=6, chain (8,1) … (384,6), α = 0.4.
    let config = MipicPreset::MiniLmL6.config();
    anyhow::ensure!(
        config.hidden_size == encoder.hidden_size(),
        "the minilm-l6 preset expects hidden size {}, the model has {}",
        config.hidden_size,
        encoder.hidden_size()
    );
    let mut model = Trainable {
        encoder: encoder
            .bert()
            .context("this example trains a BERT-family encoder")?
            .clone(),
        loss: config.try_init(&device)?,
    };
    let mut optimizer = AdamWConfig::new().with_weight_decay(0.01).init();

    let batch = tokenizer.encode_batch(&SENTENCES)?;
    for step in 0..steps {
        // Two forward passes of the same batch = two dropout views.
        let views: Vec<MipicView> = (0..2)
            .map(|_| {
                let input = batch.to_bert_input(&device);
                let mask: Tensor<2> = input.attention_mask.clone().float();
                let output = model.encoder.forward(input, false);
                MipicView::pooled(output.hidden_states, mask, Pooling::Mean)
            })
            .collect::<Result<_, _>>()?;
        let mask: Tensor<2> = batch.to_bert_input(&device).attention_mask.float();
        let breakdown = model.loss.try_forward(&views[0], &views[1], mask, step)?;

        println!("step {step}");
        for (name, value) in breakdown.to_f64() {
            println!("  {name:<24} {value:.5}");
        }
        let grads = breakdown.total().backward();
        let grads = GradientsParams::from_grads(grads, &model);
        model = optimizer.step(2e-5, model, grads);
    }
    // The trained encoder without the autodiff graph, ready for inference or export.
    let _inference_encoder = model.valid().encoder;
    Ok(())
}
