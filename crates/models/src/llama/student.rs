//! Students for knowledge distillation: a trainable decoder made from a teacher checkpoint,
//! either the teacher's first layers (weights copied; optionally over another tokenizer's
//! vocabulary, by [vocabulary transplant](crate::vocab_transplant)) or a fresh random model of
//! a chosen shape over the teacher's vocabulary.
//!
//! [`StudentInit`] is the serialisable recipe (a `[student]` table of a TOML config);
//! [`build_student`] reads the teacher and returns the student's [`LlamaConfig`] and
//! [`LlamaModel`], ready for [`LlamaModel::save_pretrained`] /
//! [`export_decoder`](super::export_decoder).
//!
//! # Example
//! ```no_run
//! use burn::tensor::Device;
//! use models::llama::{build_student, StudentInit};
//!
//! let device = Device::flex().autodiff();
//! let init = StudentInit::FirstLayers { layers: 10, untie_head: false, vocab: None };
//! let teacher = std::path::Path::new("SmolLM2-135M-Instruct-Q4_1");
//! let (config, student) = build_student(teacher, &init, &device)?;
//! assert_eq!(config.num_hidden_layers, 10);
//!
//! // The same layers over GPT-2's vocabulary (a transplanted embedding, GPT-2's special ids).
//! let init = StudentInit::FirstLayers {
//!     layers: 10,
//!     untie_head: false,
//!     vocab: Some("gpt2-tokenizer/tokenizer.json".into()),
//! };
//! let (config, student) = build_student(teacher, &init, &device)?;
//! assert_eq!((config.vocab_size, config.eos_token_ids.as_slice()), (50257, &[50256][..]));
//! // Export it with its own tokenizer, not the teacher's.
//! let tokenizer = init.tokenizer_source(teacher);
//! # Ok::<(), models::ModelError>(())
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use mrl_common::SplitMix64;
use serde::{Deserialize, Serialize};

use super::config::{LlamaConfig, LlamaVariant};
use super::model::LlamaModel;
use super::weights::LayerSelection;
use crate::error::{ModelError, Result};
use crate::vocab_transplant::{load_tokenizer, read_vocab, VocabTransplant};

/// Standard deviation of the normal initialisation of a [`StudentInit::Fresh`] student's
/// matrices: transformers' `initializer_range` default for Llama.
pub const FRESH_INIT_STD: f64 = 0.02;

fn default_true() -> bool {
    true
}

