//! Loading Llama-family weights from a Hugging Face `model.safetensors` or a llama.cpp GGUF.
//!
//! The weight map is explicit:
//! - safetensors keys lose their `model.` prefix ([`SAFETENSORS_REMAPS`]); `lm_head.weight` keeps
//!   its name; [`SKIPPED_KEYS`] are not loaded;
//! - GGUF names are translated by [`gguf_to_hf`] (`blk.{i}.attn_q.weight` →
//!   `layers.{i}.self_attn.q_proj.weight`, …) and dequantised to f32;
//! - Linear weights are transposed from PyTorch's `[out, in]` to Burn's `[in, out]` by Burn's
//!   `PyTorchToBurnAdapter`; norms keep their `weight`;
//! - llama.cpp's `convert_hf_to_gguf.py` permutes the rows of `q_proj`/`k_proj` of `llama`
//!   models within each head, from the "rotate half" pairing `(j, j + d/2)` to adjacent pairs
//!   `(2j, 2j + 1)`; [`unpermute_rope_rows`] undoes it so one RoPE serves both sources
//!   (Qwen2/Qwen3 GGUFs are not permuted);
//! - every parameter must be found with the right shape and every checkpoint key must land on
//!   a parameter, or loading fails with [`ModelError::WeightMismatch`] naming the keys.

use std::path::Path;

use burn::module::Module;
use burn::store::{
    bridge, ApplyError, ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::{Device, TensorData};

use super::config::{LlamaConfig, LlamaVariant};
use super::model::LlamaModel;
use crate::cast::CastToF32;
use crate::error::{ModelError, Result};
use crate::finite::{check_finite_values, check_finite_weights};
use crate::gguf::GgufFile;

/// Checkpoint key → module path rewrites for safetensors.
pub const SAFETENSORS_REMAPS: &[(&str, &str)] = &[(r"^model\.", "")];

/// Module-path prefixes or suffixes of checkpoint keys that are deliberately not loaded.
pub const SKIPPED_KEYS: &[&str] = &[
    "rotary_emb.inv_freq", // a buffer recomputed from the config
];

/// Which layers of the checkpoint to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerSelection {
    /// All of them: the config's `num_hidden_layers` must match the checkpoint.
    #[default]
    All,
    /// Only the first `k` (a truncated student); the checkpoint's later layers are skipped.
    First(usize),
}

impl LayerSelection {
    fn apply(self, config: &LlamaConfig) -> Result<LlamaConfig> {
        let mut config = config.clone();
        if let LayerSelection::First(k) = self {
            if k == 0 || k > config.num_hidden_layers {
                return Err(ModelError::InvalidArgument {
                    name: "first_layers",
                    message: format!(
                        "{k} layers requested, the checkpoint has {}",
                        config.num_hidden_layers
                    ),
                });
            }
            config.num_hidden_layers = k;
        }
        Ok(config)
    }

    /// Whether a module path belongs to a layer this selection drops.
    fn drops(self, module_path: &str) -> bool {
        match self {
            LayerSelection::All => false,
            LayerSelection::First(k) => layer_index(module_path).is_some_and(|i| i >= k),
        }
    }
}

