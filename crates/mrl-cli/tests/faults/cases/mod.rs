//! The case table: every command's generated bad inputs (and a few positive controls).

mod distill;
mod encode;
mod eval;
mod generate;
mod train;

use std::path::Path;
use std::sync::Arc;

use crate::fixtures::{self, Fixtures};
use crate::harness::{Case, Ctx};

/// Every case, grouped by command.
pub fn all(fx: &Fixtures) -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(eval::cases(fx));
    cases.extend(encode::cases(fx));
    cases.extend(generate::cases(fx));
    cases.extend(train::cases(fx));
    cases.extend(distill::cases(fx));
    cases
}

/// Spoils a model directory in place.
pub type Spoil = Arc<dyn Fn(&Path) + Send + Sync>;

/// One way to corrupt a model directory, and what the error must name.
pub struct ModelFault {
    pub name: &'static str,
    pub spoil: Spoil,
    pub names: Vec<String>,
}

fn fault(
    name: &'static str,
    names: &[&str],
    spoil: impl Fn(&Path) + Send + Sync + 'static,
) -> ModelFault {
    ModelFault {
        name,
        spoil: Arc::new(spoil),
        names: names.iter().map(|s| s.to_string()).collect(),
    }
}

/// Invalid UTF-8 (a lone continuation byte and an invalid start byte) inside otherwise
/// plausible text.
pub const INVALID_UTF8: &[u8] = b"a man is playing \xff\xfe a guitar .\n";

/// Every way to spoil a model directory with the weight tensors `tensors` (F32).
pub fn model_faults(tensors: &[String; 2]) -> Vec<ModelFault> {
    let st = "model.safetensors";
    let [t0, t1] = tensors.clone();
    let (t0b, t1b, t1c, t1d) = (t0.clone(), t1.clone(), t1.clone(), t1.clone());
    vec![
        fault("weights-truncated", &[st], |d| {
            let p = d.join("model.safetensors");
            fixtures::truncate(&p, fixtures::len(&p) / 2)
        }),
        fault("weights-header-length-beyond-file", &[st], |d| {
            fixtures::overwrite(&d.join("model.safetensors"), 0, &u64::MAX.to_le_bytes())
        }),
        fault("weights-header-garbage", &[st], |d| {
            fixtures::overwrite(&d.join("model.safetensors"), 8, b"garbage!garbage!")
        }),
        fault("weights-empty-file", &[st], |d| {
            std::fs::write(d.join("model.safetensors"), b"").unwrap()
        }),
        fault("weights-missing-file", &[st], |d| {
            std::fs::remove_file(d.join("model.safetensors")).unwrap()
        }),
        fault("weights-nan", &[&t0, st], move |d| {
            fixtures::set_weight(&d.join("model.safetensors"), &t0b, 3, f32::NAN)
        }),
        fault("weights-inf", &[&t1, st], move |d| {
            fixtures::set_weight(&d.join("model.safetensors"), &t1b, 0, f32::INFINITY)
        }),
        fault("weights-wrong-shape", &[&t1, st], move |d| {
            fixtures::shrink_tensor(&d.join("model.safetensors"), &t1c)
        }),
        fault("weights-missing-tensor", &[&t1, st], move |d| {
            fixtures::drop_tensor(&d.join("model.safetensors"), &t1d)
        }),
        fault("config-json-garbage", &["config.json"], |d| {
            std::fs::write(d.join("config.json"), "{\"hidden_size\": 32,, oops").unwrap()
        }),
        fault("config-json-missing-field", &["hidden_size"], |d| {
            edit_json(&d.join("config.json"), |m| {
                m.remove("hidden_size");
            })
        }),
        fault("config-json-wrong-type", &["hidden_size"], |d| {
            edit_json(&d.join("config.json"), |m| {
                m.insert("hidden_size".into(), "wide".into());
            })
        }),
        fault("config-json-zero-layers", &["num_hidden_layers"], |d| {
            edit_json(&d.join("config.json"), |m| {
                m.insert("num_hidden_layers".into(), 0.into());
            })
        }),
        fault("tokenizer-json-garbage", &["tokenizer.json"], |d| {
            std::fs::write(d.join("tokenizer.json"), "{\"model\": [1, 2").unwrap()
        }),
        fault("tokenizer-json-missing", &["tokenizer.json"], |d| {
            std::fs::remove_file(d.join("tokenizer.json")).unwrap()
        }),
    ]
}

/// The faults of [`model_faults`] named `names` (for commands that get a subset).
pub fn some_model_faults(tensors: &[String; 2], names: &[&str]) -> Vec<ModelFault> {
    let all = model_faults(tensors);
    for n in names {
        assert!(all.iter().any(|f| f.name == *n), "no model fault {n}");
    }
    all.into_iter()
        .filter(|f| names.contains(&f.name))
        .collect()
}

/// Rewrites the JSON object in `path`.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(value.as_object_mut().unwrap());
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

/// Copies `base` to `<case>/<name>`, spoils it and returns its path.
pub fn spoiled_copy(ctx: &Ctx, base: &Path, name: &str, spoil: &Spoil) -> String {
    let dir = ctx.dir.join(name);
    fixtures::copy_dir(base, &dir);
    spoil(&dir);
    dir.display().to_string()
}

/// The flags `defaults` (flag, value) with the pairs of `extra` replacing a default of the
/// same flag or appended (clap refuses a flag given twice); a flag in `extra` followed by
/// another flag (or nothing) is a switch.
pub fn merge(defaults: &[(&str, String)], extra: &[&str]) -> Vec<String> {
    let mut pairs: Vec<(String, Option<String>)> = defaults
        .iter()
        .map(|(f, v)| (f.to_string(), Some(v.clone())))
        .collect();
    let mut i = 0;
    while i < extra.len() {
        let flag = extra[i].to_string();
        let value = extra
            .get(i + 1)
            .filter(|v| !v.starts_with("--"))
            .map(|v| v.to_string());
        i += if value.is_some() { 2 } else { 1 };
        match pairs.iter_mut().find(|(f, _)| *f == flag) {
            Some(pair) => pair.1 = value,
            None => pairs.push((flag, value)),
        }
    }
    pairs
        .into_iter()
        .flat_map(|(f, v)| std::iter::once(f).chain(v))
        .collect()
}
