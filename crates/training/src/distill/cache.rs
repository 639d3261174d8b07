//! The teacher cache: what a distillation objective reads of the teacher at every record of the
//! training (and dev) data, computed once by `mrl distill cache` and read by every run that
//! shares the teacher, the data, the template and the cache's settings. Two kinds:
//! - **KD** (`top_k ≥ 1`, no hidden layers): the teacher's next-token distribution at every
//!   counted position, as its top `k` and the tail mass;
//! - **spans** (SRA, `top_k = 0`, the pairs' teacher layers): at every response token of the
//!   teacher's own tokenization (EOS included), the hidden state of each aligned layer and the
//!   token's centre-of-mass weight ([`distill_objectives::com_weights`] of the attention of the
//!   layer that produced the state). The spans themselves are computed at training time from
//!   both tokenizations, and the teacher's head rows over the shared vocabulary come from its
//!   embedding (loaded without its decoder layers): no teacher forward is left in a step.
//!
//! # Layout
//! A directory with `manifest.json` and safetensors shards `{part}-{n:05}.safetensors`, each
//! holding up to `shard_records` records:
//! - `records`: I64 `[n]`, the records' indices in their file;
//! - `rows`: I64 `[n + 1]`, record `i`'s rows are `rows[i]..rows[i + 1]`: its counted
//!   next-token positions in order (KD), its response tokens in order (spans);
//! - KD: `ids`: I32 `[rows, k]`, the teacher's `k` most likely next tokens, most likely first;
//!   `log_probs`: F32 `[rows, k]`, their log-probabilities under `softmax(z / τ)`;
//!   `tail_log_mass`: F32 `[rows]`, the log of the probability of every other token, computed
//!   as a log-sum-exp (exact, not `1 − Σ`);
//! - spans, per stored hidden layer `l`: `hidden_{l}`: F32 `[rows, d]`, the teacher's hidden
//!   state `l` (0 = embeddings, `n_layers` = after the final norm); `com_weights_{l}`: F32
//!   `[rows]`, the attention of decoder layer `l − 1` from the last real token's query, summed
//!   over heads and normalised over the real keys (the prompt's keys included).
//!
//! The manifest records the teacher's checksum (SHA-256 over its weights, `config.json` and
//! `tokenizer.json`), the data's checksum (SHA-256 over every tokenized record: index, ids and
//! response mask — so a change of template, tokenizer or `max_length` also shows; for spans, the
//! teacher's tokenization of the records the cross-tokenizer run keeps), the template, `k` and
//! `τ` (both 0 for spans), the hidden layers stored (none for KD), and every shard's SHA-256.
//! [`TeacherCache::open`] refuses a cache whose manifest differs from what the run expects,
//! naming the field. The directory is written under a scratch name and renamed into place
//! when complete: a killed run leaves no half-written cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use distill_objectives::{com_weights, teacher_top_k, TeacherTarget};
use models::LlamaModel;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::data::{DistillBatch, DistillData, DistillExample};
use crate::error::{io_err, Result, TrainError};

/// The cache's format version.
pub const CACHE_FORMAT: u32 = 1;
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What a cache was computed from; two caches with equal keys hold the same numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheKey {
    /// [`CACHE_FORMAT`].
    pub format: u32,
    /// SHA-256 of the teacher (see the [module docs](self)).
    pub teacher_sha256: String,
    /// The prompt template.
    pub template: String,
    /// Tokens kept per position (0: a span cache, no distributions).
    pub top_k: usize,
    /// Softmax temperature of the stored log-probabilities (0 for a span cache).
    pub temperature: f64,
    /// Truncation length in tokens.
    pub max_length: usize,
    /// Teacher hidden layers stored per response token, each with its centre-of-mass weights
    /// (a span cache; none for KD).
    pub hidden_layers: Vec<usize>,
    /// Per part (`train`, `dev`): SHA-256 of its tokenized records.
    pub data_sha256: BTreeMap<String, String>,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the cache directory.
    pub file: String,
    /// Number of records.
    pub records: usize,
    /// Number of rows (positions).
    pub rows: usize,
    /// SHA-256 of the file.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheManifest {
    /// What the numbers depend on.
    #[serde(flatten)]
    pub key: CacheKey,
    /// For people: the teacher's path, layers and vocabulary size.
    pub teacher: serde_json::Value,
    /// Per part: its data file, record range and shards.
    pub parts: BTreeMap<String, PartEntry>,
}

