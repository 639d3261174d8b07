//! Encode throughput (sentences/s) of a sentence encoder on one Burn device.
//!
//! Protocol of `docs/benchmarks.md`: the distinct sentences of STS-B test (both columns, file
//! order), batch 32, max length 64, mean pooling; model loading is not timed, tokenisation is.
//!
//! ```text
//! cargo run --release -p models --example bench_encode -- \
//!     --model ../shared/models/all-MiniLM-L6-v2 --data ../shared/data/stsb_test.tsv \
//!     --device flex --rounds 3
//! ```
//! Prints one JSON object per round: `{"device":"flex","round":0,"sentences":..,"seconds":..,
//! "sentences_per_s":..}`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use models::{EncoderOptions, SentenceEncoder};

struct Args {
    model: PathBuf,
    data: PathBuf,
    device: String,
    batch_size: usize,
    max_length: usize,
    rounds: usize,
    warmup: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: PathBuf::from("../shared/models/all-MiniLM-L6-v2"),
        data: PathBuf::from("../shared/data/stsb_test.tsv"),
        device: "flex".to_string(),
        batch_size: 32,
        max_length: 64,
        rounds: 3,
        warmup: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => args.model = value().into(),
            "--data" => args.data = value().into(),
            "--device" => args.device = value(),
            "--batch-size" => args.batch_size = value().parse().expect("--batch-size: integer"),
            "--max-length" => args.max_length = value().parse().expect("--max-length: integer"),
            "--rounds" => args.rounds = value().parse().expect("--rounds: integer"),
            "--warmup" => args.warmup = value().parse().expect("--warmup: integer"),
            other => panic!(
                "unknown flag {other}; flags: --model --data --device --batch-size --max-length --rounds --warmup"
            ),
        }
    }
    args
}

#[allow(deprecated)]
fn device(name: &str) -> Device {
    match name {
        "flex" => Device::flex(),
        "ndarray" => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(Default::default()),
        other => panic!(
            "unknown device {other} (flex, ndarray{})",
            if cfg!(feature = "wgpu") { ", wgpu" } else { "" }
        ),
    }
}

/// The distinct sentences of an STS TSV (both columns, first-seen order).
fn sts_sentences(path: &PathBuf) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        for s in line.split('\t').skip(1) {
            if seen.insert(s.to_string()) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// The `mrl` binary's allocator (mimalloc without transparent huge pages), so this benchmark
/// measures what `mrl` runs: with glibc's, every large tensor buffer is returned to the kernel
/// and page-faulted in again (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = parse_args();
    let sentences = sts_sentences(&args.data);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let device = device(&args.device);
    let options = EncoderOptions {
        pooling: None,
        max_length: Some(args.max_length),
    };
    let encoder =
        SentenceEncoder::load(&args.model, &device, &options).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..args.warmup {
        encoder
            .encode(
                &texts[..texts.len().min(4 * args.batch_size)],
                args.batch_size,
                |_| {},
            )
            .expect("warm-up encode");
    }
    for round in 0..args.rounds {
        let start = Instant::now();
        let out = encoder
            .encode(&texts, args.batch_size, |_| {})
            .expect("encode");
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(out.len(), texts.len());
        println!(
            "{{\"device\":\"{}\",\"round\":{round},\"sentences\":{},\"seconds\":{seconds:.3},\"sentences_per_s\":{:.1}}}",
            args.device,
            texts.len(),
            texts.len() as f64 / seconds
        );
    }
}
