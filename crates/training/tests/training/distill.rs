//! The distillation task on a tiny random Llama teacher (no shared data): the data rendering
//! and masking, config rejection, live and cached teachers (the cache equals the live
//! teacher when k covers the vocabulary, and a stale or corrupt cache is refused, naming the
//! field), resume == uninterrupted, α = 0 without a teacher, the packed response positions of
//! the head and the loss, the Hugging Face export.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use tiny_models::{tiny_sentences, write_random_model, Arch, ModelShape};
use training::distill::{DistillConfig, DistillData, DistillTask};
use training::{Silent, TrainError};

use crate::common::{devices, rng_lock, TempDir};

const VOCAB: usize = 120;

/// A 2-layer teacher and 12 records under `root`; returns the config text (1-layer student,
/// FKL, live teacher, 6 steps) with `extra` appended.
pub(crate) fn setup(root: &Path, device: &Device, extra: &str) -> String {
    let teacher = root.join("teacher");
    if !teacher.exists() {
        let shape = ModelShape::new(16, 2, 4, 32, VOCAB)
            .with_kv_heads(2)
            .with_max_positions(64);
        write_random_model(&teacher, Arch::Llama, &shape, 11, device).unwrap();
        let sentences = tiny_sentences(24);
        let lines: Vec<String> = (0..12)
            .map(|i| {
                serde_json::json!({
                    "instruction": sentences[2 * i],
                    "response": sentences[2 * i + 1],
                })
                .to_string()
            })
            .collect();
        std::fs::write(root.join("data.jsonl"), lines.join("\n")).unwrap();
    }
    format!(
        r#"
seed = 5
output_dir = "{out}"
[teacher]
path = "{teacher}"
[student]
init = "first_layers"
layers = 1
[data]
path = "{data}"
records = "0..10"
max_length = 40
[objective]
alpha = 0.5
divergence = {{ kind = "forward_kl" }}
[optimizer]
lr = 1e-2
warmup_steps = 1
[training]
batch_size = 4
steps = 6
[checkpoint]
every = 0
{extra}
"#,
        out = root.join("out").display(),
        teacher = teacher.display(),
        data = root.join("data.jsonl").display(),
    )
}

/// The records `range` of [`setup`]'s data under `root`, tokenised with the tokenizer in
/// `model_dir` (max length 40), as one batch on `device`.
fn records_batch(
    root: &Path,
    model_dir: &Path,
    range: std::ops::Range<usize>,
    device: &Device,
) -> training::distill::DistillBatch {
    let tokenizer = training::distill::load_tokenizer(model_dir).unwrap();
    let data = DistillData::load(
        &root.join("data.jsonl"),
        Some(range),
        "data.records",
        &tokenizer,
        2,
        40,
        false,
    )
    .unwrap();
    let refs: Vec<_> = data.examples.iter().collect();
    training::distill::DistillBatch::new(&refs, device)
}

pub(crate) fn parse(text: &str) -> training::Result<DistillConfig> {
    DistillConfig::from_toml_str(text, Path::new("test.toml"), &[])
}

#[test]
fn records_render_with_the_template_mask_the_prompt_and_end_with_eos() {
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-data");
    setup(tmp.path(), &device, "");
    let tokenizer = training::distill::load_tokenizer(&tmp.path().join("teacher")).unwrap();
    let data = DistillData::load(
        &tmp.path().join("data.jsonl"),
        Some(2..5),
        "data.records",
        &tokenizer,
        2,
        40,
        false,
    )
    .unwrap();
    assert_eq!(data.len(), 3);
    for e in &data.examples {
        assert_eq!(*e.ids.last().unwrap(), 2, "ends with eos");
        assert!(e.response.last().copied().unwrap());
        // The mask is prompt tokens, then response tokens: one switch.
        let first = e.response.iter().position(|&r| r).unwrap();
        assert!(first > 4, "the template is in the prompt: {:?}", e.response);
        assert!(e.response[first..].iter().all(|&r| r));
        assert_eq!(e.num_targets(), e.len() - first);
    }
    assert_eq!(data.examples[0].record, 2);

    // Truncation keeps the prompt and cuts the response (and the eos).
    let full = &data.examples[0];
    let prompt_len = full.response.iter().position(|&r| r).unwrap();
    assert!(full.len() > prompt_len + 3, "a response of several tokens");
    let short = DistillData::load(
        &tmp.path().join("data.jsonl"),
        Some(2..3),
        "data.records",
        &tokenizer,
        2,
        prompt_len + 2,
        false,
    )
    .unwrap();
    assert_eq!(short.examples[0].ids, full.ids[..prompt_len + 2]);
    assert_eq!(short.examples[0].num_targets(), 2);

    // A prompt that fills max_length is refused, naming the record.
    let err = DistillData::load(
        &tmp.path().join("data.jsonl"),
        Some(0..3),
        "data.records",
        &tokenizer,
        2,
        4,
        false,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("record 0") && msg.contains("max_length = 4"),
        "{msg}"
    );
    // … or skipped and listed, when asked.
    let kept = DistillData::load(
        &tmp.path().join("data.jsonl"),
        Some(0..3),
        "data.records",
        &tokenizer,
        2,
        4,
        true,
    )
    .unwrap();
    assert_eq!((kept.len(), kept.skipped.clone()), (0, vec![0, 1, 2]));

    // A malformed line is named by its number.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"instruction\": \"a\", \"response\": \"b\"}\n{\"instruction\": 3}\n",
    )
    .unwrap();
    let err = DistillData::load(&bad, None, "data.records", &tokenizer, 2, 40, false).unwrap_err();
    assert!(
        err.to_string().contains("bad.jsonl:2:") && err.to_string().contains("instruction"),
        "{err}"
    );

    // A range beyond the file names the key.
    let err = DistillData::load(
        &tmp.path().join("data.jsonl"),
        Some(5..40),
        "data.records",
        &tokenizer,
        2,
        40,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("data.records"), "{err}");
}

