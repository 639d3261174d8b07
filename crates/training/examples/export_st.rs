//! Exports a model directory, untrained, through the exporter `mrl train` uses
//! ([`training::embedding::export::export_sentence_transformer`]), for
//! `scripts/check_export_equivalence.py` to compare with the source in sentence-transformers.
//!
//! ```text
//! cargo run --release -p training --example export_st -- \
//!     ../shared/models/all-MiniLM-L6-v2 /tmp/minilm-export [--device flex|ndarray]
//! HF_HUB_OFFLINE=1 python3 scripts/check_export_equivalence.py \
//!     ../shared/models/all-MiniLM-L6-v2 /tmp/minilm-export
//! ```
//! The pooling is the source's (`1_Pooling/config.json`, else the backbone's default), as for a
//! training run without `model.pooling`.

use std::path::PathBuf;
use std::str::FromStr;

use models::Backbone;
use mrl_common::DeviceKind;
use training::embedding::export::export_sentence_transformer;

const USAGE: &str = "usage: export_st SOURCE OUT [--device flex|ndarray]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut device = DeviceKind::Flex;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--device" => {
                let value = args
                    .next()
                    .ok_or(format!("--device needs a value; {USAGE}"))?;
                device = DeviceKind::from_str(&value)?;
            }
            flag if flag.starts_with("--") => {
                return Err(format!("unknown flag {flag}; {USAGE}").into())
            }
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [source, out] = <[PathBuf; 2]>::try_from(positional)
        .map_err(|p| format!("expected 2 arguments, got {}; {USAGE}", p.len()))?;
    let device = device.device()?;
    let source = models::resolve_model(&source.to_string_lossy())?;
    let backbone = Backbone::load(&source, &device)?;
    let pooling =
        models::pooling_from_model_dir(&source)?.unwrap_or_else(|| backbone.default_pooling());
    export_sentence_transformer(&backbone, &source, pooling, &out)?;
    println!("exported {} to {}", source.display(), out.display());
    Ok(())
}