/// How a student decoder is made from a teacher checkpoint.
///
/// Serialised with an `init` tag, e.g. in TOML
/// `init = "first_layers"`, `layers = 10` (optionally `vocab = "path/to/tokenizer.json"`) or
/// `init = "fresh"`, `layers = 4`, `hidden_size = 256`, `intermediate_size = 768`,
/// `attention_heads = 4`, `kv_heads = 2`; unknown fields are refused (a misspelt
/// `untie_head` is an error, not the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "init", rename_all = "snake_case", deny_unknown_fields)]
pub enum StudentInit {
    /// The teacher's first `layers` layers + its final norm + its head (weights copied).
    FirstLayers {
        /// Decoder layers kept, `1..=` the teacher's.
        layers: usize,
        /// Give the student its own `lm_head`, initialised with a copy of the teacher's
        /// embedding matrix, when the teacher's head is tied: the embedding and the head then
        /// train separately, and the config says `tie_word_embeddings = false`. An untied
        /// teacher head is copied either way.
        #[serde(default)]
        untie_head: bool,
        /// The student's own tokenizer (a `tokenizer.json`, or a directory holding one), for
        /// a student over another vocabulary than the teacher's. `None` (the default): the
        /// teacher's vocabulary.
        ///
        /// With a `vocab`, the embedding is made by [vocabulary
        /// transplant](crate::vocab_transplant) from the teacher's embedding and the teacher's
        /// `tokenizer.json` (beside the teacher checkpoint), the student's eos row copying the
        /// teacher's eos row; an untied teacher head is transplanted by the same plan, and
        /// `untie_head` copies the transplanted embedding. The config gets
        /// `vocab_size` = the tokenizer's size and the tokenizer's bos / eos ids: those that
        /// a `tokenizer_config.json` beside it names (`bos_token`, `eos_token`), else its
        /// only special token as both (GPT-2's `<|endoftext|>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vocab: Option<PathBuf>,
    },
    /// A fresh, randomly initialised Llama config: the teacher's vocabulary, RoPE, norm eps and
    /// special ids, with these shapes.
    ///
    /// The variant is plain Llama (no attention biases, no q/k norms) whatever the teacher's,
    /// `head_dim = hidden_size / attention_heads`, the context window is the teacher's. The
    /// weights follow transformers' Llama initialisation: every matrix (embedding, projections,
    /// untied head) drawn from `N(0, 0.02²)` ([`FRESH_INIT_STD`]), every RMSNorm scale 1. The
    /// draws come from the workspace's [`SplitMix64`] seeded with `seed` (Box–Muller), not
    /// from Burn's global generator, so one seed gives one model on every backend, whatever
    /// else runs at the same time.
    Fresh {
        /// Decoder layers.
        layers: usize,
        /// Width of the residual stream.
        hidden_size: usize,
        /// Width of the SwiGLU hidden layer.
        intermediate_size: usize,
        /// Query heads; must divide `hidden_size` into heads of even width (RoPE).
        attention_heads: usize,
        /// Key/value heads; must divide `attention_heads`.
        kv_heads: usize,
        /// Share the embedding matrix with the output head.
        #[serde(default = "default_true")]
        tie_head: bool,
        /// Seed of the initialisation.
        #[serde(default)]
        seed: u64,
    },
    /// An existing Llama-family checkpoint (a directory or a `.gguf` file, as
    /// [`LlamaModel::from_pretrained`] reads them), trained as it is: e.g. a smaller model of
    /// the teacher's family. Whether it fits the teacher (vocabulary, tokenizer) is for the
    /// objective to check.
    Pretrained {
        /// The checkpoint.
        path: std::path::PathBuf,
    },
}

fn invalid(name: &'static str, message: String) -> ModelError {
    ModelError::InvalidArgument { name, message }
}

impl StudentInit {
    /// The student's own tokenizer when it is not the teacher's: the `vocab` of a
    /// [`StudentInit::FirstLayers`] transplant.
    pub fn vocab(&self) -> Option<&Path> {
        match self {
            StudentInit::FirstLayers { vocab, .. } => vocab.as_deref(),
            _ => None,
        }
    }

    /// Where the student's tokenizer is, for [`export_decoder`](super::export_decoder)'s
    /// `tokenizer_source`: the [`vocab`](Self::vocab) of a transplant, else `teacher` (the
    /// teacher's checkpoint path, whose tokenizer the student shares).
    pub fn tokenizer_source<'a>(&'a self, teacher: &'a Path) -> &'a Path {
        self.vocab().unwrap_or(teacher)
    }