#[test]
fn bad_configs_name_the_key() {
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-config");
    let base = setup(tmp.path(), &device, "");
    assert!(parse(&base).is_ok());
    let cases = [
        ("alpha = 0.5", "alpha = 1.5", "objective"),
        ("records = \"0..10\"", "records = \"7..3\"", "data.records"),
        ("max_length = 40", "max_length = 1", "data.max_length"),
        ("batch_size = 4", "batch_size = 0", "training.batch_size"),
        ("layers = 1", "layers = 1\nwidth = 3", "width"),
        (
            "kind = \"forward_kl\"",
            "kind = \"no_such_divergence\"",
            "no_such_divergence",
        ),
    ];
    for (from, to, named) in cases {
        let err = parse(&base.replace(from, to)).unwrap_err();
        assert!(err.to_string().contains(named), "{to}: {err}");
    }
    let err = parse(&format!("{base}\n[cache]\ndir = \"c\"\ntop_k = 0\n")).unwrap_err();
    assert!(err.to_string().contains("cache.top_k"), "{err}");
    // A student deeper than the teacher is refused when the run starts.
    let config = parse(&base.replace("layers = 1", "layers = 3")).unwrap();
    let err = DistillTask::trainer(config, &device)
        .err()
        .expect("too deep");
    assert!(err.to_string().contains("layers"), "{err}");
}

/// Interrupted-and-resumed == uninterrupted, live teacher, on every device; the loss falls.
#[test]
fn distillation_resumes_exactly_and_learns() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        let tmp = TempDir::new(&format!("distill-resume-{name}"));
        let config = parse(&setup(tmp.path(), &device, "")).unwrap();
        let mut full = DistillTask::trainer(config.clone(), &device).unwrap();
        full.run(&mut Silent, None).unwrap();
        let expected = full.losses().to_vec();
        assert_eq!(expected.len(), 6);
        assert!(expected.iter().all(|l| l.is_finite()), "{expected:?}");
        assert!(
            expected[5] < expected[0],
            "{name}: the loss did not fall: {expected:?}"
        );
        std::fs::remove_dir_all(tmp.path().join("out")).unwrap();

        let mut first = DistillTask::trainer(config.clone(), &device).unwrap();
        first.run(&mut Silent, Some(4)).unwrap();
        drop(first);
        let mut resumed = DistillTask::resume(config, &device).unwrap();
        assert_eq!(resumed.step(), 4);
        resumed.run(&mut Silent, None).unwrap();
        let got = resumed.losses();
        assert_eq!(got.len(), 6);
        for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{name}: step {} resumed {a} vs uninterrupted {b}",
                i + 1
            );
        }
        // A changed objective is refused on resume, naming the key.
        let changed =
            parse(&setup(tmp.path(), &device, "").replace("alpha = 0.5", "alpha = 0.25")).unwrap();
        let err = DistillTask::resume(changed, &device)
            .err()
            .expect("differs");
        assert!(err.to_string().contains("objective.alpha"), "{err}");
    }
}

