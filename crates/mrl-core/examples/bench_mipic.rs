//! MIPIC loss forward + backward timing at MiniLM-L6 and BERT-base shapes.
//!
//! ```text
//! cargo run --release -p mrl-core --example bench_mipic -- [--device flex|ndarray|all]
//!     [--shape minilm|bert|all] [--iters N] [--warmup N]
//! ```
//!
//! Shapes: B = 16, m = 64 (real lengths 64 down to 41), two SimCSE views; MiniLM-L6 uses the
//! `minilm-l6` preset (D = 384, 7 hidden states), BERT-base the `bert-base` preset (D = 768,
//! 13 hidden states). Random hidden states stand in for the encoder: only the loss is timed
//! (forward, `backward()`, and reading the total back). Prints one Markdown table row per case
//! with the median and min over the timed iterations.
#![allow(deprecated)]

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use mrl_core::{MipicPreset, MipicView};

struct Args {
    devices: Vec<&'static str>,
    shapes: Vec<&'static str>,
    iters: usize,
    warmup: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        devices: vec!["flex", "ndarray"],
        shapes: vec!["minilm", "bert"],
        iters: 10,
        warmup: 2,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--device" => {
                args.devices = match value.as_str() {
                    "flex" => vec!["flex"],
                    "ndarray" => vec!["ndarray"],
                    "all" => vec!["flex", "ndarray"],
                    other => panic!("--device flex|ndarray|all, got {other}"),
                }
            }
            "--shape" => {
                args.shapes = match value.as_str() {
                    "minilm" => vec!["minilm"],
                    "bert" => vec!["bert"],
                    "all" => vec!["minilm", "bert"],
                    other => panic!("--shape minilm|bert|all, got {other}"),
                }
            }
            "--iters" => args.iters = value.parse().expect("--iters N"),
            "--warmup" => args.warmup = value.parse().expect("--warmup N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    args
}

fn device(name: &str) -> Device {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Device::flex(),
        #[cfg(feature = "ndarray")]
        "ndarray" => Device::ndarray(),
        other => panic!("device {other} is not compiled in"),
    }
}

fn main() {
    let args = parse_args();
    let (batch, len) = (16usize, 64usize);
    println!("| shape | device | hidden states | median fwd+bwd (ms) | min (ms) | iters |");
    println!("|---|---|---|---|---|---|");
    for shape in &args.shapes {
        let preset = if *shape == "minilm" {
            MipicPreset::MiniLmL6
        } else {
            MipicPreset::BertBase
        };
        let config = preset.config();
        let width = config.hidden_size;
        let n_hidden = config.chain.last().unwrap().1 + 1;
        for dev_name in &args.devices {
            let device = device(dev_name).autodiff();
            let loss = config.init(&device);
            let mask_values: Vec<f32> = (0..batch)
                .flat_map(|b| {
                    let real = len - (b * 3) % 24;
                    (0..len).map(move |j| if j < real { 1.0 } else { 0.0 })
                })
                .collect();
            let mask = Tensor::<2>::from_data(TensorData::new(mask_values, [batch, len]), &device);
            let make_view = || {
                let hs: Vec<Tensor<3>> = (0..n_hidden)
                    .map(|_| {
                        Tensor::random([batch, len, width], Distribution::Normal(0.0, 1.0), &device)
                            .require_grad()
                    })
                    .collect();
                MipicView::pooled(hs, mask.clone(), config.pooling).unwrap()
            };
            let mut times = Vec::new();
            for it in 0..args.warmup + args.iters {
                let (a, b) = (make_view(), make_view());
                let start = Instant::now();
                let out = loss.forward(&a, &b, mask.clone(), 0);
                let grads = out.total.clone().backward();
                let g = a.hidden_states[n_hidden - 1]
                    .grad(&grads)
                    .expect("gradient");
                let _: f32 = out.total.into_scalar();
                let _ = g.into_data();
                let elapsed = start.elapsed().as_secs_f64() * 1e3;
                if it >= args.warmup {
                    times.push(elapsed);
                }
            }
            times.sort_by(|x, y| x.partial_cmp(y).unwrap());
            let median = times[times.len() / 2];
            println!(
                "| {} (B{batch} m{len} D{width}) | {dev_name} | {n_hidden} | {median:.1} | {:.1} | {} |",
                if *shape == "minilm" { "MiniLM-L6" } else { "BERT-base" },
                times[0],
                args.iters
            );
        }
    }
}
