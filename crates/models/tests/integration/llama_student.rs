//! Distillation students (`models::llama::build_student`) from tiny random teachers written by
//! `tiny-models` (a Llama with an untied head, a Qwen3 with a tied one), on ndarray and flex:
//! the first-layers student is the teacher's `first_layers(k)` (same tensors, same logits), an
//! untied head starts as a copy of the embedding and then trains on its own, a fresh student
//! has the requested shapes, the teacher's vocabulary / RoPE / ids, a seeded N(0, 0.02²)
//! initialisation and a near-uniform start (loss ≈ ln V); bad recipes are refused by field
//! name. Once on the shared SmolLM2 GGUF (ignored without `MRL_SHARED`): the 10-layer student's
//! logits are the teacher's `first_layers(10)` logits.

use crate::common::{devices, tensors, TempDir};

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use models::llama::{build_student, LlamaVariant, StudentInit, FRESH_INIT_STD};
use models::{LayerSelection, LlamaConfig, LlamaInput, LlamaModel, ModelError};
use tiny_models::{write_random_model, Arch, ModelShape};

const LAYERS: usize = 3;

fn vocab() -> usize {
    Arch::Llama
        .min_vocab_size()
        .max(Arch::Qwen3.min_vocab_size())
        + 5
}

/// A random teacher: `Arch::Llama` has an untied head, `Arch::Qwen3` a tied one.
fn teacher(arch: Arch, tmp: &TempDir, device: &Device) -> PathBuf {
    let dir = tmp.path().join(arch.model_type());
    let shape = ModelShape::new(16, LAYERS, 4, 24, vocab()).with_kv_heads(2);
    write_random_model(&dir, arch, &shape, 7, device).unwrap();
    dir
}

fn input(device: &Device) -> LlamaInput {
    let ids = [3i64, 17, 9, 1, 22, 5, 8, 0, 4, 11, 30, 2, 0, 0];
    let mask = [1i64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    LlamaInput {
        input_ids: Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [2, 7]), device),
        attention_mask: Tensor::<2, Int>::from_data(TensorData::new(mask.to_vec(), [2, 7]), device),
    }
}