/// With k = vocab − 1 the cached top-k + tail is the whole distribution: the cached run takes
/// the live run's steps. A cache for other data, another k or with an edited shard is refused.
#[test]
fn the_cache_replays_the_live_teacher_and_refuses_to_be_stale() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-cache");
    let cache_dir = tmp.path().join("cache");
    let cache_section = |k: usize| {
        format!(
            "[cache]\ndir = \"{}\"\ntop_k = {k}\nshard_records = 3\n",
            cache_dir.display()
        )
    };
    let live = parse(&setup(tmp.path(), &device, "")).unwrap();
    let cached = parse(&setup(tmp.path(), &device, &cache_section(VOCAB - 1))).unwrap();

    // No cache yet: the error says how to write it.
    let err = DistillTask::trainer(cached.clone(), &device)
        .err()
        .expect("no cache");
    assert!(err.to_string().contains("mrl distill cache"), "{err}");

    training::distill::cache::write_cache(&cached, 4, false, |_, _| {}).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["top_k"], VOCAB - 1);
    assert_eq!(
        manifest["parts"]["train"]["shards"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Nothing but the cache was left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.ends_with(".new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let mut a = DistillTask::trainer(live, &device).unwrap();
    a.run(&mut Silent, Some(3)).unwrap();
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    let mut b = DistillTask::trainer(cached.clone(), &device).unwrap();
    assert!(b.task().teacher_kind().starts_with("cache"));
    b.run(&mut Silent, Some(3)).unwrap();
    for (x, y) in a.losses().iter().zip(b.losses()) {
        assert!(
            (x - y).abs() < 1e-4 * x.abs().max(1.0),
            "live {x} vs cached {y}"
        );
    }

    // Stale: other data (max_length changes the tokenized records), another k.
    let other_len = parse(
        &setup(tmp.path(), &device, &cache_section(VOCAB - 1))
            .replace("max_length = 40", "max_length = 30"),
    )
    .unwrap();
    let err = DistillTask::trainer(other_len, &device)
        .err()
        .expect("stale");
    let msg = err.to_string();
    assert!(msg.contains("stale") && msg.contains("max_length"), "{msg}");
    let other_k = parse(&setup(tmp.path(), &device, &cache_section(8))).unwrap();
    let err = DistillTask::trainer(other_k, &device).err().expect("stale");
    assert!(err.to_string().contains("top_k"), "{err}");

    // An edited shard fails its checksum.
    let shard = cache_dir.join("train-00001.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xFF;
    std::fs::write(&shard, bytes).unwrap();
    let err = DistillTask::trainer(cached, &device)
        .err()
        .expect("corrupt");
    assert!(
        err.to_string().contains("train-00001.safetensors") && err.to_string().contains("checksum"),
        "{err}"
    );
}

/// SFT (α = 0) runs without a teacher and reports only the cross-entropy.
#[test]
fn alpha_zero_is_supervised_fine_tuning() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-sft");
    let text = setup(tmp.path(), &device, "").replace("alpha = 0.5", "alpha = 0.0");
    let mut trainer = DistillTask::trainer(parse(&text).unwrap(), &device).unwrap();
    assert!(trainer.task().teacher_kind().starts_with("none"));
    let report = trainer.train_step().unwrap();
    let names: Vec<&str> = report.terms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["total", "ce"]);
    assert!(report.items > 0);
}

/// The packed head: the logits, targets and mask of the counted positions only, in batch order,
/// equal the full next-token logits and targets where the target mask is 1.
#[test]
fn the_packed_positions_are_the_counted_ones() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        let tmp = TempDir::new("distill-packed");
        setup(tmp.path(), &device, "");
        let (_, model) = models::LlamaModel::from_pretrained(
            &tmp.path().join("teacher"),
            models::LayerSelection::All,
            &device,
        )
        .unwrap();
        let batch = records_batch(tmp.path(), &tmp.path().join("teacher"), 0..4, &device);
        let packed = batch.packed(&device).expect("the records have responses");

        let full = training::distill::next_token_logits(&model, &batch);
        let [b, t, v] = full.dims();
        let mask = batch
            .target_mask
            .to_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        let counted: Vec<i64> = (0..b * t)
            .filter(|&i| mask[i] == 1.0)
            .map(|i| i as i64)
            .collect();
        let m = counted.len();
        assert_eq!(m, batch.targets_counted, "{name}");
        assert!(
            m < b * t,
            "{name}: the prompts and the padding are left out"
        );
        let at = Tensor::<1, Int>::from_data(TensorData::new(counted, [m]), &device);

        let got = training::distill::counted_logits(&model, &batch, packed.rows);
        assert_eq!(got.dims(), [1, m, v], "{name}");
        let want = full.reshape([b * t, v]).select(0, at.clone());
        let diff = (got.reshape([m, v]) - want)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-5, "{name}: max |Δlogit| = {diff}");

        let want_targets = batch.targets.clone().reshape([b * t]).select(0, at);
        assert_eq!(
            packed
                .targets
                .reshape([m])
                .to_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap(),
            want_targets
                .to_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            packed
                .mask
                .to_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap(),
            vec![1.0; m],
            "{name}"
        );
    }
}