    /// The student's config for a teacher with config `teacher`, after checking every field.
    /// A [`StudentInit::FirstLayers`] transplant reads its `vocab` tokenizer here (its size
    /// and special ids).
    ///
    /// # Errors
    /// [`ModelError::InvalidArgument`] naming the field: `layers` 0 (or, for
    /// [`StudentInit::FirstLayers`], more than the teacher has); a zero `hidden_size`,
    /// `intermediate_size`, `attention_heads` or `kv_heads`; `attention_heads` that do not
    /// divide `hidden_size` or give an odd head width; `kv_heads` that do not divide
    /// `attention_heads`; a `vocab` tokenizer whose eos cannot be told. [`ModelError::Io`],
    /// [`ModelError::Tokenizer`] or [`ModelError::Config`] naming the `vocab` tokenizer file
    /// (or the `tokenizer_config.json` beside it) when it cannot be read or parsed.
    pub fn student_config(&self, teacher: &LlamaConfig) -> Result<LlamaConfig> {
        match *self {
            StudentInit::Pretrained { ref path } => LlamaConfig::from_pretrained(path),
            StudentInit::FirstLayers {
                layers,
                untie_head,
                ref vocab,
            } => {
                let vocab = vocab.as_deref().map(StudentVocab::load).transpose()?;
                first_layers_config(teacher, layers, untie_head, vocab.as_ref())
            }
            StudentInit::Fresh {
                layers,
                hidden_size,
                intermediate_size,
                attention_heads,
                kv_heads,
                tie_head,
                seed: _,
            } => {
                for (name, value) in [
                    ("layers", layers),
                    ("hidden_size", hidden_size),
                    ("intermediate_size", intermediate_size),
                    ("attention_heads", attention_heads),
                    ("kv_heads", kv_heads),
                ] {
                    if value == 0 {
                        return Err(invalid(name, "must be positive, got 0".into()));
                    }
                }
                if !hidden_size.is_multiple_of(attention_heads) {
                    return Err(invalid(
                        "attention_heads",
                        format!(
                            "hidden_size {hidden_size} is not divisible by \
                             attention_heads {attention_heads}"
                        ),
                    ));
                }
                let head_dim = hidden_size / attention_heads;
                if !head_dim.is_multiple_of(2) {
                    return Err(invalid(
                        "attention_heads",
                        format!(
                            "hidden_size {hidden_size} / attention_heads {attention_heads} \
                             gives heads of odd width {head_dim}; RoPE needs an even width"
                        ),
                    ));
                }
                if !attention_heads.is_multiple_of(kv_heads) {
                    return Err(invalid(
                        "kv_heads",
                        format!(
                            "attention_heads {attention_heads} is not a multiple of \
                             kv_heads {kv_heads}"
                        ),
                    ));
                }
                let config = LlamaConfig::new(
                    LlamaVariant::Llama,
                    teacher.vocab_size,
                    hidden_size,
                    intermediate_size,
                    layers,
                    attention_heads,
                    kv_heads,
                    head_dim,
                )
                .with_rms_norm_eps(teacher.rms_norm_eps)
                .with_rope_theta(teacher.rope_theta)
                .with_rope_scaling(teacher.rope_scaling.clone())
                .with_max_position_embeddings(teacher.max_position_embeddings)
                .with_tie_word_embeddings(tie_head)
                .with_bos_token_id(teacher.bos_token_id)
                .with_eos_token_ids(teacher.eos_token_ids.clone());
                config.validate().map_err(|m| invalid("student", m))?;
                Ok(config)
            }
        }
    }
}

/// The config of a [`StudentInit::FirstLayers`] student.
fn first_layers_config(
    teacher: &LlamaConfig,
    layers: usize,
    untie_head: bool,
    vocab: Option<&StudentVocab>,
) -> Result<LlamaConfig> {
    if layers == 0 || layers > teacher.num_hidden_layers {
        return Err(invalid(
            "layers",
            format!(
                "{layers} layers requested, the teacher has {} (1..={0} allowed)",
                teacher.num_hidden_layers
            ),
        ));
    }
    let mut config = teacher.clone();
    config.num_hidden_layers = layers;
    if untie_head {
        config.tie_word_embeddings = false;
    }
    if let Some(vocab) = vocab {
        config.vocab_size = vocab.vocab.len();
        config.bos_token_id = vocab.bos;
        config.eos_token_ids = vec![vocab.eos];
    }
    Ok(config)
}

/// The student's own tokenizer of a transplant ([`StudentInit::FirstLayers`]'s `vocab`): its
/// vocabulary and special ids.
struct StudentVocab {
    vocab: HashMap<String, u32>,
    bos: Option<u32>,
    eos: u32,
}

