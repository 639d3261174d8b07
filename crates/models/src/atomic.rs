//! Writing outputs so that nothing half-written is ever left under the final name, and no
//! scratch file outlives the process that made it.
//!
//! Every file or directory the programs write goes first to a *scratch sibling*
//! `.{name}.{pid}.tmp` in the same directory and is renamed into place once complete. A process
//! that is killed leaves its scratch sibling behind; [`remove_stale_scratch`] deletes those whose
//! process no longer runs (on Linux, where `/proc` tells; elsewhere they are left alone).
//!
//! A path that exists and is not a regular file or directory — a device such as `/dev/null` or
//! `/dev/stdout`, a FIFO — cannot be replaced by a rename, so it is written in place (and its
//! errors, e.g. `/dev/full`'s "no space left", are reported). A symbolic link is followed: its
//! target is replaced, not the link.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// The scratch sibling of `path` owned by this process: `.{name}.{pid}.tmp` beside it.
pub fn scratch_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.{}.tmp", std::process::id()))
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The process id of a scratch name `.{name}.{pid}.tmp`, if `name` is one.
fn scratch_owner(file_name: &str) -> Option<u32> {
    let stem = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, pid) = stem.rsplit_once('.')?;
    pid.parse().ok()
}

/// Whether process `pid` may still be running (always `true` where that cannot be told).
fn may_be_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Removes the scratch files and directories in `dir` (names `.{name}.{pid}.tmp`) whose process
/// no longer runs; returns how many were removed. Best effort: an entry that cannot be removed
/// is left.
pub fn remove_stale_scratch(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = scratch_owner(&name) else {
            continue;
        };
        if may_be_running(pid) {
            continue;
        }
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path).is_ok(),
            Ok(_) => std::fs::remove_file(&path).is_ok(),
            Err(_) => false,
        };
        removed += usize::from(gone);
    }
    removed
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
///
/// # Errors
/// [`ModelError::Write`] naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes what `fill` produces to `path` atomically: into the scratch sibling (buffered,
/// synced), then renamed over `path`, so `path` is either the old file or the whole new one and
/// no scratch file is left on an error. A `path` that is a device or a FIFO is written in
/// place; a symbolic link's target is replaced. Stale scratch files of killed processes in the
/// same directory are removed first.
///
/// # Errors
/// [`ModelError::Write`] naming `path` when `fill` or any file operation fails.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let fail = |source| ModelError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Follow a symbolic link to the file it names (the link itself stays).
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(fail)?,
        _ => path.to_path_buf(),
    };
    if let Ok(meta) = std::fs::metadata(&target) {
        if !meta.is_file() && !meta.is_dir() {
            // A device or a FIFO: there is nothing to rename over.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .map_err(fail)?;
            let mut out = std::io::BufWriter::new(file);
            return fill(&mut out).and_then(|()| out.flush()).map_err(fail);
        }
    }
    let dir = parent_dir(&target);
    remove_stale_scratch(dir);
    let tmp = scratch_path(&target);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::new(file);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mrl-atomic-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn scratch_names_carry_the_pid_and_are_recognised() {
        let p = scratch_path(Path::new("out/report.json"));
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(p.parent().unwrap(), Path::new("out"));
        assert_eq!(scratch_owner(&name), Some(std::process::id()));
        assert_eq!(scratch_owner("..cache.7.tmp.7.tmp"), Some(7));
        assert_eq!(scratch_owner(".report.json"), None);
        assert_eq!(scratch_owner("report.12.tmp"), None);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_scratch() {
        let dir = temp_dir("fail");
        let path = dir.join("out.jsonl");
        std::fs::write(&path, "old").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("out.jsonl"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_scratch_of_dead_processes_is_removed_and_live_ones_kept() {
        if !Path::new("/proc/self").exists() {
            return; // the liveness of a pid cannot be told here
        }
        let dir = temp_dir("stale");
        // u32::MAX is above Linux's pid_max: never a running process.
        let dead_file = dir.join(format!(".out.json.{}.tmp", u32::MAX));
        let dead_dir = dir.join(format!(".step-00000010.{}.tmp", u32::MAX));
        let mine = scratch_path(&dir.join("other.json"));
        std::fs::write(&dead_file, "x").unwrap();
        std::fs::create_dir_all(dead_dir.join("inner")).unwrap();
        std::fs::write(&mine, "x").unwrap();
        std::fs::write(dir.join("keep.json"), "x").unwrap();
        assert_eq!(remove_stale_scratch(&dir), 2);
        assert!(!dead_file.exists() && !dead_dir.exists());
        assert!(mine.exists() && dir.join("keep.json").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn devices_are_written_in_place_and_their_errors_reported() {
        if Path::new("/dev/null").exists() {
            write_atomic(Path::new("/dev/null"), b"discarded").unwrap();
            assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
        }
        if Path::new("/dev/full").exists() {
            let err = write_atomic(Path::new("/dev/full"), b"x").unwrap_err();
            assert!(err.to_string().contains("/dev/full"), "{err}");
            assert!(!std::fs::metadata("/dev/full").unwrap().is_file());
        }
    }

    #[test]
    fn a_symbolic_link_keeps_pointing_at_the_rewritten_target() {
        #[cfg(unix)]
        {
            let dir = temp_dir("link");
            let target = dir.join("real.json");
            let link = dir.join("link.json");
            std::fs::write(&target, "old").unwrap();
            std::os::unix::fs::symlink(&target, &link).unwrap();
            write_atomic(&link, b"new").unwrap();
            assert!(std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