/// The exported student loads back with the same logits; the dev evaluation is reported
/// before and after.
#[test]
fn the_student_exports_in_hugging_face_layout() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-export");
    let text = setup(
        tmp.path(),
        &device,
        "[eval]\nrecords = \"10..12\"\nevery = 3\n",
    );
    let mut trainer = DistillTask::trainer(parse(&text).unwrap(), &device).unwrap();
    let summary = trainer.run(&mut Silent, None).unwrap();
    let before = summary.before.expect("evaluated before");
    let (_, after) = summary.evals.last().expect("evaluated after");
    assert_eq!(summary.evals.len(), 2, "after 3 and 6 steps");
    assert!(after.ce < before.ce, "{before:?} → {after:?}");
    assert!(after.kd.is_some());

    let dir = tmp.path().join("student");
    trainer.task().export(trainer.model(), &dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let (config, loaded) =
        models::LlamaModel::from_pretrained(&dir, models::LayerSelection::All, &device).unwrap();
    assert_eq!(config.num_hidden_layers, 1);
    let batch = records_batch(tmp.path(), &dir, 0..2, &device);
    let got = training::distill::next_token_logits(&loaded, &batch);
    let want = training::distill::next_token_logits(&trainer.model().student.valid(), &batch);
    let diff = (got - want).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-5, "max |Δlogit| = {diff}");
    let _ = TrainError::Eval(String::new());
}

/// The step's breakdown: total, ce, kd, and the divergence's own parts (AKL: its FKL, RKL
/// and head weight), with total = ½·ce + ½·kd.
#[test]
fn the_breakdown_names_every_term() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-terms");
    let text = setup(tmp.path(), &device, "").replace("forward_kl", "adaptive_kl");
    let mut trainer = DistillTask::trainer(parse(&text).unwrap(), &device).unwrap();
    let report = trainer.train_step().unwrap();
    let names: Vec<&str> = report.terms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["total", "ce", "kd"], "{names:?}");
    assert!(
        names.contains(&"kd/fkl") && names.contains(&"kd/rkl"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"kd/akl"),
        "the divergence itself is `kd`: {names:?}"
    );
    let v = |n: &str| report.terms.iter().find(|(m, _)| m == n).unwrap().1;
    assert!((v("total") - 0.5 * (v("ce") + v("kd"))).abs() < 1e-4 * v("total"));
}

/// A pretrained student (`init = "pretrained"`) trains when it shares the teacher's
/// vocabulary and tokenizer, and is refused, naming why, when it does not.
#[test]
fn a_pretrained_student_must_share_the_teachers_tokenizer() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-pretrained");
    let base = setup(tmp.path(), &device, "");
    let student_dir = tmp.path().join("student");
    let pretrained = |dir: &Path| {
        base.replace(
            "init = \"first_layers\"\nlayers = 1",
            &format!("init = \"pretrained\"\npath = \"{}\"", dir.display()),
        )
    };

    // Same tokenizer: a 1-layer model of the teacher's vocabulary.
    let shape = ModelShape::new(16, 1, 4, 32, VOCAB)
        .with_kv_heads(2)
        .with_max_positions(64);
    write_random_model(&student_dir, Arch::Llama, &shape, 3, &device).unwrap();
    let mut trainer =
        DistillTask::trainer(parse(&pretrained(&student_dir)).unwrap(), &device).unwrap();
    assert_eq!(trainer.task().student_config().num_hidden_layers, 1);
    assert!(trainer.train_step().unwrap().terms[0].1.is_finite());

    // Another vocabulary size.
    let other = tmp.path().join("other-vocab");
    let shape = ModelShape::new(16, 1, 4, 32, VOCAB + 8)
        .with_kv_heads(2)
        .with_max_positions(64);
    write_random_model(&other, Arch::Llama, &shape, 3, &device).unwrap();
    let err = DistillTask::trainer(parse(&pretrained(&other)).unwrap(), &device)
        .err()
        .expect("vocabulary");
    assert!(err.to_string().contains("vocabulary (128)"), "{err}");

    // Same size, another tokenizer: two words swap ids.
    let path = student_dir.join("tokenizer.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vocab = json["model"]["vocab"].as_object_mut().unwrap();
    let (a, b) = (vocab["man"].clone(), vocab["dog"].clone());
    vocab.insert("man".into(), b);
    vocab.insert("dog".into(), a);
    std::fs::write(&path, json.to_string()).unwrap();
    let err = DistillTask::trainer(parse(&pretrained(&student_dir)).unwrap(), &device)
        .err()
        .expect("tokenizer");
    assert!(err.to_string().contains("different vocabularies"), "{err}");
}
