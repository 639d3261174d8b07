//! The Hugging Face export of Llama-family decoders (`LlamaModel::save_pretrained`): a random
//! model of each variant (tied and untied heads, Qwen2 biases, Qwen3 q/k norms, Llama 3 RoPE
//! scaling) loads back through `LlamaModel::from_pretrained` with the same config and the same
//! tensors bit for bit; the files use transformers' key names and layouts (the exports of the
//! transformers-written fixtures have exactly their keys and shapes); a config that does not
//! describe the model, or a directory that cannot be written, is refused with its name.

use crate::common::{tensors, TempDir};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use models::llama::{LlamaConfig, LlamaVariant, RopeScaling};
use models::{LayerSelection, LlamaInput, LlamaModel, ModelError};

/// Adds uniform noise to every parameter, so that the RMSNorm scales are not all ones.
struct Jitter;

impl ModuleMapper for Jitter {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let noise = Tensor::random(t.shape(), Distribution::Uniform(-0.5, 0.5), &t.device());
            t + noise
        })
    }
}

fn random_model(config: &LlamaConfig, seed: u64, device: &Device) -> LlamaModel {
    device.seed(seed);
    config.init(device).map(&mut Jitter)
}

/// Key → (dtype, shape) of a safetensors file, from its header.
fn header(path: &Path) -> BTreeMap<String, (String, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let json: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    json.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .map(|(k, v)| {
            let dtype = v["dtype"].as_str().unwrap().to_string();
            let shape = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k.clone(), (dtype, shape))
        })
        .collect()
}

fn logits(model: &LlamaModel, device: &Device) -> Vec<f32> {
    let ids = [3i64, 17, 9, 1, 22, 5, 0, 0];
    let mask = [1i64, 1, 1, 1, 1, 1, 0, 0];
    let input = LlamaInput {
        input_ids: Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [1, 8]), device),
        attention_mask: Tensor::<2, Int>::from_data(TensorData::new(mask.to_vec(), [1, 8]), device),
    };
    model
        .forward(input, false)
        .logits
        .unwrap()
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap()
}

fn configs() -> Vec<(&'static str, LlamaConfig)> {
    // 4 query heads over 2 key/value heads of width 4.
    let base = |variant| {
        LlamaConfig::new(variant, 40, 16, 24, 2, 4, 2, 4)
            .with_max_position_embeddings(24)
            .with_rms_norm_eps(1e-5)
            .with_bos_token_id(Some(1))
    };
    vec![
        (
            "llama, untied, Llama 3 RoPE scaling",
            base(LlamaVariant::Llama)
                .with_tie_word_embeddings(false)
                .with_rope_theta(500.0)
                .with_rope_scaling(RopeScaling::Llama3 {
                    factor: 8.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_max_position_embeddings: 8,
                })
                .with_eos_token_ids(vec![2, 7]),
        ),
        (
            "qwen3, tied",
            base(LlamaVariant::Qwen3)
                .with_tie_word_embeddings(true)
                .with_rope_theta(1e6)
                .with_eos_token_ids(vec![2]),
        ),
        (
            "qwen2, untied, linear RoPE scaling",
            base(LlamaVariant::Qwen2)
                .with_tie_word_embeddings(false)
                .with_rope_scaling(RopeScaling::Linear { factor: 2.0 })
                .with_eos_token_ids(vec![2]),
        ),
    ]
}