/// One part of a cache (`train` or `dev`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartEntry {
    /// The JSONL file.
    pub data: String,
    /// Its record range `[start, end)`.
    pub records: [usize; 2],
    /// Counted positions in the part.
    pub rows: usize,
    /// The shards, in record order.
    pub shards: Vec<ShardEntry>,
}

/// SHA-256 (hex) of the files that define a teacher: its weights (`path` itself when it is a
/// file, else its `model.safetensors` or `*.gguf`), `config.json` and `tokenizer.json`
/// beside them when present.
///
/// # Errors
/// [`TrainError::Io`] when a file cannot be read.
pub fn teacher_sha256(path: &Path) -> Result<String> {
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    let mut files: Vec<PathBuf> = Vec::new();
    if path.is_file() {
        files.push(path.to_path_buf());
    } else {
        let mut weights: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "gguf")
                    || p.file_name().is_some_and(|n| n == "model.safetensors")
            })
            .collect();
        weights.sort();
        files.extend(weights);
    }
    for name in ["config.json", "tokenizer.json"] {
        let p = dir.join(name);
        if p.is_file() {
            files.push(p);
        }
    }
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let mut f = std::fs::File::open(&file).map_err(io_err(&file))?;
        std::io::copy(&mut f, &mut hasher).map_err(io_err(&file))?;
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 (hex) of tokenized records: every record's index, ids and response mask.
pub fn data_sha256<'a>(examples: impl IntoIterator<Item = &'a DistillExample>) -> String {
    let mut hasher = Sha256::new();
    for e in examples {
        hasher.update((e.record as u64).to_le_bytes());
        hasher.update((e.ids.len() as u64).to_le_bytes());
        for &id in &e.ids {
            hasher.update(id.to_le_bytes());
        }
        let mask: Vec<u8> = e.response.iter().map(|&r| u8::from(r)).collect();
        hasher.update(&mask);
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    std::io::copy(&mut f, &mut hasher).map_err(io_err(path))?;
    Ok(hex(&hasher.finalize()))
}

/// The cached values of one record.
#[derive(Debug, Clone, PartialEq)]
struct RecordTargets {
    /// Its rows.
    rows: usize,
    /// KD: `[rows × k]`.
    ids: Vec<i32>,
    /// KD: `[rows × k]`.
    log_probs: Vec<f32>,
    /// KD: `[rows]`.
    tail: Vec<f32>,
    /// Spans, per stored hidden layer (in [`CacheKey::hidden_layers`] order): the states
    /// `[rows × d]` and the centre-of-mass weights `[rows]`.
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

/// A cache opened for reading: the targets of every record of a part, by record index.
#[derive(Debug, Clone)]
pub struct CachedPart {
    dir: PathBuf,
    top_k: usize,
    hidden_layers: Vec<usize>,
    width: usize,
    records: BTreeMap<usize, RecordTargets>,
}

/// An opened, verified teacher cache.
#[derive(Debug, Clone)]
pub struct TeacherCache {
    /// The directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: CacheManifest,
    parts: BTreeMap<String, CachedPart>,
}

impl TeacherCache {
    /// Opens the cache in `dir` and checks that it was computed for `expected` (every field,
    /// every shard's checksum), then reads it.
    ///
    /// # Errors
    /// [`TrainError::Cache`] when the directory or manifest is missing (with the command that
    /// writes it), a field differs (named, with both values), a shard is corrupt.
    pub fn open(dir: &Path, expected: &CacheKey) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST_FILE);
        if !manifest_path.is_file() {
            return Err(cache_err(
                dir,
                "no manifest.json: write the cache first with `mrl distill cache --config <the same config>`",
            ));
        }
        let text = std::fs::read_to_string(&manifest_path).map_err(io_err(&manifest_path))?;
        let manifest: CacheManifest = serde_json::from_str(&text)
            .map_err(|e| cache_err(dir, format!("manifest.json: {e}")))?;
        if let Some(field) = first_difference(&manifest.key, expected) {
            return Err(cache_err(
                dir,
                format!(
                    "stale: it was written for a different {field} ({}); rebuild it with \
                     `mrl distill cache --config <the same config> --force`",
                    describe_difference(&manifest.key, expected, &field)
                ),
            ));
        }
        let mut parts = BTreeMap::new();
        for (name, part) in &manifest.parts {
            let mut records = BTreeMap::new();
            let mut width = 0;
            for shard in &part.shards {
                let path = dir.join(&shard.file);
                if sha256_file(&path)? != shard.sha256 {
                    return Err(cache_err(
                        dir,
                        format!("{} does not match its checksum in manifest.json (corrupt or edited); rebuild the cache with --force", shard.file),
                    ));
                }
                width = read_shard(&path, expected, &mut records)?;
            }
            parts.insert(
                name.clone(),
                CachedPart {
                    dir: dir.to_path_buf(),
                    top_k: expected.top_k,
                    hidden_layers: expected.hidden_layers.clone(),
                    width,
                    records,
                },
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            parts,
        })
    }

    /// The part `name` (`train`, `dev`).
    ///
    /// # Errors
    /// [`TrainError::Cache`] if the cache has no such part.
    pub fn part(&self, name: &str) -> Result<&CachedPart> {
        self.parts.get(name).ok_or_else(|| {
            cache_err(
                &self.dir,
                format!("has no `{name}` part; rebuild it with `mrl distill cache --force`"),
            )
        })
    }
}