fn logits(model: &LlamaModel, device: &Device) -> Vec<f32> {
    model
        .forward(input(device), false)
        .logits
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Mean next-token cross-entropy over the real next tokens of [`input`].
fn next_token_ce(model: &LlamaModel, device: &Device) -> Tensor<1> {
    let input = input(device);
    let [batch, seq] = input.input_ids.dims();
    let ids = input.input_ids.clone();
    let valid = input
        .attention_mask
        .clone()
        .slice([0..batch, 1..seq])
        .float();
    let logits = model.forward(input, false).logits.unwrap();
    let log_probs = log_softmax(logits.slice([0..batch, 0..seq - 1]), 2);
    let picked = log_probs
        .gather(2, ids.slice([0..batch, 1..seq]).unsqueeze_dim::<3>(2))
        .squeeze_dim::<2>(2);
    (picked * valid.clone()).sum().neg() / valid.sum()
}

fn first(layers: usize, untie_head: bool) -> StudentInit {
    StudentInit::FirstLayers {
        layers,
        untie_head,
        vocab: None,
    }
}

fn fresh(tie_head: bool, seed: u64) -> StudentInit {
    StudentInit::Fresh {
        layers: 2,
        hidden_size: 24,
        intermediate_size: 40,
        attention_heads: 6,
        kv_heads: 2,
        tie_head,
        seed,
    }
}

#[test]
fn the_first_layers_student_is_the_teachers_first_layers() {
    for (name, device) in devices() {
        let tmp = TempDir::new("student-first");
        for arch in [Arch::Llama, Arch::Qwen3] {
            let dir = teacher(arch, &tmp, &device);
            let (teacher_config, full) =
                LlamaModel::from_pretrained(&dir, LayerSelection::All, &device).unwrap();
            let truncated = full.first_layers(2).unwrap();
            let (config, student) = build_student(&dir, &first(2, false), &device).unwrap();
            let what = format!("{name} {}", arch.model_type());
            assert_eq!(
                config,
                LlamaConfig {
                    num_hidden_layers: 2,
                    ..teacher_config
                },
                "{what}"
            );
            assert_eq!(student.num_layers(), 2, "{what}");
            assert_eq!(tensors(&student), tensors(&truncated), "{what}");
            assert_eq!(
                logits(&student, &device),
                logits(&truncated, &device),
                "{what}"
            );
            // All the layers is allowed too.
            let (config, _) = build_student(&dir, &first(LAYERS, false), &device).unwrap();
            assert_eq!(config.num_hidden_layers, LAYERS, "{what}");
        }
    }
}

#[test]
fn an_untied_head_starts_as_the_embedding_and_trains_apart_from_it() {
    for (name, device) in devices() {
        let device = device.autodiff();
        let tmp = TempDir::new("student-untie");
        let dir = teacher(Arch::Qwen3, &tmp, &device);
        let (tied_config, tied) = build_student(&dir, &first(2, false), &device).unwrap();
        assert!(
            tied_config.tie_word_embeddings && tied.lm_head.is_none(),
            "{name}"
        );
        let (config, student) = build_student(&dir, &first(2, true), &device).unwrap();
        assert!(!config.tie_word_embeddings, "{name}");
        let head = student.lm_head.as_ref().expect("an lm_head");
        assert_ne!(head.weight.id, student.embed_tokens.weight.id, "{name}");
        let embedding_t = || {
            student
                .embed_tokens
                .weight
                .val()
                .transpose()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let head_values = || head.weight.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(
            head_values(),
            embedding_t(),
            "{name}: a copy, [hidden, vocab]"
        );
        // Same function as the tied model (up to the order of the sums of the two matmuls).
        let diff = max_abs_diff(&logits(&student, &device), &logits(&tied, &device));
        assert!(diff < 1e-5, "{name}: {diff}");

        // One AdamW step moves the head and the embedding differently.
        let loss = next_token_ce(&student, &device);
        let grads = GradientsParams::from_grads(loss.backward(), &student);
        let mut optim = AdamWConfig::new().init();
        let stepped = optim.step(1e-2, student.clone(), grads);
        let head = stepped.lm_head.as_ref().unwrap().weight.val();
        let embedding_t = stepped.embed_tokens.weight.val().transpose();
        let apart = (head.clone() - embedding_t)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(
            apart > 1e-3,
            "{name}: head and embedding still equal ({apart})"
        );
        let moved = (head - student.lm_head.as_ref().unwrap().weight.val())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(moved > 1e-3, "{name}: the head did not train ({moved})");

        // The export says so, and loads back with its own lm_head.
        stepped
            .save_pretrained(&config, &tmp.path().join("untied"))
            .unwrap();
        let (reloaded, model) =
            LlamaModel::from_pretrained(&tmp.path().join("untied"), LayerSelection::All, &device)
                .unwrap();
        assert!(
            !reloaded.tie_word_embeddings && model.lm_head.is_some(),
            "{name}"
        );
    }
}

#[test]
fn untie_head_on_an_untied_teacher_keeps_its_head() {
    let (_, device) = devices().remove(1);
    let tmp = TempDir::new("student-untied-teacher");
    let dir = teacher(Arch::Llama, &tmp, &device);
    let (_, full) = LlamaModel::from_pretrained(&dir, LayerSelection::All, &device).unwrap();
    for untie_head in [false, true] {
        let (config, student) = build_student(&dir, &first(1, untie_head), &device).unwrap();
        assert!(!config.tie_word_embeddings);
        assert_eq!(
            tensors(&student),
            tensors(&full.clone().first_layers(1).unwrap()),
            "untie_head = {untie_head}"
        );
    }
}

/// Every float parameter's values, rank and module path.
#[derive(Default)]
struct Params {
    path: Vec<String>,
    found: Vec<(String, usize, Vec<f32>)>,
}

impl ModuleVisitor for Params {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().try_to_vec::<f32>().unwrap();
        self.found.push((self.path.join("."), D, values));
    }
}

#[test]
fn a_fresh_student_has_the_requested_shapes_and_a_seeded_small_init() {
    let tmp = TempDir::new("student-fresh");
    let mut per_device = Vec::new();
    for (name, device) in devices() {
        let dir = teacher(Arch::Qwen3, &tmp, &device);
        let teacher_config = LlamaConfig::from_pretrained(&dir).unwrap();
        // Burn's own generator is re-seeded in between: the student does not depend on it.
        device.seed(1);
        let (config, student) = build_student(&dir, &fresh(true, 5), &device).unwrap();
        device.seed(2);
        let (_, again) = build_student(&dir, &fresh(true, 5), &device).unwrap();
        assert_eq!(tensors(&again), tensors(&student), "{name}: same seed");
        let (_, other) = build_student(&dir, &fresh(true, 6), &device).unwrap();
        assert_ne!(tensors(&other), tensors(&student), "{name}: other seed");

        assert_eq!(config.variant, LlamaVariant::Llama, "{name}");
        assert_eq!(
            (
                config.num_hidden_layers,
                config.hidden_size,
                config.intermediate_size
            ),
            (2, 24, 40)
        );
        assert_eq!(
            (
                config.num_attention_heads,
                config.num_key_value_heads,
                config.head_dim
            ),
            (6, 2, 4)
        );
        assert_eq!(config.vocab_size, teacher_config.vocab_size);
        assert_eq!(
            (
                config.rope_theta,
                config.rms_norm_eps,
                config.max_position_embeddings
            ),
            (
                teacher_config.rope_theta,
                teacher_config.rms_norm_eps,
                teacher_config.max_position_embeddings
            )
        );
        assert_eq!(config.bos_token_id, teacher_config.bos_token_id);
        assert_eq!(config.eos_token_ids, teacher_config.eos_token_ids);
        assert!(config.tie_word_embeddings && student.lm_head.is_none());

        let mut params = Params::default();
        student.visit(&mut params);
        let mut matrix_values = Vec::new();
        for (path, rank, values) in &params.found {
            if rank == &1 {
                assert!(values.iter().all(|&v| v == 1.0), "{name}: {path} is a norm");
            } else {
                matrix_values.extend(values.iter().map(|&v| v as f64));
            }
        }
        let n = matrix_values.len() as f64;
        let mean = matrix_values.iter().sum::<f64>() / n;
        let std = (matrix_values
            .iter()
            .map(|v| (v - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        assert!(mean.abs() < 1e-3, "{name}: mean {mean}");
        assert!(
            (std - FRESH_INIT_STD).abs() < 1e-3,
            "{name}: std {std} over {n} values"
        );

        // Near-uniform predictions at the start: the loss is about ln(vocab).
        let loss = next_token_ce(&student, &device).into_scalar::<f32>() as f64;
        let uniform = (config.vocab_size as f64).ln();
        assert!(
            (loss - uniform).abs() < 0.05,
            "{name}: loss {loss}, ln V = {uniform}"
        );

        let (untied_config, untied) = build_student(&dir, &fresh(false, 5), &device).unwrap();
        assert!(!untied_config.tie_word_embeddings && untied.lm_head.is_some());
        // The export loads back as the same model.
        let out = tmp.path().join(format!("fresh-{name}"));
        untied.save_pretrained(&untied_config, &out).unwrap();
        let (reloaded_config, reloaded) =
            LlamaModel::from_pretrained(&out, LayerSelection::All, &device).unwrap();
        assert_eq!(reloaded_config, untied_config, "{name}");
        assert_eq!(tensors(&reloaded), tensors(&untied), "{name}");
        per_device.push(tensors(&student));
    }
    assert_eq!(
        per_device[0], per_device[1],
        "one seed, one model on every backend"
    );
}

#[test]
fn a_fresh_student_trains_on_an_autodiff_device() {
    let (_, device) = devices().remove(1);
    let device = device.autodiff();
    let tmp = TempDir::new("student-fresh-train");
    let dir = teacher(Arch::Llama, &tmp, &device);
    let (_, mut student) = build_student(&dir, &fresh(false, 3), &device).unwrap();
    let mut optim = AdamWConfig::new().init();
    let first = next_token_ce(&student, &device).into_scalar::<f32>();
    for _ in 0..5 {
        let loss = next_token_ce(&student, &device);
        let grads = GradientsParams::from_grads(loss.backward(), &student);
        student = optim.step(1e-2, student, grads);
    }
    let last = next_token_ce(&student, &device).into_scalar::<f32>();
    assert!(last < first - 0.5, "loss {first} → {last}");
}

#[test]
fn bad_recipes_and_missing_teachers_are_named() {
    let (_, device) = devices().remove(1);
    let tmp = TempDir::new("student-errors");
    let dir = teacher(Arch::Llama, &tmp, &device);
    let name_of = |init: StudentInit| match build_student(&dir, &init, &device) {
        Err(ModelError::InvalidArgument { name, message }) => (name, message),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("{init:?} accepted"),
    };
    let (name, message) = name_of(first(LAYERS + 1, false));
    assert_eq!(name, "layers");
    assert!(message.contains("the teacher has 3"), "{message}");
    assert_eq!(name_of(first(0, true)).0, "layers");
    let bad_kv = StudentInit::Fresh {
        layers: 1,
        hidden_size: 16,
        intermediate_size: 8,
        attention_heads: 4,
        kv_heads: 3,
        tie_head: true,
        seed: 0,
    };
    assert_eq!(name_of(bad_kv).0, "kv_heads");
    let bad_heads = StudentInit::Fresh {
        layers: 1,
        hidden_size: 16,
        intermediate_size: 8,
        attention_heads: 5,
        kv_heads: 1,
        tie_head: true,
        seed: 0,
    };
    assert_eq!(name_of(bad_heads).0, "attention_heads");

    let missing = Path::new(tmp.path()).join("no-such-teacher");
    let err = build_student(&missing, &first(1, false), &device).unwrap_err();
    assert!(
        err.to_string().contains("no-such-teacher"),
        "the error names the path: {err}"
    );
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn the_smollm2_student_has_the_teachers_first_10_layers_logits() {
    let dir = crate::common::shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    for (name, device) in devices() {
        let (config, student) = build_student(&dir, &first(10, false), &device).unwrap();
        assert_eq!(config.num_hidden_layers, 10);
        assert!(config.tie_word_embeddings);
        let (_, teacher) = LlamaModel::from_pretrained(&dir, LayerSelection::All, &device).unwrap();
        assert_eq!(teacher.num_layers(), 30);
        let truncated = teacher.first_layers(10).unwrap();
        let ids: Vec<i64> = vec![28, 2685, 1159, 28, 198, 2942, 314, 260, 3287, 30];
        let input = || LlamaInput {
            input_ids: Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, 10]), &device),
            attention_mask: Tensor::<2, Int>::ones([1, 10], &device),
        };
        let a = student.forward(input(), false).logits.unwrap().into_data();
        let b = truncated
            .forward(input(), false)
            .logits
            .unwrap()
            .into_data();
        assert_eq!(a.shape(), b.shape(), "{name}");
        assert_eq!(
            a.try_to_vec::<f32>().unwrap(),
            b.try_to_vec::<f32>().unwrap(),
            "{name}"
        );
    }
}