impl StudentVocab {
    /// Reads the tokenizer `path` stands for ([`crate::tokenizer::tokenizer_file`]) and its
    /// bos / eos: those a `tokenizer_config.json` beside it names (`bos_token`, `eos_token`,
    /// strings or `{"content": …}`), else its only special token as both.
    fn load(path: &Path) -> Result<Self> {
        let path = crate::tokenizer::tokenizer_file(path);
        let tokenizer = load_tokenizer(&path)?;
        let vocab = tokenizer.get_vocab(true);
        let config_path = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(super::TOKENIZER_CONFIG_FILE);
        let named: Option<serde_json::Value> = config_path
            .is_file()
            .then(|| crate::error::read_json(&config_path))
            .transpose()?;
        let token_of = |key: &str| -> Result<Option<u32>> {
            let Some(value) = named.as_ref().and_then(|c| c.get(key)) else {
                return Ok(None);
            };
            let content = value
                .as_str()
                .or_else(|| value.get("content").and_then(|c| c.as_str()));
            let Some(content) = content else {
                if value.is_null() {
                    return Ok(None);
                }
                return Err(ModelError::Config {
                    path: config_path.clone(),
                    message: format!("`{key}` is neither a string nor {{\"content\": …}}"),
                });
            };
            match vocab.get(content) {
                Some(&id) => Ok(Some(id)),
                None => Err(invalid(
                    "vocab",
                    format!(
                        "{key} {content:?} of {} is not a token of {}",
                        config_path.display(),
                        path.display()
                    ),
                )),
            }
        };
        let (bos, eos) = match token_of("eos_token")? {
            Some(eos) => (token_of("bos_token")?, eos),
            None => {
                let mut special: Vec<(u32, String)> = tokenizer
                    .get_added_tokens_decoder()
                    .into_iter()
                    .filter(|(_, t)| t.special)
                    .map(|(id, t)| (id, t.content))
                    .collect();
                special.sort();
                match special.as_slice() {
                    [(id, _)] => (Some(*id), *id),
                    _ => {
                        return Err(invalid(
                            "vocab",
                            format!(
                                "cannot tell the end-of-sequence token of {}: it has {} \
                                 special tokens ({:?}) and no {} beside it naming eos_token",
                                path.display(),
                                special.len(),
                                special.iter().map(|(_, t)| t).collect::<Vec<_>>(),
                                super::TOKENIZER_CONFIG_FILE
                            ),
                        ))
                    }
                }
            }
        };
        Ok(Self { vocab, bos, eos })
    }

    /// The plan from the teacher's vocabulary (the `tokenizer.json` beside `teacher`) to
    /// this one, the student's eos mapped to the teacher's first eos.
    fn plan(&self, teacher: &Path, teacher_config: &LlamaConfig) -> Result<VocabTransplant> {
        let source_path = crate::tokenizer::tokenizer_file(teacher);
        let source = read_vocab(&source_path)?;
        if let Some((token, &id)) = source
            .iter()
            .filter(|(_, &id)| id as usize >= teacher_config.vocab_size)
            .max_by_key(|(_, &id)| id)
        {
            return Err(invalid(
                "teacher",
                format!(
                    "{} has token {token:?} with id {id}, but the teacher's embedding has \
                     {} rows",
                    source_path.display(),
                    teacher_config.vocab_size
                ),
            ));
        }
        let &teacher_eos = teacher_config.eos_token_ids.first().ok_or_else(|| {
            invalid(
                "teacher",
                format!(
                    "the teacher's config has no eos_token_id, to which the student's eos \
                     ({}) would be mapped",
                    self.eos
                ),
            )
        })?;
        VocabTransplant::new(&source, &self.vocab, &[(self.eos, teacher_eos)])
    }
}