impl CachedPart {
    /// The teacher targets at the counted positions of `examples`, packed in the order of
    /// [`DistillBatch::packed`](super::DistillBatch::packed): ids and log-probabilities
    /// `[1, M, k]`, tail mass `[1, M]`, `M` the number of counted positions.
    ///
    /// # Errors
    /// [`TrainError::Cache`] when a record is missing or its row count does not match.
    pub fn batch_target(
        &self,
        examples: &[&DistillExample],
        device: &Device,
    ) -> Result<TeacherTarget> {
        if self.top_k == 0 {
            return Err(cache_err(
                &self.dir,
                "holds SRA's span inputs (hidden states), not next-token distributions; write a \
                 KD cache (top_k >= 1) for this objective",
            ));
        }
        let k = self.top_k;
        let mut ids = Vec::new();
        let mut log_probs = Vec::new();
        let mut tail = Vec::new();
        for e in examples {
            let cached = self
                .records
                .get(&e.record)
                .ok_or_else(|| TrainError::Cache {
                    dir: self.dir.clone(),
                    message: format!("record {} is not in the cache", e.record),
                })?;
            let positions = e.num_targets();
            if positions != cached.tail.len() {
                return Err(TrainError::Cache {
                    dir: self.dir.clone(),
                    message: format!(
                        "record {}: {} cached positions, the data has {}",
                        e.record,
                        cached.tail.len(),
                        positions
                    ),
                });
            }
            ids.extend(cached.ids.iter().map(|&id| i64::from(id)));
            log_probs.extend_from_slice(&cached.log_probs);
            tail.extend_from_slice(&cached.tail);
        }
        let m = tail.len();
        Ok(TeacherTarget::TopK(distill_objectives::TopKTarget {
            ids: Tensor::<3, Int>::from_data(TensorData::new(ids, [1, m, k]), device),
            log_probs: Tensor::from_data(TensorData::new(log_probs, [1, m, k]), device),
            tail_log_mass: Tensor::from_data(TensorData::new(tail, [1, m]), device),
        }))
    }
}

/// One stored layer of a span cache over a batch: see [`CachedPart::span_inputs`].
#[derive(Debug, Clone)]
pub struct CachedLayer {
    /// The hidden-state index.
    pub layer: usize,
    /// `[batch, seq, d]`, the states at the response tokens, zero elsewhere.
    pub hidden: Tensor<3>,
    /// `[batch, seq]`, the centre-of-mass weights at the response tokens, zero elsewhere.
    pub weights: Tensor<2>,
}

impl CachedPart {
    /// The hidden layers the part stores (a span cache; empty for KD).
    pub fn hidden_layers(&self) -> &[usize] {
        &self.hidden_layers
    }

