//! Writing a module's weights as a Hugging Face `model.safetensors`, shared by every
//! architecture's export: Burn's layouts become PyTorch's (`BurnToPyTorchAdapter`: Linear
//! weights transposed, norm `gamma`/`beta` renamed), then the module paths are renamed by the
//! architecture's regex remaps, with `format = pt` metadata as transformers expects.

use std::path::Path;

use burn::module::Module;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};

use crate::error::{ModelError, Result};

/// Writes `module` to `path` with Hugging Face key names (`remaps`: `(regex, replacement)` over
/// Burn's module paths, applied in order).
///
/// # Errors
/// [`ModelError::Weights`] naming `path` when the file cannot be written.
pub(crate) fn save_hf_safetensors<M: Module>(
    module: &M,
    path: &Path,
    remaps: &[(&str, &str)],
) -> Result<()> {
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
