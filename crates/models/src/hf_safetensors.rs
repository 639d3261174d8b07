//! Writing a module's weights as a Hugging Face `model.safetensors`, shared by every
//! architecture's export: Burn's layouts become PyTorch's (`BurnToPyTorchAdapter`: Linear
//! weights transposed, norm `gamma`/`beta` renamed), then the module paths are renamed by the
//! architecture's regex remaps, with `format = pt` metadata as transformers expects.
//!
//! The file gets the permissions of any newly created file (`0666` minus the umask, typically
//! `0644`), like every other file the exports write. Burn's store alone would publish it as
//! `0600`: safetensors writes through a `tempfile` (created `0600`) that is renamed into place,
//! and Burn's commit only carries over the mode of a file it replaces. So the weights are
//! staged onto a file created here first, whose mode the commit keeps.

use std::path::Path;

use burn::module::Module;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};

use crate::error::{ModelError, Result};

/// Writes `module` to `path` with Hugging Face key names (`remaps`: `(regex, replacement)` over
/// Burn's module paths, applied in order).
///
/// Written to a scratch sibling and renamed into place: an existing file at `path` is either
/// kept or replaced whole.
///
/// # Errors
/// [`ModelError::Weights`] naming `path` when the file cannot be written; [`ModelError::Write`]
/// when the scratch file cannot be created or renamed.
pub(crate) fn save_hf_safetensors<M: Module>(
    module: &M,
    path: &Path,
    remaps: &[(&str, &str)],
) -> Result<()> {
    let staged = crate::atomic::scratch_path(path);
    let write_err = |source| ModelError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::create(&staged).map_err(write_err)?;
    let result = save_into(module, &staged, remaps)
        .map_err(|e| match e {
            ModelError::Weights { message, .. } => ModelError::Weights {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
        .and_then(|()| std::fs::rename(&staged, path).map_err(write_err));
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result
}

/// Burn's safetensors store writing `module` over the existing file `path` (whose mode it keeps).
fn save_into<M: Module>(module: &M, path: &Path, remaps: &[(&str, &str)]) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path)
        .clear_metadata()
        .metadata("format", "pt")
        .with_to_adapter(BurnToPyTorchAdapter)
        .overwrite(true);
    for (from, to) in remaps {
        store = store.with_key_remapping(*from, *to);
    }
    module
        .save_into(&mut store)
        .map_err(|e| ModelError::Weights {
            path: path.to_path_buf(),
            message: format!("cannot write: {e}"),
        })
}