    /// SRA's teacher side of a batch from a span cache: for every stored layer, the states and
    /// centre-of-mass weights at the response tokens of `examples` (the teacher's own
    /// tokenization), zero at every other position of the `[batch, seq]` grid (the spans read
    /// response tokens only, and the weights were normalised over the whole sequence when the
    /// cache was written), on `device`.
    ///
    /// # Errors
    /// [`TrainError::Cache`] for a KD cache, a record that is missing or whose response length
    /// differs from its rows, a `seq` shorter than a record.
    pub fn span_inputs(
        &self,
        examples: &[&DistillExample],
        seq: usize,
        device: &Device,
    ) -> Result<Vec<CachedLayer>> {
        if self.hidden_layers.is_empty() {
            return Err(cache_err(
                &self.dir,
                "holds next-token distributions, not SRA's span inputs; write it for the SRA \
                 config (`mrl distill cache --config <the SRA config>`)",
            ));
        }
        let (b, d) = (examples.len(), self.width);
        let mut hidden = vec![vec![0f32; b * seq * d]; self.hidden_layers.len()];
        let mut weights = vec![vec![0f32; b * seq]; self.hidden_layers.len()];
        for (bi, e) in examples.iter().enumerate() {
            let cached = self.records.get(&e.record).ok_or_else(|| {
                cache_err(
                    &self.dir,
                    format!("record {} is not in the cache", e.record),
                )
            })?;
            let positions: Vec<usize> = (0..e.ids.len()).filter(|&t| e.response[t]).collect();
            if positions.len() != cached.rows || e.ids.len() > seq {
                return Err(cache_err(
                    &self.dir,
                    format!(
                        "record {}: {} cached response tokens, the data has {} (of {} tokens, \
                         batch length {seq})",
                        e.record,
                        cached.rows,
                        positions.len(),
                        e.ids.len()
                    ),
                ));
            }
            for (li, (states, w)) in cached.layers.iter().enumerate() {
                for (r, &pos) in positions.iter().enumerate() {
                    let at = bi * seq + pos;
                    hidden[li][at * d..(at + 1) * d].copy_from_slice(&states[r * d..(r + 1) * d]);
                    weights[li][at] = w[r];
                }
            }
        }
        Ok(self
            .hidden_layers
            .iter()
            .zip(hidden.into_iter().zip(weights))
            .map(|(&layer, (h, w))| CachedLayer {
                layer,
                hidden: Tensor::from_data(TensorData::new(h, [b, seq, d]), device),
                weights: Tensor::from_data(TensorData::new(w, [b, seq]), device),
            })
            .collect())
    }
}

fn cache_err(dir: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Cache {
        dir: dir.to_path_buf(),
        message: message.into(),
    }
}

/// The first field of `a` that differs from `b`, by name.
fn first_difference(a: &CacheKey, b: &CacheKey) -> Option<String> {
    let (a, b) = (
        serde_json::to_value(a).expect("serialisable"),
        serde_json::to_value(b).expect("serialisable"),
    );
    let (a, b) = (
        a.as_object().expect("object"),
        b.as_object().expect("object"),
    );
    for (key, va) in a {
        let vb = b.get(key).unwrap_or(&serde_json::Value::Null);
        if va != vb {
            if let (Some(ma), Some(mb)) = (va.as_object(), vb.as_object()) {
                for part in ma.keys().chain(mb.keys()) {
                    if ma.get(part) != mb.get(part) {
                        return Some(format!("{key}.{part}"));
                    }
                }
            }
            return Some(key.clone());
        }
    }
    None
}

fn describe_difference(cached: &CacheKey, expected: &CacheKey, field: &str) -> String {
    let get = |k: &CacheKey| {
        let v = serde_json::to_value(k).expect("serialisable");
        let mut at = &v;
        for seg in field.split('.') {
            at = at.get(seg).unwrap_or(&serde_json::Value::Null);
        }
        let s = at.to_string();
        if s.len() > 80 {
            format!("{}…", &s[..80])
        } else {
            s
        }
    };
    format!("cached {}, this run {}", get(cached), get(expected))
}