/// Builds the student described by `init` from the teacher checkpoint at `teacher` (a model
/// directory or a `.gguf` file, as [`LlamaModel::from_pretrained`] reads them) on `device`
/// (an autodiff device to train it).
///
/// Returns the student's config (the `config.json` of its export) and the model.
///
/// A [`StudentInit::FirstLayers`] student with a `vocab` gets the transplanted embedding (and
/// head) of that tokenizer: see the field's documentation; its tokenizer for the export is
/// [`StudentInit::tokenizer_source`].
///
/// # Errors
/// [`ModelError::InvalidArgument`] naming the field of `init` that does not fit the teacher
/// (see [`StudentInit::student_config`]), or `teacher` when a transplant's source tokenizer
/// has ids beyond the teacher's embedding or the teacher has no eos id; the errors of
/// [`LlamaModel::from_pretrained`] for the teacher checkpoint; [`ModelError::Io`] /
/// [`ModelError::Tokenizer`] naming a tokenizer file that cannot be read or parsed.
pub fn build_student(
    teacher: &Path,
    init: &StudentInit,
    device: &Device,
) -> Result<(LlamaConfig, LlamaModel)> {
    let teacher_config = LlamaConfig::from_pretrained(teacher)?;
    match *init {
        StudentInit::FirstLayers {
            layers,
            untie_head,
            ref vocab,
        } => {
            let vocab = vocab.as_deref().map(StudentVocab::load).transpose()?;
            let config = first_layers_config(&teacher_config, layers, untie_head, vocab.as_ref())?;
            let plan = vocab
                .as_ref()
                .map(|v| v.plan(teacher, &teacher_config))
                .transpose()?;
            let (_, mut model) =
                LlamaModel::from_pretrained(teacher, LayerSelection::First(layers), device)?;
            if let Some(plan) = plan {
                transplant(&mut model, &plan, device)?;
            }
            if untie_head && model.lm_head.is_none() {
                model.lm_head = Some(head_from_embedding(&model, device));
            }
            Ok((config, model))
        }
        StudentInit::Fresh { seed, .. } => {
            let config = init.student_config(&teacher_config)?;
            let mut init = NormalInit {
                rng: SplitMix64::new(seed),
                std: FRESH_INIT_STD,
            };
            Ok((config.clone(), config.init(device).map(&mut init)))
        }
        StudentInit::Pretrained { ref path } => {
            LlamaModel::from_pretrained(path, LayerSelection::All, device)
        }
    }
}

/// Replaces the embedding (and an untied head) of `model` by their transplants.
fn transplant(model: &mut LlamaModel, plan: &VocabTransplant, device: &Device) -> Result<()> {
    let [_, hidden] = model.embed_tokens.weight.dims();
    let rows = plan.target_len();
    let embedding = host_values(model.embed_tokens.weight.val());
    let embedding = plan.apply(&embedding, hidden)?;
    model.embed_tokens.weight =
        Param::from_data(TensorData::new(embedding, [rows, hidden]), device);
    if let Some(head) = model.lm_head.as_mut() {
        // Burn's Linear weight is `[hidden, vocab]`: transplant its transpose.
        let head_rows = host_values(head.weight.val().transpose());
        let head_rows = plan.apply(&head_rows, hidden)?;
        let mut weight = vec![0.0f32; hidden * rows];
        for (t, row) in head_rows.chunks_exact(hidden).enumerate() {
            for (h, &v) in row.iter().enumerate() {
                weight[h * rows + t] = v;
            }
        }
        head.weight = Param::from_data(TensorData::new(weight, [hidden, rows]), device);
    }
    Ok(())
}

/// The values of a float tensor, row-major.
fn host_values(tensor: Tensor<2>) -> Vec<f32> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("a float tensor converts to f32")
}

/// An `lm_head` (`hidden → vocab`, no bias) holding a copy of the embedding matrix: a new
/// parameter, so the optimiser updates it apart from `embed_tokens`.
fn head_from_embedding(model: &LlamaModel, device: &Device) -> Linear {
    // Burn's Linear weight is `[in, out]` = `[hidden, vocab]`, the embedding `[vocab, hidden]`.
    let weight = model.embed_tokens.weight.val().transpose().into_data();
    Linear {
        weight: Param::from_data(weight, device),
        bias: None,
    }
}

