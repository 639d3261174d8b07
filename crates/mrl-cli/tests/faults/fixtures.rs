//! The good inputs every fault is derived from (built once per run), and the ways to spoil a
//! copy of them: safetensors surgery, flipped and truncated bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};
use tiny_models::{tiny_sentences, tiny_sts_tsv, write_random_model, Arch, ModelShape};

/// Paths of the shared good inputs.
pub struct Fixtures {
    /// The fixture directory (also holds the empty `shared/` and `hf-home/`).
    pub root: PathBuf,
    /// A tiny BERT (hidden 32) with tokenizer and pooling config.
    pub bert: PathBuf,
    /// A tiny Llama decoder (hidden 16, 2 layers) with a chat template.
    pub llama: PathBuf,
    /// 32 sentences, one per line.
    pub sentences: PathBuf,
    /// An STS TSV with a header.
    pub sts: PathBuf,
    /// Classification train / test TSVs (`label<TAB>text`).
    pub cls_train: PathBuf,
    pub cls_test: PathBuf,
    /// A pair-classification TSV (`s1<TAB>s2<TAB>0/1`).
    pub pairs: PathBuf,
    /// 10 instruction records (JSON lines).
    pub instruct: PathBuf,
    /// The output directory of `mrl train` stopped after 2 steps (a checkpoint at step 2).
    pub train_run: PathBuf,
    /// The output directory of `mrl distill` stopped after 1 step (a checkpoint at step 1).
    pub distill_run: PathBuf,
    /// Two weight tensors of the BERT (embedding table, an attention weight).
    pub bert_tensors: [String; 2],
    /// Two weight tensors of the Llama.
    pub llama_tensors: [String; 2],
}

/// The hidden size of [`Fixtures::bert`].
pub const BERT_HIDDEN: usize = tiny_models::TINY_HIDDEN;

fn mrl(fx_root: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_mrl"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", fx_root.join("hf-home"))
        .env("MRL_SHARED", fx_root.join("shared"))
        .output()
        .expect("run mrl");
    assert!(
        out.status.success(),
        "fixture run `mrl {}` failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `mrl train` config of the fixture run, writing into `out`.
pub fn train_toml(fx: &Fixtures, out: &Path) -> String {
    train_toml_at(&fx.bert, &fx.sentences, &fx.sts, out)
}

fn train_toml_at(model: &Path, corpus: &Path, dev: &Path, out: &Path) -> String {
    format!(
        r#"seed = 1
device = "ndarray"
output_dir = "{out}"

[model]
path = "{model}"
max_length = 16

[data]
path = "{corpus}"
format = "sentences"

[objective]
kind = "mrl"
dims = [8, 16, 32]

[optimizer]
lr = 1e-3

[training]
batch_size = 8
steps = 4

[eval]
dev = "{dev}"

[checkpoint]
every = 2
"#,
        out = out.display(),
        model = model.display(),
        corpus = corpus.display(),
        dev = dev.display(),
    )
}

/// The `mrl distill` config of the fixture run (live teacher, 1-layer student), writing into
/// `out`.
pub fn distill_toml(fx: &Fixtures, out: &Path) -> String {
    distill_toml_at(&fx.llama, &fx.instruct, out)
}

fn distill_toml_at(teacher: &Path, data: &Path, out: &Path) -> String {
    format!(
        r#"seed = 3
device = "ndarray"
output_dir = "{out}"

[teacher]
path = "{teacher}"

[student]
init = "first_layers"
layers = 1

[data]
path = "{data}"
records = "0..8"
max_length = 40

[objective]
alpha = 0.5
temperature = 1.0
divergence = {{ kind = "forward_kl" }}

[optimizer]
lr = 1e-2
warmup_steps = 1

[training]
batch_size = 4
steps = 2

[checkpoint]
every = 1
"#,
        out = out.display(),
        teacher = teacher.display(),
        data = data.display(),
    )
}

/// `text` with the one occurrence of `from` replaced by `to` (panics when `from` is not there
/// exactly once, so a case can never silently test the unchanged config).
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur once in:\n{text}"
    );
    text.replacen(from, to, 1)
}

