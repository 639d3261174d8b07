//! The teacher cache: the teacher's next-token distribution at every counted position of the
//! training (and dev) records, computed once by `mrl distill cache` and read by every run that
//! shares the teacher, the data, the template, `top_k` and the temperature.
//!
//! # Layout
//! A directory with `manifest.json` and safetensors shards `{part}-{n:05}.safetensors`, each
//! holding up to `shard_records` records:
//! - `records`: I64 `[n]`, the records' indices in their file;
//! - `rows`: I64 `[n + 1]`, record `i`'s positions are rows `rows[i]..rows[i + 1]` (its
//!   counted next-token positions, in order);
//! - `ids`: I32 `[rows, k]`, the teacher's `k` most likely next tokens, most likely first;
//! - `log_probs`: F32 `[rows, k]`, their log-probabilities under `softmax(z / τ)`;
//! - `tail_log_mass`: F32 `[rows]`, the log of the probability of every other token,
//!   computed as a log-sum-exp (exact, not `1 − Σ`).
//!
//! The manifest records the teacher's checksum (SHA-256 over its weights, `config.json` and
//! `tokenizer.json`), the data's checksum (SHA-256 over every tokenized record: index, ids and
//! response mask — so a change of template, tokenizer or `max_length` also shows), the
//! template, `k`, `τ`, the hidden layers stored (none for plain KD), and every shard's SHA-256.
//! [`TeacherCache::open`] refuses a cache whose manifest differs from what the run expects,
//! naming the field. The directory is written under a scratch name and renamed into place
//! when complete: a killed run leaves no half-written cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use distill_objectives::{teacher_top_k, TeacherTarget};
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
    /// Tokens kept per position.
    pub top_k: usize,
    /// Softmax temperature of the stored log-probabilities.
    pub temperature: f64,
    /// Truncation length in tokens.
    pub max_length: usize,
    /// Teacher hidden layers stored per position (none for plain KD).
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
pub fn data_sha256(examples: &[DistillExample]) -> String {
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

/// The cached targets of one record.
#[derive(Debug, Clone, PartialEq)]
struct RecordTargets {
    /// `[rows × k]`.
    ids: Vec<i32>,
    /// `[rows × k]`.
    log_probs: Vec<f32>,
    /// `[rows]`.
    tail: Vec<f32>,
}

/// A cache opened for reading: the targets of every record of a part, by record index.
#[derive(Debug, Clone)]
pub struct CachedPart {
    dir: PathBuf,
    top_k: usize,
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
            for shard in &part.shards {
                let path = dir.join(&shard.file);
                if sha256_file(&path)? != shard.sha256 {
                    return Err(cache_err(
                        dir,
                        format!("{} does not match its checksum in manifest.json (corrupt or edited); rebuild the cache with --force", shard.file),
                    ));
                }
                read_shard(&path, expected.top_k, &mut records)?;
            }
            parts.insert(
                name.clone(),
                CachedPart {
                    dir: dir.to_path_buf(),
                    top_k: expected.top_k,
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
    /// The teacher targets of a batch, `[batch, seq − 1, k]`, aligned with
    /// [`DistillBatch::targets`]; positions that do not count hold a uniform filler
    /// (k ids and the tail at `1/(k+1)` each), which the losses mask out.
    ///
    /// # Errors
    /// [`TrainError::Cache`] when a record is missing or its row count does not match.
    pub fn batch_target(
        &self,
        examples: &[&DistillExample],
        batch: &DistillBatch,
        device: &Device,
    ) -> Result<TeacherTarget> {
        let [b, seq] = batch.dims();
        let (t, k) = (seq - 1, self.top_k);
        let filler = -((k + 1) as f32).ln();
        let mut ids = vec![0i64; b * t * k];
        let mut log_probs = vec![filler; b * t * k];
        let mut tail = vec![filler; b * t];
        for chunk in ids.chunks_mut(k) {
            for (j, v) in chunk.iter_mut().enumerate() {
                *v = j as i64;
            }
        }
        for (bi, e) in examples.iter().enumerate() {
            let cached = self
                .records
                .get(&e.record)
                .ok_or_else(|| TrainError::Cache {
                    dir: self.dir.clone(),
                    message: format!("record {} is not in the cache", e.record),
                })?;
            let positions: Vec<usize> = e.target_positions().collect();
            if positions.len() != cached.tail.len() {
                return Err(TrainError::Cache {
                    dir: self.dir.clone(),
                    message: format!(
                        "record {}: {} cached positions, the data has {}",
                        e.record,
                        cached.tail.len(),
                        positions.len()
                    ),
                });
            }
            for (r, &pos) in positions.iter().enumerate() {
                let at = (bi * t + pos) * k;
                for j in 0..k {
                    ids[at + j] = i64::from(cached.ids[r * k + j]);
                    log_probs[at + j] = cached.log_probs[r * k + j];
                }
                tail[bi * t + pos] = cached.tail[r];
            }
        }
        Ok(TeacherTarget::TopK(distill_objectives::TopKTarget {
            ids: Tensor::<3, Int>::from_data(TensorData::new(ids, [b, t, k]), device),
            log_probs: Tensor::from_data(TensorData::new(log_probs, [b, t, k]), device),
            tail_log_mass: Tensor::from_data(TensorData::new(tail, [b, t]), device),
        }))
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

fn read_shard(path: &Path, k: usize, out: &mut BTreeMap<usize, RecordTargets>) -> Result<()> {
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
    let (ids_shape, ids) = get("ids", Dtype::I32)?;
    let (_, lp) = get("log_probs", Dtype::F32)?;
    let (_, tail) = get("tail_log_mass", Dtype::F32)?;
    if ids_shape.get(1) != Some(&k) {
        return Err(corrupt(format!(
            "ids have shape {ids_shape:?}, expected k = {k}"
        )));
    }
    let (records, rows) = (i64s(rec), i64s(rows));
    let ids: Vec<i32> = ids
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let (lp, tail) = (f32s(lp), f32s(tail));
    if rows.len() != records.len() + 1 || rows.last().copied().unwrap_or(0) as usize != tail.len() {
        return Err(corrupt("inconsistent `rows`".into()));
    }
    for (i, &r) in records.iter().enumerate() {
        let (a, b) = (rows[i] as usize, rows[i + 1] as usize);
        out.insert(
            r as usize,
            RecordTargets {
                ids: ids[a * k..b * k].to_vec(),
                log_probs: lp[a * k..b * k].to_vec(),
                tail: tail[a..b].to_vec(),
            },
        );
    }
    Ok(())
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
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cache".into());
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        let scratch = parent.join(format!(".{name}.partial-{}", std::process::id()));
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
        let k = key.top_k;
        let mut entries = BTreeMap::new();
        let mut done = 0;
        for (part, data) in parts {
            let mut shards = Vec::new();
            let mut part_rows = 0;
            for (s, chunk) in data.examples.chunks(self.shard_records).enumerate() {
                let mut records = Vec::new();
                let mut rows = vec![0i64];
                let mut ids: Vec<i32> = Vec::new();
                let mut log_probs: Vec<f32> = Vec::new();
                let mut tail: Vec<f32> = Vec::new();
                for batch_examples in chunk.chunks(self.batch_size) {
                    let refs: Vec<&DistillExample> = batch_examples.iter().collect();
                    let batch = DistillBatch::new(&refs, self.device);
                    let seq = batch.dims()[1];
                    let logits = super::next_token_logits(self.teacher, &batch);
                    let top = teacher_top_k(logits, k, key.temperature);
                    let t_ids: Vec<i64> = top
                        .ids
                        .into_data()
                        .convert::<i64>()
                        .try_to_vec::<i64>()
                        .map_err(data_err)?;
                    let t_lp: Vec<f32> = top
                        .log_probs
                        .into_data()
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .map_err(data_err)?;
                    let t_tail: Vec<f32> = top
                        .tail_log_mass
                        .into_data()
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .map_err(data_err)?;
                    for (bi, e) in refs.iter().enumerate() {
                        records.push(e.record as i64);
                        for pos in e.target_positions() {
                            let at = (bi * (seq - 1) + pos) * k;
                            ids.extend(t_ids[at..at + k].iter().map(|&v| v as i32));
                            log_probs.extend_from_slice(&t_lp[at..at + k]);
                            tail.push(t_tail[bi * (seq - 1) + pos]);
                        }
                        rows.push(tail.len() as i64);
                    }
                    done += refs.len();
                    on_records(done);
                }
                let file = format!("{part}-{s:05}.safetensors");
                let path = scratch.join(&file);
                let n_rows = tail.len();
                write_shard(&path, &records, &rows, &ids, &log_probs, &tail, k)?;
                shards.push(ShardEntry {
                    file,
                    records: records.len(),
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
        models::error::write_atomic(&scratch.join(MANIFEST_FILE), &json)?;
        Ok(manifest)
    }
}

fn data_err(e: burn::tensor::DataError) -> TrainError {
    TrainError::Eval(format!("reading teacher outputs: {e:?}"))
}

fn write_shard(
    path: &Path,
    records: &[i64],
    rows: &[i64],
    ids: &[i32],
    log_probs: &[f32],
    tail: &[f32],
    k: usize,
) -> Result<()> {
    let bytes = |v: Vec<u8>| v;
    let rec_b = bytes(records.iter().flat_map(|v| v.to_le_bytes()).collect());
    let rows_b = bytes(rows.iter().flat_map(|v| v.to_le_bytes()).collect());
    let ids_b = bytes(ids.iter().flat_map(|v| v.to_le_bytes()).collect());
    let lp_b = bytes(log_probs.iter().flat_map(|v| v.to_le_bytes()).collect());
    let tail_b = bytes(tail.iter().flat_map(|v| v.to_le_bytes()).collect());
    let n = tail.len();
    fn view<'a>(
        path: &Path,
        dtype: Dtype,
        shape: Vec<usize>,
        data: &'a [u8],
    ) -> Result<TensorView<'a>> {
        TensorView::new(dtype, shape, data).map_err(|e| TrainError::Cache {
            dir: path.to_path_buf(),
            message: e.to_string(),
        })
    }
    let tensors = vec![
        (
            "records",
            view(path, Dtype::I64, vec![records.len()], &rec_b)?,
        ),
        ("rows", view(path, Dtype::I64, vec![rows.len()], &rows_b)?),
        ("ids", view(path, Dtype::I32, vec![n, k], &ids_b)?),
        ("log_probs", view(path, Dtype::F32, vec![n, k], &lp_b)?),
        ("tail_log_mass", view(path, Dtype::F32, vec![n], &tail_b)?),
    ];
    let data = safetensors::serialize(tensors, &None).map_err(|e| TrainError::Cache {
        dir: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, data).map_err(io_err(path))
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
        /// Counted positions stored.
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
    let eos = super::eos_token(&teacher_config)?;
    let (train, dev) = super::load_data(config, &tokenizer, eos)?;
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
    let positions: usize = parts.iter().map(|(_, d)| d.num_targets()).sum();
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
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cache".into());
    let staging = dir.with_file_name(format!(".{name}.new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    on_records(0, total);
    let manifest = writer.write(&staging, &key, info, &parts, |done| on_records(done, total))?;
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
