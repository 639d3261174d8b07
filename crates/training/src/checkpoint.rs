//! Checkpoints: written atomically, verified when read.
//!
//! A checkpoint is a directory `<output_dir>/checkpoints/step-NNNNNNNN/` holding `model.bpk`
//! (Burn's burnpack: every trained parameter — backbone and objective — with its parameter id,
//! which the optimizer state is keyed by), `optim.bpk` (the AdamW moments of every parameter
//! group) and `state.json` (format version, task, step, seed, the losses so far, the length and
//! FNV-1a hash of every other file). It is written into a hidden temporary directory that is renamed into place
//! once every file is on disk, and only then is `checkpoints/latest` (the name of the newest
//! checkpoint) replaced — itself by writing a temporary file and renaming it. A crash at any
//! point leaves the previous checkpoint intact and `latest` pointing at a complete one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, TrainError};

/// Name of the file that points at the newest checkpoint.
pub const LATEST: &str = "latest";
/// Name of the metadata file inside a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// The checkpoint format written (2: one model and one optimizer file; 1 had one per module).
pub const VERSION: u32 = 2;

/// Writes `bytes` to `path` atomically ([`models::atomic::write_atomic`]: a temporary sibling,
/// synced, renamed over `path`). Readers see the old file or the new one, never a partial one.
///
/// # Errors
/// [`TrainError::Io`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    models::atomic::write_atomic(path, bytes).map_err(|e| match e {
        models::ModelError::Write { path, source } => TrainError::Io { path, source },
        other => TrainError::Model(other),
    })
}

/// 64-bit FNV-1a: detects truncated or altered checkpoint files.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Length and hash of one checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Bytes.
    pub len: u64,
    /// [`fnv1a64`] of the content, as 16 hex digits.
    pub fnv1a64: String,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The task that wrote it (`embedding`, …).
    #[serde(default)]
    pub task: String,
    /// Optimisation steps completed.
    pub step: usize,
    /// The run's seed.
    pub seed: u64,
    /// The total loss of every step so far (to continue the log).
    pub losses: Vec<f64>,
    /// The config keys a resumed run must share with this one (see
    /// [`Task::run_config`](crate::Task::run_config)).
    #[serde(default)]
    pub config: serde_json::Value,
    /// The evaluation before the first step, as JSON text (a resumed run reports it).
    #[serde(default)]
    pub before: Option<String>,
    /// Every other file of the checkpoint.
    pub files: BTreeMap<String, FileDigest>,
}

/// The files of a checkpoint, by name, and its state.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Step, seed, losses.
    pub state: CheckpointState,
    /// File name → content (verified against `state.files` when read).
    pub files: BTreeMap<String, Vec<u8>>,
}

/// `<output_dir>/checkpoints`.
pub fn checkpoints_dir(output_dir: &Path) -> PathBuf {
    output_dir.join("checkpoints")
}

fn step_dir_name(step: usize) -> String {
    format!("step-{step:08}")
}

impl Checkpoint {
    /// Writes the checkpoint under `root` (`…/checkpoints`), points `latest` at it and removes
    /// all but the newest `keep` checkpoints. Returns its directory.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file that could not be written.
    pub fn save(mut self, root: &Path, keep: usize) -> Result<PathBuf> {
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        let name = step_dir_name(self.state.step);
        let final_dir = root.join(&name);
        models::atomic::remove_stale_scratch(root);
        let tmp_dir = models::atomic::scratch_path(&final_dir);
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir).map_err(io_err(&tmp_dir))?;
        }
        std::fs::create_dir_all(&tmp_dir).map_err(io_err(&tmp_dir))?;
        self.state.files = self
            .files
            .iter()
            .map(|(n, b)| {
                (
                    n.clone(),
                    FileDigest {
                        len: b.len() as u64,
                        fnv1a64: format!("{:016x}", fnv1a64(b)),
                    },
                )
            })
            .collect();
        for (n, bytes) in &self.files {
            write_atomic(&tmp_dir.join(n), bytes)?;
        }
        let state = serde_json::to_vec_pretty(&self.state).expect("state serialises");
        write_atomic(&tmp_dir.join(STATE_FILE), &state)?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(io_err(&final_dir))?;
        }
        std::fs::rename(&tmp_dir, &final_dir).map_err(io_err(&final_dir))?;
        sync_dir(root);
        write_atomic(&root.join(LATEST), format!("{name}\n").as_bytes())?;
        sync_dir(root);
        prune(root, keep, &name)?;
        Ok(final_dir)
    }

    /// Reads the checkpoint `latest` points at under `root`.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when there is no checkpoint (naming what is missing), when a
    /// file is missing, or when a file's length or hash differs from `state.json` (corrupt).
    pub fn load_latest(root: &Path) -> Result<Self> {
        let latest = root.join(LATEST);
        let name = std::fs::read_to_string(&latest).map_err(|e| TrainError::Checkpoint {
            path: latest.clone(),
            message: format!("no checkpoint to resume from ({e})"),
        })?;
        Self::load(&root.join(name.trim()))
    }

    /// Reads and verifies the checkpoint directory `dir`.
    ///
    /// # Errors
    /// As [`Checkpoint::load_latest`].
    pub fn load(dir: &Path) -> Result<Self> {
        let fail = |path: &Path, message: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let state_path = dir.join(STATE_FILE);
        let text = std::fs::read(&state_path)
            .map_err(|e| fail(&state_path, format!("cannot read ({e})")))?;
        let state: CheckpointState = serde_json::from_slice(&text)
            .map_err(|e| fail(&state_path, format!("corrupt: {e}")))?;
        if state.version != VERSION {
            return Err(fail(
                &state_path,
                format!(
                    "checkpoint format {} (this build reads format {VERSION}); start the run \
                     afresh or use the build that wrote it",
                    state.version
                ),
            ));
        }
        let mut files = BTreeMap::new();
        for (name, digest) in &state.files {
            let path = dir.join(name);
            let bytes =
                std::fs::read(&path).map_err(|e| fail(&path, format!("cannot read ({e})")))?;
            let hash = format!("{:016x}", fnv1a64(&bytes));
            if bytes.len() as u64 != digest.len || hash != digest.fnv1a64 {
                return Err(fail(
                    &path,
                    format!(
                        "corrupt: {} bytes with hash {hash}, state.json records {} bytes with hash {}",
                        bytes.len(),
                        digest.len,
                        digest.fnv1a64
                    ),
                ));
            }
            files.insert(name.clone(), bytes);
        }
        Ok(Self { state, files })
    }

    /// The content of file `name`.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when the checkpoint has no such file.
    pub fn file(&self, name: &str, dir: &Path) -> Result<&[u8]> {
        self.files
            .get(name)
            .map(|v| v.as_slice())
            .ok_or_else(|| TrainError::Checkpoint {
                path: dir.join(name),
                message: "missing from the checkpoint".to_string(),
            })
    }
}

/// Best-effort fsync of a directory (makes renames durable on Linux).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Removes all but the newest `keep` `step-*` directories (never `current`); the scratch
/// directories of killed runs are removed before each save
/// ([`models::atomic::remove_stale_scratch`]).
fn prune(root: &Path, keep: usize, current: &str) -> Result<()> {
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_err(root))? {
        let entry = entry.map_err(io_err(root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("step-") && entry.path().is_dir() {
            steps.push(name);
        }
    }
    steps.sort();
    let excess = steps.len().saturating_sub(keep);
    for name in steps.into_iter().take(excess).filter(|n| n != current) {
        let path = root.join(&name);
        std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
    }
    Ok(())
}