#[test]
fn random_models_round_trip_bit_identically() {
    let device = Device::flex();
    for (seed, (what, config)) in configs().into_iter().enumerate() {
        let model = random_model(&config, 11 + seed as u64, &device);
        let tmp = TempDir::new("llama-export");
        let dir = tmp.path().join("exported");
        model.save_pretrained(&config, &dir).unwrap();

        let (loaded_config, loaded) =
            LlamaModel::from_pretrained(&dir, LayerSelection::All, &device).unwrap();
        assert_eq!(loaded_config, config, "{what}: config");
        assert_eq!(tensors(&loaded), tensors(&model), "{what}: tensors");
        assert_eq!(
            logits(&loaded, &device),
            logits(&model, &device),
            "{what}: logits"
        );

        // Transformers' names, PyTorch layouts, F32; the head only when untied.
        let keys = header(&dir.join("model.safetensors"));
        assert!(keys.values().all(|(dtype, _)| dtype == "F32"), "{what}");
        assert_eq!(
            keys["model.layers.1.self_attn.q_proj.weight"].1,
            vec![16, 16],
            "{what}"
        );
        assert_eq!(
            keys["model.layers.0.self_attn.k_proj.weight"].1,
            vec![8, 16],
            "{what}: [kv_heads · head_dim, hidden]"
        );
        assert_eq!(
            keys["model.layers.0.mlp.down_proj.weight"].1,
            vec![16, 24],
            "{what}"
        );
        assert_eq!(keys["model.norm.weight"].1, vec![16], "{what}");
        assert_eq!(
            keys.contains_key("lm_head.weight"),
            !config.tie_word_embeddings,
            "{what}"
        );
        assert_eq!(
            keys.contains_key("model.layers.0.self_attn.q_norm.weight"),
            config.variant == LlamaVariant::Qwen3,
            "{what}"
        );
        assert_eq!(
            keys.contains_key("model.layers.0.self_attn.v_proj.bias"),
            config.variant == LlamaVariant::Qwen2,
            "{what}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(json["model_type"], config.variant.model_type(), "{what}");
        // No scratch files are left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{what}: {names:?}");
    }
}

fn fixture(variant: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/tiny_{variant}"))
}

#[test]
fn exports_of_transformers_checkpoints_have_their_keys_and_shapes() {
    let device = Device::flex();
    for variant in ["llama", "qwen2", "qwen3"] {
        let (config, model) =
            LlamaModel::from_pretrained(&fixture(variant), LayerSelection::All, &device).unwrap();
        let tmp = TempDir::new("llama-export-fixture");
        model.save_pretrained(&config, tmp.path()).unwrap();
        assert_eq!(
            header(&tmp.path().join("model.safetensors")),
            header(&fixture(variant).join("model.safetensors")),
            "{variant}"
        );
        let (again, reloaded) =
            LlamaModel::from_pretrained(tmp.path(), LayerSelection::All, &device).unwrap();
        assert_eq!(again, config, "{variant}");
        assert_eq!(tensors(&reloaded), tensors(&model), "{variant}");
    }
}

#[test]
fn a_config_that_does_not_describe_the_model_or_an_unwritable_directory_is_named() {
    let device = Device::flex();
    let (_, config) = configs().remove(1);
    let model = random_model(&config, 3, &device);
    let tmp = TempDir::new("llama-export-errors");

    let untied = config.clone().with_tie_word_embeddings(false);
    let err = model
        .save_pretrained(&untied, &tmp.path().join("a"))
        .unwrap_err();
    assert!(
        matches!(err, ModelError::InvalidArgument { name: "config", .. })
            && err.to_string().contains("tie_word_embeddings"),
        "{err}"
    );
    let wider = LlamaConfig {
        intermediate_size: 32,
        ..config.clone()
    };
    let err = model
        .save_pretrained(&wider, &tmp.path().join("a"))
        .unwrap_err();
    assert!(err.to_string().contains("intermediate_size is 32"), "{err}");
    let qwen2 = LlamaConfig {
        variant: LlamaVariant::Qwen2,
        ..config.clone()
    };
    let err = model
        .save_pretrained(&qwen2, &tmp.path().join("a"))
        .unwrap_err();
    assert!(err.to_string().contains("attention_bias"), "{err}");
    let theta = config.clone().with_rope_theta(10.0);
    let err = model
        .save_pretrained(&theta, &tmp.path().join("a"))
        .unwrap_err();
    assert!(err.to_string().contains("RoPE"), "{err}");
    assert!(
        !tmp.path().join("a").exists(),
        "nothing is written for a refused config"
    );

    // A directory under a regular file cannot be created.
    std::fs::write(tmp.path().join("file"), b"x").unwrap();
    let blocked = tmp.path().join("file").join("model");
    let err = model.save_pretrained(&config, &blocked).unwrap_err();
    assert!(
        matches!(err, ModelError::Write { .. }) && err.to_string().contains("file/model"),
        "{err}"
    );
}