fn layer_index(module_path: &str) -> Option<usize> {
    module_path
        .strip_prefix("layers.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Translates a GGUF tensor name to the module path (`None` for a name this loader does not
/// know). `rope_freqs.weight` (Llama 3.1 frequency factors) maps to `None` too.
pub fn gguf_to_hf(name: &str) -> Option<String> {
    match name {
        "token_embd.weight" => return Some("embed_tokens.weight".into()),
        "output_norm.weight" => return Some("norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, param) = rest.rsplit_once('.')?;
    let module = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("layers.{layer}.{module}.{param}"))
}

/// Undoes llama.cpp's q/k row permutation: within each of `heads` heads, the GGUF row
/// `2j + i` is the Hugging Face row `i · head_dim/2 + j` (`i ∈ {0, 1}`).
///
/// `values` is row-major `[heads · head_dim, cols]` (use `cols = 1` for a bias).
pub fn unpermute_rope_rows(values: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0.0; values.len()];
    for h in 0..heads {
        for j in 0..half {
            for i in 0..2 {
                let src = (h * head_dim + 2 * j + i) * cols;
                let dst = (h * head_dim + i * half + j) * cols;
                out[dst..dst + cols].copy_from_slice(&values[src..src + cols]);
            }
        }
    }
    out
}

impl LlamaModel {
    /// Builds the model described by `config` (restricted by `layers`) and loads a Hugging
    /// Face `model.safetensors` into it.
    ///
    /// # Errors
    /// [`ModelError::Weights`] if the file cannot be read or parsed;
    /// [`ModelError::WeightMismatch`] naming every missing, mis-shaped and unexpected key;
    /// [`ModelError::NonFiniteWeight`] naming a tensor that holds a NaN or an infinity.
    pub fn load_safetensors(
        config: &LlamaConfig,
        weights: &Path,
        layers: LayerSelection,
        device: &Device,
    ) -> Result<Self> {
        let config = layers.apply(config)?;
        let mut store = SafetensorsStore::from_file(weights)
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true)
            .validate(false);
        for (from, to) in SAFETENSORS_REMAPS {
            store = store.with_key_remapping(*from, *to);
        }
        let mut model = config.init(device);
        let result = model
            .load_from(&mut store)
            .map_err(|e| ModelError::Weights {
                path: weights.to_path_buf(),
                message: e.to_string(),
            })?;
        let tied = config.tie_word_embeddings;
        check(result, weights, safetensors_key, |key| {
            SKIPPED_KEYS.iter().any(|s| key.ends_with(s))
                || (tied && key == "lm_head.weight")
                || layers.drops(key)
        })?;
        let model = model.map(&mut CastToF32);
        check_finite_weights(&model, weights, safetensors_key)?;
        Ok(model)
    }

    /// Builds the model described by `config` (restricted by `layers`) and loads the tensors
    /// of a parsed GGUF file, dequantised to f32.
    ///
    /// # Errors
    /// [`ModelError::Gguf`] for a tensor type that cannot be dequantised (naming it);
    /// [`ModelError::WeightMismatch`] naming every missing, mis-shaped and unknown tensor;
    /// [`ModelError::NonFiniteWeight`] naming a tensor that holds a NaN or an infinity.
    pub fn load_gguf(
        config: &LlamaConfig,
        gguf: &GgufFile,
        path: &Path,
        layers: LayerSelection,
        device: &Device,
    ) -> Result<Self> {
        let config = layers.apply(config)?;
        let permuted = config.variant == LlamaVariant::Llama;
        let mut tensors = Vec::new();
        let mut unknown = Vec::new();
        for info in &gguf.tensors {
            let Some(module_path) = gguf_to_hf(&info.name) else {
                if info.name != "rope_freqs.weight" {
                    unknown.push(info.name.clone());
                }
                continue;
            };
            if layers.drops(&module_path) {
                continue;
            }
            let (shape, mut values) =
                gguf.tensor_f32(&info.name)
                    .map_err(|source| ModelError::Gguf {
                        path: path.to_path_buf(),
                        source,
                    })?;
            check_finite_values(values.iter().copied(), path, || info.name.clone())?;
            if permuted {
                let heads = if module_path.ends_with("q_proj.weight") {
                    Some(config.num_attention_heads)
                } else if module_path.ends_with("k_proj.weight") {
                    Some(config.num_key_value_heads)
                } else {
                    None
                };
                if let Some(heads) = heads {
                    let cols = shape.iter().skip(1).product::<usize>().max(1);
                    if shape[0] == heads * config.head_dim {
                        values = unpermute_rope_rows(&values, heads, cols);
                    }
                }
            }
            tensors.push(bridge::from_data(
                TensorData::new(values, shape),
                module_path,
                None,
            ));
        }
        let mut model = config.init(device);
        let mut result = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), false);
        result.unused.extend(unknown);
        check(result, path, |key| key.to_string(), |_| false)?;
        Ok(model)
    }

    /// Loads a model from a directory or a file:
    /// - a `.gguf` file, with `config.json` beside it if present (else the GGUF metadata);
    /// - a directory with `config.json` and `model.safetensors`;
    /// - a directory with `config.json` (optional) and exactly one `*.gguf` file.
    ///
    /// Returns the config of the loaded model (with `num_hidden_layers` reduced for
    /// [`LayerSelection::First`]).
    ///
    /// # Errors
    /// [`ModelError::Io`] if no weights are found; see [`LlamaModel::load_safetensors`],
    /// [`LlamaModel::load_gguf`] and [`LlamaConfig::from_hf_json`].
    pub fn from_pretrained(
        path: &Path,
        layers: LayerSelection,
        device: &Device,
    ) -> Result<(LlamaConfig, Self)> {
        let files = CheckpointFiles::locate(path)?;
        let config_path = files.config_path();
        match files.gguf {
            Some(gguf_path) => {
                let gguf = GgufFile::open(&gguf_path)?;
                let config = if config_path.is_file() {
                    LlamaConfig::from_hf_json(&config_path)?
                } else {
                    LlamaConfig::from_gguf(&gguf, &gguf_path)?
                };
                let model = Self::load_gguf(&config, &gguf, &gguf_path, layers, device)?;
                Ok((layers.apply(&config)?, model))
            }
            None => {
                let config = LlamaConfig::from_hf_json(&config_path)?;
                let weights = files.dir.join(super::WEIGHTS_FILE);
                let model = Self::load_safetensors(&config, &weights, layers, device)?;
                Ok((layers.apply(&config)?, model))
            }
        }
    }
}

impl LlamaConfig {
    /// The config of the checkpoint that [`LlamaModel::from_pretrained`] would load from
    /// `path`, without loading its weights: `config.json` when there is one, else the GGUF
    /// metadata (which reads the GGUF file).
    ///
    /// # Errors
    /// As [`LlamaModel::from_pretrained`] for locating the files and parsing the config.
    pub fn from_pretrained(path: &Path) -> Result<Self> {
        let files = CheckpointFiles::locate(path)?;
        let config_path = files.config_path();
        match files.gguf {
            Some(gguf_path) if !config_path.is_file() => {
                LlamaConfig::from_gguf(&GgufFile::open(&gguf_path)?, &gguf_path)
            }
            _ => LlamaConfig::from_hf_json(&config_path),
        }
    }
}