/// Reads one shard into `out`; returns the width of its hidden states (0 for KD).
fn read_shard(
    path: &Path,
    key: &CacheKey,
    out: &mut BTreeMap<usize, RecordTargets>,
) -> Result<usize> {
    let k = key.top_k;
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let corrupt = |m: String| TrainError::Cache {
        dir: path.to_path_buf(),
        message: m,
    };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let get = |name: &str, dtype: Dtype| -> Result<(Vec<usize>, &[u8])> {
        let t = st
            .tensor(name)
            .map_err(|e| corrupt(format!("`{name}`: {e}")))?;
        if t.dtype() != dtype {
            return Err(corrupt(format!(
                "`{name}` is {:?}, expected {dtype:?}",
                t.dtype()
            )));
        }
        Ok((t.shape().to_vec(), t.data()))
    };
    let i64s = |b: &[u8]| -> Vec<i64> {
        b.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    };
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    };
    let (_, rec) = get("records", Dtype::I64)?;
    let (_, rows) = get("rows", Dtype::I64)?;
    let (records, rows) = (i64s(rec), i64s(rows));
    let total = rows.last().copied().unwrap_or(0) as usize;
    if rows.len() != records.len() + 1 {
        return Err(corrupt("inconsistent `rows`".into()));
    }
    let (mut ids, mut lp, mut tail) = (Vec::new(), Vec::new(), Vec::new());
    if k > 0 {
        let (ids_shape, id_bytes) = get("ids", Dtype::I32)?;
        if ids_shape.get(1) != Some(&k) {
            return Err(corrupt(format!(
                "ids have shape {ids_shape:?}, expected k = {k}"
            )));
        }
        ids = id_bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        lp = f32s(get("log_probs", Dtype::F32)?.1);
        tail = f32s(get("tail_log_mass", Dtype::F32)?.1);
        if tail.len() != total || ids.len() != total * k || lp.len() != total * k {
            return Err(corrupt("inconsistent `rows`".into()));
        }
    }
    let mut width = 0;
    let mut layers = Vec::with_capacity(key.hidden_layers.len());
    for &layer in &key.hidden_layers {
        let (shape, states) = get(&format!("hidden_{layer}"), Dtype::F32)?;
        let weights = f32s(get(&format!("com_weights_{layer}"), Dtype::F32)?.1);
        width = shape.get(1).copied().unwrap_or(0);
        if shape.first() != Some(&total) || weights.len() != total || (width == 0 && total > 0) {
            return Err(corrupt(format!(
                "`hidden_{layer}` has shape {shape:?} and `com_weights_{layer}` {} values, \
                 expected [{total}, d] and {total}",
                weights.len()
            )));
        }
        layers.push((f32s(states), weights));
    }
    for (i, &r) in records.iter().enumerate() {
        let (a, b) = (rows[i] as usize, rows[i + 1] as usize);
        if a > b || b > total {
            return Err(corrupt("inconsistent `rows`".into()));
        }
        out.insert(
            r as usize,
            RecordTargets {
                rows: b - a,
                ids: ids.get(a * k..b * k).unwrap_or_default().to_vec(),
                log_probs: lp.get(a * k..b * k).unwrap_or_default().to_vec(),
                tail: tail.get(a..b).unwrap_or_default().to_vec(),
                layers: layers
                    .iter()
                    .map(|(h, w)| (h[a * width..b * width].to_vec(), w[a..b].to_vec()))
                    .collect(),
            },
        );
    }
    Ok(width)
}

/// Runs a teacher over tokenized records and writes a cache (see [`write_cache`], which builds it from a config).
pub struct CacheWriter<'a> {
    /// The teacher, on an inference device.
    pub teacher: &'a LlamaModel,
    /// Its device.
    pub device: &'a Device,
    /// Records per forward pass.
    pub batch_size: usize,
    /// Records per shard.
    pub shard_records: usize,
}