fn tensor_names(path: &Path) -> Vec<String> {
    let (header, _) = read_safetensors(path);
    header
        .keys()
        .filter(|k| k.as_str() != "__metadata__")
        .cloned()
        .collect()
}

fn pick(names: &[String], patterns: &[&[&str]]) -> String {
    for pattern in patterns {
        if let Some(n) = names.iter().find(|n| pattern.iter().all(|p| n.contains(p))) {
            return n.clone();
        }
    }
    panic!("no tensor matching {patterns:?} in {names:?}")
}

impl Fixtures {
    /// Builds every fixture under `root` (two short training runs included).
    pub fn build(root: &Path) -> Self {
        #[allow(deprecated)]
        let device = burn::tensor::Device::ndarray();
        std::fs::create_dir_all(root.join("shared/data")).unwrap();
        std::fs::create_dir_all(root.join("hf-home")).unwrap();
        let bert = root.join("bert");
        tiny_models::write_tiny_model(&bert, 5, &device).unwrap();
        let llama = root.join("llama");
        let shape = ModelShape::new(16, 2, 4, 32, 120)
            .with_kv_heads(2)
            .with_max_positions(64);
        write_random_model(&llama, Arch::Llama, &shape, 4, &device).unwrap();
        std::fs::write(
            llama.join("chat_template.jinja"),
            "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:",
        )
        .unwrap();

        let s = tiny_sentences(40);
        let sentences = root.join("sentences.txt");
        std::fs::write(&sentences, s[..32].join("\n")).unwrap();
        let sts = root.join("sts.tsv");
        std::fs::write(&sts, tiny_sts_tsv(20)).unwrap();
        let cls = |range: std::ops::Range<usize>| -> String {
            let rows: String = range
                .map(|i| format!("{}\t{}\n", ["animal", "music", "food"][i % 3], s[i]))
                .collect();
            format!("label\ttext\n{rows}")
        };
        let cls_train = root.join("cls_train.tsv");
        std::fs::write(&cls_train, cls(0..24)).unwrap();
        let cls_test = root.join("cls_test.tsv");
        std::fs::write(&cls_test, cls(24..36)).unwrap();
        let pairs = root.join("pairs.tsv");
        let pair_text: String = (0..16)
            .map(|i| format!("{}\t{}\t{}\n", s[i], s[i + (i % 2)], 1 - i % 2))
            .collect();
        let pair_text = format!("sentence1\tsentence2\tlabel\n{pair_text}");
        std::fs::write(&pairs, pair_text).unwrap();
        let instruct = root.join("instruct.jsonl");
        let lines: Vec<String> = (0..10)
            .map(|i| {
                serde_json::json!({"instruction": s[2 * i], "response": s[2 * i + 1]}).to_string()
            })
            .collect();
        std::fs::write(&instruct, lines.join("\n") + "\n").unwrap();

        let train_run = root.join("train-run");
        let config = root.join("train.toml");
        std::fs::write(&config, train_toml_at(&bert, &sentences, &sts, &train_run)).unwrap();
        mrl(
            root,
            &[
                "train",
                "--config",
                config.to_str().unwrap(),
                "--stop-after",
                "2",
            ],
        );
        let distill_run = root.join("distill-run");
        let config = root.join("distill.toml");
        std::fs::write(&config, distill_toml_at(&llama, &instruct, &distill_run)).unwrap();
        mrl(
            root,
            &[
                "distill",
                "--config",
                config.to_str().unwrap(),
                "--stop-after",
                "1",
            ],
        );

        let names = tensor_names(&bert.join("model.safetensors"));
        let bert_tensors = [
            pick(&names, &[&["word_embeddings"]]),
            pick(
                &names,
                &[&["layer.1", "query", "weight"], &["query", "weight"]],
            ),
        ];
        let names = tensor_names(&llama.join("model.safetensors"));
        let llama_tensors = [
            pick(&names, &[&["embed_tokens"]]),
            pick(&names, &[&["layers.1", "q_proj"], &["q_proj"]]),
        ];
        Self {
            root: root.to_path_buf(),
            bert,
            llama,
            sentences,
            sts,
            cls_train,
            cls_test,
            pairs,
            instruct,
            train_run,
            distill_run,
            bert_tensors,
            llama_tensors,
        }
    }
}

