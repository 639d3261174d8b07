//! Finding the model a config names.

use std::path::PathBuf;

use models::ModelError;

/// Resolves `spec` to a model directory, looking in this order:
/// 1. `spec` as a directory;
/// 2. `$MRL_SHARED/models/<name>` (`MRL_SHARED` defaults to `../shared`), where `<name>` is
///    the part of a Hugging Face id after the `/` (`all-MiniLM-L6-v2`);
/// 3. the Hugging Face hub cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`,
///    `~/.cache/huggingface/hub`), as [`models::resolve_model_dir`].
///
/// Nothing is downloaded.
///
/// # Errors
/// [`ModelError::NotFound`] listing every place that was tried ("model `…` not found; looked
/// in: …").
pub fn resolve_model(spec: &str) -> Result<PathBuf, ModelError> {
    let direct = crate::config::expand_path(spec);
    if direct.is_dir() {
        return Ok(direct);
    }
    let shared = std::env::var("MRL_SHARED").unwrap_or_else(|_| "../shared".to_string());
    let name = spec.rsplit('/').next().unwrap_or(spec);
    let in_shared = PathBuf::from(shared).join("models").join(name);
    if in_shared.is_dir() {
        return Ok(in_shared);
    }
    let caches = models::resolve::hf_cache_dirs(|name| std::env::var_os(name));
    match models::resolve::resolve_model_dir_in(spec, &caches) {
        Ok(dir) => Ok(dir),
        Err(ModelError::NotFound { spec, searched }) => {
            let mut all = vec![in_shared];
            all.extend(searched.into_iter().filter(|p| *p != direct));
            all.insert(0, direct);
            Err(ModelError::NotFound {
                spec,
                searched: all,
            })
        }
        Err(other) => Err(other),
    }
}