impl CacheWriter<'_> {
    /// Runs the teacher over every part and writes the cache to `dir` (under a scratch name,
    /// renamed into place at the end). `on_records` is called with the number of records done
    /// after every batch.
    ///
    /// # Errors
    /// [`TrainError::Io`] / [`TrainError::Cache`] when writing fails (the scratch directory is
    /// removed); [`TrainError::Cache`] if `dir` exists.
    pub fn write(
        &self,
        dir: &Path,
        key: &CacheKey,
        teacher_info: serde_json::Value,
        parts: &[(&str, &DistillData)],
        mut on_records: impl FnMut(usize),
    ) -> Result<CacheManifest> {
        if dir.exists() {
            return Err(cache_err(
                dir,
                "exists; remove it (or pass --force) to rebuild",
            ));
        }
        let parent = models::atomic::parent_dir(dir);
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        models::atomic::remove_stale_scratch(parent);
        let scratch = models::atomic::scratch_path(dir);
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(io_err(&scratch))?;
        let result = self.write_parts(&scratch, key, teacher_info, parts, &mut on_records);
        match result {
            Ok(manifest) => {
                std::fs::rename(&scratch, dir).map_err(io_err(dir))?;
                Ok(manifest)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                Err(e)
            }
        }
    }

    fn write_parts(
        &self,
        scratch: &Path,
        key: &CacheKey,
        teacher_info: serde_json::Value,
        parts: &[(&str, &DistillData)],
        on_records: &mut impl FnMut(usize),
    ) -> Result<CacheManifest> {
        let mut entries = BTreeMap::new();
        let mut done = 0;
        for (part, data) in parts {
            let mut shards = Vec::new();
            let mut part_rows = 0;
            for (s, chunk) in data.examples.chunks(self.shard_records).enumerate() {
                let mut shard = ShardValues::new(key.hidden_layers.len());
                for batch_examples in chunk.chunks(self.batch_size) {
                    let refs: Vec<&DistillExample> = batch_examples.iter().collect();
                    if key.top_k > 0 {
                        self.kd_rows(key, &refs, &mut shard)?;
                    } else {
                        self.span_rows(key, &refs, &mut shard)?;
                    }
                    done += refs.len();
                    on_records(done);
                }
                let file = format!("{part}-{s:05}.safetensors");
                let path = scratch.join(&file);
                let n_rows = shard.rows();
                shard.write(&path, key)?;
                shards.push(ShardEntry {
                    file,
                    records: shard.records.len(),
                    rows: n_rows,
                    sha256: sha256_file(&path)?,
                });
                part_rows += n_rows;
            }
            entries.insert(
                part.to_string(),
                PartEntry {
                    data: data.path.display().to_string(),
                    records: [data.records.start, data.records.end],
                    rows: part_rows,
                    shards,
                },
            );
        }
        let manifest = CacheManifest {
            key: key.clone(),
            teacher: teacher_info,
            parts: entries,
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("serialisable");
        models::atomic::write_atomic(&scratch.join(MANIFEST_FILE), &json)?;
        Ok(manifest)
    }

    /// KD rows of one batch: the teacher's top-k at every counted next-token position.
    fn kd_rows(
        &self,
        key: &CacheKey,
        refs: &[&DistillExample],
        shard: &mut ShardValues,
    ) -> Result<()> {
        let k = key.top_k;
        let batch = DistillBatch::new(refs, self.device);
        let seq = batch.dims()[1];
        let logits = super::next_token_logits(self.teacher, &batch);
        let top = teacher_top_k(logits, k, key.temperature);
        let t_ids: Vec<i64> = top
            .ids
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .map_err(data_err)?;
        let t_lp = f32_values(top.log_probs)?;
        let t_tail = f32_values(top.tail_log_mass)?;
        for (bi, e) in refs.iter().enumerate() {
            shard.records.push(e.record as i64);
            for pos in e.target_positions() {
                let at = (bi * (seq - 1) + pos) * k;
                shard
                    .ids
                    .extend(t_ids[at..at + k].iter().map(|&v| v as i32));
                shard.log_probs.extend_from_slice(&t_lp[at..at + k]);
                shard.tail.push(t_tail[bi * (seq - 1) + pos]);
            }
            shard.end_record();
        }
        Ok(())
    }

    /// Span rows of one batch: each stored layer's hidden state and centre-of-mass weight at
    /// every response token.
    fn span_rows(
        &self,
        key: &CacheKey,
        refs: &[&DistillExample],
        shard: &mut ShardValues,
    ) -> Result<()> {
        let batch = DistillBatch::new(refs, self.device);
        let seq = batch.dims()[1];
        let out = self.teacher.forward_hidden(batch.input(), true);
        let attentions = out.attentions.expect("attentions were asked for");
        let mask = batch.attention_mask.clone().float();
        let mut values = Vec::with_capacity(key.hidden_layers.len());
        for &layer in &key.hidden_layers {
            let hidden = &out.hidden_states[layer];
            let d = hidden.dims()[2];
            let weights = com_weights(attentions[layer - 1].clone(), mask.clone());
            values.push((d, f32_values(hidden.clone())?, f32_values(weights)?));
        }
        for (bi, e) in refs.iter().enumerate() {
            shard.records.push(e.record as i64);
            for pos in (0..e.ids.len()).filter(|&t| e.response[t]) {
                let at = bi * seq + pos;
                for ((d, h, w), (states, weights)) in values.iter().zip(&mut shard.layers) {
                    states.extend_from_slice(&h[at * d..(at + 1) * d]);
                    weights.push(w[at]);
                }
            }
            shard.end_record();
        }
        Ok(())
    }
}