/// Redraws every matrix from `N(0, std²)` with a [`SplitMix64`] stream (Box–Muller); vectors
/// (RMSNorm scales, initialised to 1) are kept.
struct NormalInit {
    rng: SplitMix64,
    std: f64,
}

impl NormalInit {
    /// `n` draws of `N(0, std²)`.
    fn draw(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // u1 in (0, 1] so that ln(u1) is finite.
            let u1 = 1.0 - self.rng.next_f64();
            let u2 = self.rng.next_f64();
            let radius = (-2.0 * u1.ln()).sqrt() * self.std;
            let angle = std::f64::consts::TAU * u2;
            out.push((radius * angle.cos()) as f32);
            out.push((radius * angle.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

impl ModuleMapper for NormalInit {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D < 2 {
            return param;
        }
        param.map(|t| {
            let shape = t.shape();
            let values = self.draw(shape.num_elements());
            let require_grad = t.is_require_grad();
            Tensor::from_data(TensorData::new(values, shape), &t.device())
                .set_require_grad(require_grad)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teacher() -> LlamaConfig {
        LlamaConfig::new(LlamaVariant::Qwen3, 50, 16, 32, 4, 4, 2, 4)
            .with_rope_theta(5e5)
            .with_rms_norm_eps(1e-5)
            .with_max_position_embeddings(40)
            .with_bos_token_id(Some(1))
            .with_eos_token_ids(vec![2, 3])
    }

    fn fresh(layers: usize, hidden: usize, heads: usize, kv: usize) -> StudentInit {
        StudentInit::Fresh {
            layers,
            hidden_size: hidden,
            intermediate_size: 24,
            attention_heads: heads,
            kv_heads: kv,
            tie_head: true,
            seed: 0,
        }
    }

    fn rejected(init: StudentInit) -> (&'static str, String) {
        match init.student_config(&teacher()).unwrap_err() {
            ModelError::InvalidArgument { name, message } => (name, message),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn fresh_takes_the_teachers_vocabulary_rope_eps_and_ids() {
        let c = fresh(2, 24, 6, 3).student_config(&teacher()).unwrap();
        assert_eq!(c.variant, LlamaVariant::Llama);
        assert_eq!(
            (
                c.vocab_size,
                c.hidden_size,
                c.intermediate_size,
                c.num_hidden_layers
            ),
            (50, 24, 24, 2)
        );
        assert_eq!(
            (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
            (6, 3, 4)
        );
        assert_eq!((c.rope_theta, c.rms_norm_eps), (5e5, 1e-5));
        assert_eq!(c.max_position_embeddings, 40);
        assert_eq!(
            (c.bos_token_id, c.eos_token_ids.clone()),
            (Some(1), vec![2, 3])
        );
        assert!(c.tie_word_embeddings);
    }

    #[test]
    fn first_layers_keeps_the_teacher_config_but_the_depth_and_tying() {
        let init = StudentInit::FirstLayers {
            layers: 3,
            untie_head: true,
            vocab: None,
        };
        let c = init.student_config(&teacher()).unwrap();
        assert_eq!(
            c,
            LlamaConfig {
                num_hidden_layers: 3,
                tie_word_embeddings: false,
                ..teacher()
            }
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let first = |layers| StudentInit::FirstLayers {
            layers,
            untie_head: false,
            vocab: None,
        };
        assert_eq!(rejected(first(0)).0, "layers");
        let (name, message) = rejected(first(5));
        assert_eq!(name, "layers");
        assert!(
            message.contains("5 layers requested, the teacher has 4"),
            "{message}"
        );
        assert_eq!(rejected(fresh(0, 16, 4, 2)).0, "layers");
        assert_eq!(rejected(fresh(1, 0, 4, 2)).0, "hidden_size");
        assert_eq!(rejected(fresh(1, 16, 0, 2)).0, "attention_heads");
        assert_eq!(rejected(fresh(1, 16, 4, 0)).0, "kv_heads");
        let (name, message) = rejected(fresh(1, 18, 4, 2));
        assert_eq!(name, "attention_heads");
        assert!(message.contains("not divisible"), "{message}");
        let (name, message) = rejected(fresh(1, 12, 4, 2));
        assert_eq!(name, "attention_heads");
        assert!(message.contains("odd width 3"), "{message}");
        let (name, message) = rejected(fresh(1, 24, 6, 4));
        assert_eq!(name, "kv_heads");
        assert!(message.contains("attention_heads 6"), "{message}");
        let zero_inter = StudentInit::Fresh {
            layers: 1,
            hidden_size: 16,
            intermediate_size: 0,
            attention_heads: 4,
            kv_heads: 2,
            tie_head: false,
            seed: 0,
        };
        assert_eq!(rejected(zero_inter).0, "intermediate_size");
    }

    #[test]
    fn serde_uses_the_init_tag_defaults_and_refuses_unknown_fields() {
        let parsed: StudentInit =
            serde_json::from_str(r#"{"init": "first_layers", "layers": 10}"#).unwrap();
        assert_eq!(
            parsed,
            StudentInit::FirstLayers {
                layers: 10,
                untie_head: false,
                vocab: None
            }
        );
        // No `vocab` key for the teacher's vocabulary: the serialised form is unchanged.
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::json!({"init": "first_layers", "layers": 10, "untie_head": false})
        );
        let parsed: StudentInit = serde_json::from_str(
            r#"{"init": "first_layers", "layers": 10, "vocab": "gpt2/tokenizer.json"}"#,
        )
        .unwrap();
        assert_eq!(parsed.vocab(), Some(Path::new("gpt2/tokenizer.json")));
        assert_eq!(
            parsed.tokenizer_source(Path::new("teacher")),
            Path::new("gpt2/tokenizer.json")
        );
        let round_trip: StudentInit =
            serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(round_trip, parsed);
        let parsed: StudentInit = serde_json::from_str(
            r#"{"init": "fresh", "layers": 2, "hidden_size": 64, "intermediate_size": 128,
                "attention_heads": 4, "kv_heads": 2}"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            StudentInit::Fresh {
                layers: 2,
                hidden_size: 64,
                intermediate_size: 128,
                attention_heads: 4,
                kv_heads: 2,
                tie_head: true,
                seed: 0
            }
        );
        let round_trip: StudentInit =
            serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(round_trip, parsed);
        let err = serde_json::from_str::<StudentInit>(
            r#"{"init": "first_layers", "layers": 10, "untie": true}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `untie`"), "{err}");
        let err = serde_json::from_str::<StudentInit>(r#"{"init": "last_layers", "layers": 1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("last_layers"), "{err}");
    }

    #[test]
    fn normal_draws_have_the_requested_moments() {
        let mut init = NormalInit {
            rng: SplitMix64::new(7),
            std: 0.02,
        };
        let n = 200_000;
        let v = init.draw(n);
        assert_eq!(v.len(), n);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: mean 0.02/sqrt(n) ≈ 4.5e-5, std ≈ 0.02/sqrt(2n) ≈ 3.2e-5.
        assert!(mean.abs() < 3e-4, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 3e-4, "std {}", var.sqrt());
        let beyond_2sd = v.iter().filter(|x| x.abs() > 0.04).count() as f64 / n as f64;
        assert!(
            (beyond_2sd - 0.0455).abs() < 0.003,
            "P(|x| > 2σ) = {beyond_2sd}"
        );
        // An odd count takes one draw of the last pair.
        assert_eq!(init.draw(3).len(), 3);
    }
}