/// Where a checkpoint's files are: its directory and, when the weights are a GGUF, that file.
pub(crate) struct CheckpointFiles {
    /// The model directory (the parent of a `.gguf` path).
    pub dir: std::path::PathBuf,
    /// The GGUF weights; `None` for `model.safetensors`.
    pub gguf: Option<std::path::PathBuf>,
}

impl CheckpointFiles {
    /// A `.gguf` file (its directory beside it), or a directory with `model.safetensors`
    /// (preferred) or exactly one `*.gguf`.
    ///
    /// # Errors
    /// [`ModelError::Io`] when the directory has no weights; [`ModelError::InvalidArgument`]
    /// when it has several GGUF files.
    pub fn locate(path: &Path) -> Result<Self> {
        if path.is_file() {
            return Ok(Self {
                dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                gguf: Some(path.to_path_buf()),
            });
        }
        let safetensors = path.join(super::WEIGHTS_FILE);
        let gguf = find_gguf(path)?;
        if gguf.is_none() && !safetensors.is_file() {
            return Err(ModelError::Io {
                path: safetensors,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model.safetensors and no *.gguf file in the directory",
                ),
            });
        }
        Ok(Self {
            dir: path.to_path_buf(),
            gguf: if safetensors.is_file() { None } else { gguf },
        })
    }

    /// `config.json` in the directory (which may not exist beside a GGUF).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.join(super::CONFIG_FILE)
    }
}

/// The single `*.gguf` file in `dir`, if any.
pub(crate) fn find_gguf(dir: &Path) -> Result<Option<std::path::PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut found: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(ModelError::InvalidArgument {
            name: "model",
            message: format!(
                "{} holds several GGUF files ({}); pass one of them",
                dir.display(),
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The Hugging Face safetensors key of a module path (`layers.1.mlp.up_proj.weight` →
/// `model.layers.1.mlp.up_proj.weight`; `lm_head.weight` has no prefix).
fn safetensors_key(module_path: &str) -> String {
    if module_path.starts_with("lm_head.") {
        module_path.to_string()
    } else {
        format!("model.{module_path}")
    }
}

/// Turns an [`ApplyResult`] into an error naming every problem (keys as `file_key` names
/// them), unless it is clean.
fn check(
    result: ApplyResult,
    path: &Path,
    file_key: impl Fn(&str) -> String,
    skipped: impl Fn(&str) -> bool,
) -> Result<()> {
    let unexpected: Vec<_> = result.unused.iter().filter(|k| !skipped(k)).collect();
    if result.missing.is_empty() && result.errors.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let mut details = String::new();
    for (key, _) in &result.missing {
        details.push_str(&format!("\n  missing tensor {}", file_key(key)));
    }
    for error in &result.errors {
        details.push_str(&match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "\n  mis-shaped tensor {}: the model expects {:?}, the file has {:?} \
                 (Burn layout; Linear weights are transposed)",
                file_key(path),
                expected.as_slice(),
                found.as_slice()
            ),
            other => format!("\n  {other}"),
        });
    }
    for key in unexpected {
        details.push_str(&format!("\n  unexpected tensor {}", file_key(key)));
    }
    Err(ModelError::WeightMismatch {
        path: path.to_path_buf(),
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_module_paths() {
        assert_eq!(
            gguf_to_hf("blk.12.attn_q.weight").as_deref(),
            Some("layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            gguf_to_hf("blk.0.ffn_norm.weight").as_deref(),
            Some("layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(
            gguf_to_hf("blk.3.attn_k.bias").as_deref(),
            Some("layers.3.self_attn.k_proj.bias")
        );
        assert_eq!(
            gguf_to_hf("token_embd.weight").as_deref(),
            Some("embed_tokens.weight")
        );
        assert_eq!(gguf_to_hf("blk.0.attn_qkv.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(heads, 2, d/2, cols).swapaxes(1, 2).reshape(rows, cols).
        let (heads, d, cols) = (2, 4, 3);
        let hf: Vec<f32> = (0..heads * d * cols).map(|v| v as f32).collect();
        let mut gguf = vec![0.0; hf.len()];
        for h in 0..heads {
            for i in 0..2 {
                for j in 0..d / 2 {
                    for c in 0..cols {
                        gguf[((h * d) + j * 2 + i) * cols + c] =
                            hf[((h * d) + i * d / 2 + j) * cols + c];
                    }
                }
            }
        }
        assert_ne!(gguf, hf);
        assert_eq!(unpermute_rope_rows(&gguf, heads, cols), hf);
    }

    #[test]
    fn first_layers_drops_only_later_layers() {
        let sel = LayerSelection::First(10);
        assert!(sel.drops("layers.10.mlp.up_proj.weight"));
        assert!(!sel.drops("layers.9.mlp.up_proj.weight"));
        assert!(!sel.drops("norm.weight"));
        assert!(!LayerSelection::All.drops("layers.29.mlp.up_proj.weight"));
    }
}