fn f32_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(data_err)
}

fn data_err(e: burn::tensor::DataError) -> TrainError {
    TrainError::Eval(format!("reading teacher outputs: {e:?}"))
}

/// The values of one shard being written.
struct ShardValues {
    records: Vec<i64>,
    /// Row offsets, `[records + 1]`.
    offsets: Vec<i64>,
    ids: Vec<i32>,
    log_probs: Vec<f32>,
    tail: Vec<f32>,
    /// Per stored layer: states `[rows × d]`, weights `[rows]`.
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

impl ShardValues {
    fn new(layers: usize) -> Self {
        Self {
            records: Vec::new(),
            offsets: vec![0],
            ids: Vec::new(),
            log_probs: Vec::new(),
            tail: Vec::new(),
            layers: vec![(Vec::new(), Vec::new()); layers],
        }
    }

    fn rows(&self) -> usize {
        self.layers
            .first()
            .map_or(self.tail.len(), |(_, weights)| weights.len())
    }

    fn end_record(&mut self) {
        self.offsets.push(self.rows() as i64);
    }

    fn write(&self, path: &Path, key: &CacheKey) -> Result<()> {
        fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            v.iter().flat_map(|&x| f(x)).collect()
        }
        let n = self.rows();
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![
            (
                "records".into(),
                Dtype::I64,
                vec![self.records.len()],
                le(&self.records, i64::to_le_bytes),
            ),
            (
                "rows".into(),
                Dtype::I64,
                vec![self.offsets.len()],
                le(&self.offsets, i64::to_le_bytes),
            ),
        ];
        if key.top_k > 0 {
            let k = key.top_k;
            tensors.push((
                "ids".into(),
                Dtype::I32,
                vec![n, k],
                le(&self.ids, i32::to_le_bytes),
            ));
            tensors.push((
                "log_probs".into(),
                Dtype::F32,
                vec![n, k],
                le(&self.log_probs, f32::to_le_bytes),
            ));
            tensors.push((
                "tail_log_mass".into(),
                Dtype::F32,
                vec![n],
                le(&self.tail, f32::to_le_bytes),
            ));
        }
        for (&layer, (states, weights)) in key.hidden_layers.iter().zip(&self.layers) {
            let d = states.len().checked_div(n).unwrap_or(0);
            tensors.push((
                format!("hidden_{layer}"),
                Dtype::F32,
                vec![n, d],
                le(states, f32::to_le_bytes),
            ));
            tensors.push((
                format!("com_weights_{layer}"),
                Dtype::F32,
                vec![n],
                le(weights, f32::to_le_bytes),
            ));
        }
        let views = tensors
            .iter()
            .map(|(name, dtype, shape, data)| {
                TensorView::new(*dtype, shape.clone(), data)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| cache_err(path, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let data =
            safetensors::serialize(views, &None).map_err(|e| cache_err(path, e.to_string()))?;
        std::fs::write(path, data).map_err(io_err(path))
    }
}

/// What [`write_cache`] did.
#[derive(Debug, Clone)]
pub enum CacheOutcome {
    /// The cache in place already matches the config.
    UpToDate,
    /// A cache was written.
    Written {
        /// Its manifest.
        manifest: Box<CacheManifest>,
        /// Records run through the teacher.
        records: usize,
        /// Rows stored: counted next-token positions (KD), response tokens (spans).
        positions: usize,
        /// Bytes on disk.
        bytes: u64,
    },
}

/// `mrl distill cache`: runs the config's teacher over its training (and `[eval]`) records in
/// batches of `batch_size` and writes the cache to `[cache] dir`. A cache in place that
/// matches is left alone; one that does not is replaced only with `force` (the new one is
/// written beside it and swapped in when complete). `on_records(done, total)` reports
/// progress.
///
/// # Errors
/// [`TrainError::ConfigValue`] when the config has no `[cache]`; teacher, data and write
/// errors; [`TrainError::Cache`] for a mismatching cache without `force`.
pub fn write_cache(
    config: &super::DistillConfig,
    batch_size: usize,
    force: bool,
    mut on_records: impl FnMut(usize, usize),
) -> Result<CacheOutcome> {
    let dir = config.cache_dir().ok_or_else(|| {
        crate::config::bad("cache", "the config has no [cache] section (dir, top_k)")
    })?;
    let shard_records = config.cache.as_ref().map_or(256, |c| c.shard_records);
    let teacher_path = super::resolve_teacher(&config.teacher.path)?;
    let device = config.device.device()?;
    let teacher_config = models::LlamaConfig::from_pretrained(&teacher_path)?;
    let tokenizer = super::load_tokenizer(&teacher_path)?;
    let (train, dev) = if let Some(section) = config.objective.sra() {
        // The teacher's own tokenization of the records the SRA run keeps.
        let student_config = super::student_init(config).student_config(&teacher_config)?;
        let pairs = section
            .pairs
            .iter()
            .map(|p| (p.teacher_layer, p.student_layer));
        super::check_pair_layers(
            "objective.sra.pairs",
            pairs,
            1,
            (&student_config, &teacher_config),
        )?;
        let (train, dev, _) =
            super::cross_data(config, &tokenizer, (&student_config, &teacher_config))?;
        (train.teacher_side(), dev.map(|d| d.teacher_side()))
    } else {
        let eos = super::eos_token(&teacher_config)?;
        super::load_data(config, &tokenizer, eos)?
    };
    let key = super::expected_cache_key(config, &teacher_path, &train, dev.as_ref())?;
    if dir.join(MANIFEST_FILE).is_file() {
        match TeacherCache::open(&dir, &key) {
            Ok(_) => return Ok(CacheOutcome::UpToDate),
            Err(_) if force => {}
            Err(e) => return Err(e),
        }
    } else if dir.exists() && !force {
        return Err(cache_err(
            &dir,
            "exists but holds no manifest.json; remove it or pass --force",
        ));
    }
    let (_, teacher) =
        models::LlamaModel::from_pretrained(&teacher_path, models::LayerSelection::All, &device)?;
    let mut parts: Vec<(&str, &DistillData)> = vec![("train", &train)];
    if let Some(dev) = &dev {
        parts.push(("dev", dev));
    }
    let total: usize = parts.iter().map(|(_, d)| d.len()).sum();
    let writer = CacheWriter {
        teacher: &teacher,
        device: &device,
        batch_size: batch_size.max(1),
        shard_records,
    };
    let info = serde_json::json!({
        "path": teacher_path.display().to_string(),
        "layers": teacher_config.num_hidden_layers,
        "vocab_size": teacher_config.vocab_size,
    });
    let staging = models::atomic::scratch_path(&dir);
    let _ = std::fs::remove_dir_all(&staging);
    on_records(0, total);
    let manifest = writer.write(&staging, &key, info, &parts, |done| on_records(done, total))?;
    let positions = manifest.parts.values().map(|p| p.rows).sum();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    std::fs::rename(&staging, &dir).map_err(io_err(&dir))?;
    let bytes = std::fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(CacheOutcome::Written {
        manifest: Box::new(manifest),
        records: total,
        positions,
        bytes,
    })
}