/// Copies the directory tree `src` to `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// The header (JSON object) and the data section of a safetensors file.
pub fn read_safetensors(path: &Path) -> (Map<String, Value>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let Value::Object(header) = header else {
        panic!("{}: the header is not an object", path.display())
    };
    (header, bytes[8 + n..].to_vec())
}

/// Writes a safetensors file from tensors given as (name, header entry without offsets,
/// bytes), in order.
fn write_safetensors(path: &Path, metadata: Option<Value>, tensors: Vec<(String, Value, Vec<u8>)>) {
    let mut header = Map::new();
    if let Some(m) = metadata {
        header.insert("__metadata__".into(), m);
    }
    let mut data = Vec::new();
    for (name, mut entry, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(&bytes);
        entry["data_offsets"] = serde_json::json!([start, data.len()]);
        header.insert(name, entry);
    }
    let mut text = serde_json::to_vec(&Value::Object(header)).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

/// Rewrites the safetensors file `path`: `edit(name, entry, bytes)` returns the new entry and
/// bytes of each tensor, or `None` to drop it.
pub fn edit_safetensors(
    path: &Path,
    mut edit: impl FnMut(&str, Value, Vec<u8>) -> Option<(Value, Vec<u8>)>,
) {
    let (header, data) = read_safetensors(path);
    let metadata = header.get("__metadata__").cloned();
    let mut tensors: Vec<(String, Value)> = header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .collect();
    let start = |v: &Value| v["data_offsets"][0].as_u64().unwrap() as usize;
    tensors.sort_by_key(|(_, v)| start(v));
    let out = tensors
        .into_iter()
        .filter_map(|(name, entry)| {
            let (s, e) = (
                start(&entry),
                entry["data_offsets"][1].as_u64().unwrap() as usize,
            );
            let bytes = data[s..e].to_vec();
            edit(&name, entry, bytes).map(|(entry, bytes)| (name, entry, bytes))
        })
        .collect();
    write_safetensors(path, metadata, out);
}

/// Sets element `index` of the F32 tensor `tensor` in `path` to `value`.
pub fn set_weight(path: &Path, tensor: &str, index: usize, value: f32) {
    let mut found = false;
    edit_safetensors(path, |name, entry, mut bytes| {
        if name == tensor {
            assert_eq!(entry["dtype"], "F32", "{name}");
            bytes[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes());
            found = true;
        }
        Some((entry, bytes))
    });
    assert!(found, "no tensor {tensor} in {}", path.display());
}

/// Drops the last row (first dimension) of `tensor`: a tensor of the wrong shape.
pub fn shrink_tensor(path: &Path, tensor: &str) {
    edit_safetensors(path, |name, mut entry, bytes| {
        if name != tensor {
            return Some((entry, bytes));
        }
        let shape: Vec<u64> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let row = bytes.len() / shape[0] as usize;
        let mut new_shape = shape.clone();
        new_shape[0] -= 1;
        entry["shape"] = serde_json::json!(new_shape);
        Some((entry, bytes[..bytes.len() - row].to_vec()))
    });
}

/// Removes `tensor` from `path`.
pub fn drop_tensor(path: &Path, tensor: &str) {
    edit_safetensors(path, |name, entry, bytes| {
        (name != tensor).then_some((entry, bytes))
    });
}

/// Keeps the first `keep` bytes of `path`.
pub fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        keep < bytes.len(),
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
    std::fs::write(path, &bytes[..keep]).unwrap();
}

/// Inverts the bits of the byte at `fraction` of the length of `path`.
pub fn flip_byte(path: &Path, fraction: f64) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = ((bytes.len() as f64 * fraction) as usize).min(bytes.len() - 1);
    bytes[i] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// Overwrites `len` bytes of `path` at `offset` with `fill`.
pub fn overwrite(path: &Path, offset: usize, bytes: &[u8]) {
    let mut data = std::fs::read(path).unwrap();
    data[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).unwrap();
}

/// Length of `path` in bytes.
pub fn len(path: &Path) -> usize {
    std::fs::metadata(path).unwrap().len() as usize
}

/// The newest checkpoint directory of a run's output directory.
pub fn latest_checkpoint(out: &Path) -> PathBuf {
    let name = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
    out.join("checkpoints").join(name.trim())
}
