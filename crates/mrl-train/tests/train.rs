//! `mrl-train` end to end on a tiny random BERT built in code (no shared data needed), on every
//! compiled-in CPU device: config rejection, data loading and batching, atomic checkpoints,
//! resume == uninterrupted, non-finite loss detection, export round trip.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mrl_train::checkpoint::{checkpoints_dir, write_atomic, Checkpoint, CheckpointState};
use mrl_train::config::DataSection;
use mrl_train::data::{Batching, Corpus, Example};
use mrl_train::{tiny, DataFormat, Silent, TrainConfig, TrainError, Trainer};

#[allow(clippy::vec_init_then_push)] // the pushes are feature-gated
fn devices() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    out.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "flex")]
    out.push(("flex", Device::flex()));
    assert!(!out.is_empty(), "no CPU device compiled in");
    out
}

/// Burn's CPU backends seed one process-wide RNG: tests that train hold this lock so that
/// another test's random draws cannot interleave with theirs (dropout replay).
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mrl-train-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tiny model, corpus and dev set under `root`; returns the TOML config text.
fn tiny_setup(root: &Path, device: &Device, objective: &str, extra: &str) -> String {
    let model = root.join("model");
    tiny::write_tiny_model(&model, 7, device).unwrap();
    std::fs::write(root.join("corpus.txt"), tiny::tiny_sentences(40).join("\n")).unwrap();
    std::fs::write(root.join("dev.tsv"), tiny::tiny_sts_tsv(24)).unwrap();
    format!(
        r#"
seed = 3
output_dir = "{out}"
[model]
path = "{model}"
max_length = 16
[data]
path = "{corpus}"
format = "sentences"
[objective]
{objective}
[optimizer]
lr = 1e-3
warmup_steps = 2
[training]
batch_size = 8
steps = 6
[eval]
dev = "{dev}"
before = false
[checkpoint]
every = 0
keep = 2
{extra}
"#,
        out = root.join("out").display(),
        model = model.display(),
        corpus = root.join("corpus.txt").display(),
        dev = root.join("dev.tsv").display(),
    )
}

const MIPIC: &str = r#"kind = "mipic"
dims = [8, 16, 32]
sia_layers = [1, 2]
chain = [[8, 1], [32, 2]]"#;

fn parse(text: &str) -> Result<TrainConfig, TrainError> {
    TrainConfig::from_toml_str(text, Path::new("test.toml"), &[])
}

const MINIMAL: &str = r#"
output_dir = "o"
[model]
path = "m"
[data]
path = "d.txt"
format = "sentences"
[objective]
kind = "mrl"
[training]
steps = 10
"#;

#[test]
fn a_minimal_config_parses_with_the_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.seed, 42);
    assert_eq!(c.optimizer.lr, 2e-5);
    assert_eq!(c.optimizer.weight_decay, 0.01);
    assert_eq!(c.training.batch_size, 16);
    assert_eq!(c.head_lr(), 4e-5);
    assert_eq!(c.checkpoint.keep, 2);
}

#[test]
fn unknown_keys_are_rejected_naming_the_key() {
    for (text, key) in [
        (
            format!("{MINIMAL}\n[optimizer]\nlearning_rate = 1e-5\n"),
            "learning_rate",
        ),
        (format!("bogus = 1\n{MINIMAL}"), "bogus"),
        (
            MINIMAL.replace(
                "format = \"sentences\"",
                "format = \"sentences\"\ncolumnn = 1",
            ),
            "columnn",
        ),
    ] {
        let err = parse(&text).unwrap_err();
        assert!(matches!(err, TrainError::ConfigSyntax { .. }), "{err}");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn bad_values_are_rejected_naming_the_key() {
    let cases = [
        (
            format!("{MINIMAL}\n[optimizer]\nlr = -1.0\n"),
            "optimizer.lr",
        ),
        (
            format!("{MINIMAL}\n[optimizer]\nweight_decay = -0.1\n"),
            "optimizer.weight_decay",
        ),
        (
            format!("{MINIMAL}\n[optimizer]\nwarmup_ratio = 1.5\n"),
            "optimizer.warmup_ratio",
        ),
        (
            MINIMAL.replace("steps = 10", "steps = 10\nbatch_size = 1"),
            "training.batch_size",
        ),
        (
            MINIMAL.replace("steps = 10", "steps = 10\nepochs = 2"),
            "training.epochs",
        ),
        (MINIMAL.replace("steps = 10", "steps = 0"), "training.steps"),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mipic\"\npreset = \"gpt-5\""),
            "objective.preset",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mrl\"\nalpha = 0.5"),
            "objective.alpha",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mrl\"\ndims = [64, 32]"),
            "objective.dims",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mrl\"\npic_warmup_steps = 100"),
            "objective.pic_warmup_steps",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"ese\"\ndetach_teacher = true"),
            "objective.detach_teacher",
        ),
        (
            MINIMAL.replace("path = \"m\"", "path = \"m\"\npooling = \"max\""),
            "model.pooling",
        ),
        (
            MINIMAL
                .replace("kind = \"mrl\"", "kind = \"mipic\"")
                .replace("format = \"sentences\"", "format = \"pairs\""),
            "data.format",
        ),
    ];
    for (text, key) in cases {
        match parse(&text) {
            Err(err @ TrainError::ConfigValue { .. }) => {
                assert!(
                    err.to_string().contains(&format!("`{key}`")),
                    "{key}: {err}"
                )
            }
            other => panic!("{key}: expected a ConfigValue error, got {other:?}"),
        }
    }
    // A wrongly typed value is a syntax error naming the key.
    let err = parse(&MINIMAL.replace("steps = 10", "steps = \"ten\"")).unwrap_err();
    assert!(err.to_string().contains("steps"), "{err}");
    // Overrides go through the same checks.
    let err = TrainConfig::from_toml_str(MINIMAL, Path::new("t"), &["optimizer.lr=5".into()])
        .unwrap_err();
    assert!(err.to_string().contains("`optimizer.lr`"), "{err}");
    let ok =
        TrainConfig::from_toml_str(MINIMAL, Path::new("t"), &["training.steps=3".into()]).unwrap();
    assert_eq!(ok.training.steps, Some(3));
}

#[test]
fn every_config_in_the_repository_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            TrainConfig::from_file(&path, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(
        n >= 8,
        "expected the MiniLM configs and paper presets, found {n}"
    );
}

fn section(format: DataFormat) -> DataSection {
    DataSection {
        path: "x".into(),
        format,
        column: None,
        first_column: 0,
        skip_header: false,
        max_examples: None,
    }
}

#[test]
fn data_loaders_read_every_format() {
    let p = Path::new("mem.tsv");
    let s = Corpus::parse("a b\n\nc d\na b\n", p, &section(DataFormat::Sentences)).unwrap();
    assert_eq!(
        s.examples,
        vec![
            Example::Sentence("a b".into()),
            Example::Sentence("c d".into())
        ],
        "blank lines and duplicates are dropped"
    );
    let mut col = section(DataFormat::Sentences);
    col.column = Some(1);
    col.skip_header = true;
    let s = Corpus::parse("score\ts1\ts2\n1\tx\ty\n2\tz\tw\n", p, &col).unwrap();
    assert_eq!(s.examples[1], Example::Sentence("z".into()));
    let s = Corpus::parse("a\tb\nc\td\n", p, &section(DataFormat::Pairs)).unwrap();
    assert_eq!(s.examples[0], Example::Pair("a".into(), "b".into()));
    let s = Corpus::parse("a\tb\tc\nd\te\tf\n", p, &section(DataFormat::Triplets)).unwrap();
    assert_eq!(
        s.examples[1],
        Example::Triplet("d".into(), "e".into(), "f".into())
    );
    let s = Corpus::parse("4.5\ta\tb\n1\tc\td\n", p, &section(DataFormat::ScoredPairs)).unwrap();
    assert_eq!(s.examples[0], Example::Scored(4.5, "a".into(), "b".into()));

    let err = Corpus::parse(
        "4.5\ta\tb\nhigh\tc\td\n",
        p,
        &section(DataFormat::ScoredPairs),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("line 2") && err.to_string().contains("high"),
        "{err}"
    );
    let err = Corpus::parse("a\tb\nc\n", p, &section(DataFormat::Pairs)).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = Corpus::parse("only one\n", p, &section(DataFormat::Sentences)).unwrap_err();
    assert!(err.to_string().contains("at least 2"), "{err}");
}

#[test]
fn batching_is_seeded_complete_and_groups_lengths() {
    let lengths: Vec<usize> = (0..103).map(|i| (i * 37) % 61 + 1).collect();
    let b = Batching {
        batch_size: 8,
        length_grouping: true,
        pool_batches: 4,
        seed: 9,
    };
    let e0 = b.epoch(&lengths, 0);
    assert_eq!(
        e0,
        b.epoch(&lengths, 0),
        "same seed and epoch, same batches"
    );
    assert_ne!(e0, b.epoch(&lengths, 1), "another epoch, another order");
    assert_eq!(e0.len(), b.batches_per_epoch(103));
    let mut all: Vec<usize> = e0.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..103).collect::<Vec<_>>(),
        "every example once (103 = 12·8 + 7)"
    );
    // Padding (Σ batch · max length) is lower with grouping than without.
    let padded = |batches: &[Vec<usize>]| -> usize {
        batches
            .iter()
            .map(|bt| bt.len() * bt.iter().map(|&i| lengths[i]).max().unwrap())
            .sum()
    };
    let plain = Batching {
        length_grouping: false,
        ..b
    }
    .epoch(&lengths, 0);
    assert!(
        padded(&e0) < padded(&plain),
        "{} vs {}",
        padded(&e0),
        padded(&plain)
    );
    // A trailing batch of one example is dropped (in-batch negatives need two).
    assert_eq!(b.batches_per_epoch(17), 2);
    assert_eq!(b.batches_per_epoch(18), 3);
}

#[test]
fn lr_schedule_warms_up_then_follows_a_cosine() {
    use mrl_train::lr_factor;
    assert_eq!(lr_factor(1, 4, 21, 0.0), 0.25);
    assert_eq!(lr_factor(4, 4, 21, 0.0), 1.0);
    assert_eq!(
        lr_factor(5, 4, 21, 0.0),
        1.0,
        "the first step after the warm-up is at the peak"
    );
    assert!(
        (lr_factor(13, 4, 21, 0.0) - 0.5).abs() < 1e-12,
        "half-way down the cosine"
    );
    assert!(
        lr_factor(21, 4, 21, 0.0).abs() < 1e-12,
        "the last step is at the minimum"
    );
    assert!((lr_factor(21, 4, 21, 0.1) - 0.1).abs() < 1e-12);
    assert_eq!(
        lr_factor(1, 0, 10, 0.0),
        1.0,
        "no warm-up: the cosine starts at 1"
    );
}

fn checkpoint(step: usize) -> Checkpoint {
    let mut files = std::collections::BTreeMap::new();
    files.insert("encoder.bpk".to_string(), vec![step as u8; 100]);
    files.insert("optim-encoder.bpk".to_string(), vec![7u8; 10]);
    Checkpoint {
        state: CheckpointState {
            version: 1,
            step,
            seed: 1,
            losses: vec![1.0; step],
            files: Default::default(),
        },
        files,
    }
}

#[test]
fn checkpoints_are_atomic_pruned_and_verified() {
    let tmp = TempDir::new("ckpt");
    let root = checkpoints_dir(&tmp.0);
    let err = Checkpoint::load_latest(&root).unwrap_err();
    assert!(
        err.to_string().contains("no checkpoint to resume from"),
        "{err}"
    );

    for step in [2, 4, 6] {
        checkpoint(step).save(&root, 2).unwrap();
    }
    let names: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names,
        ["latest", "step-00000004", "step-00000006"],
        "no temporary files left"
    );
    let loaded = Checkpoint::load_latest(&root).unwrap();
    assert_eq!(loaded.state.step, 6);
    assert_eq!(loaded.files["encoder.bpk"], vec![6u8; 100]);

    // An interrupted save (a stale temporary directory) does not disturb `latest`.
    std::fs::create_dir_all(root.join(".step-00000008.999.tmp")).unwrap();
    std::fs::write(root.join(".step-00000008.999.tmp/encoder.bpk"), b"half").unwrap();
    assert_eq!(Checkpoint::load_latest(&root).unwrap().state.step, 6);

    // A truncated file is reported as corrupt, naming it.
    let victim = root.join("step-00000006/encoder.bpk");
    std::fs::write(&victim, vec![6u8; 50]).unwrap();
    let err = Checkpoint::load_latest(&root).unwrap_err();
    assert!(
        err.to_string().contains("corrupt") && err.to_string().contains("encoder.bpk"),
        "{err}"
    );
    // A missing file too.
    std::fs::remove_file(&victim).unwrap();
    let err = Checkpoint::load_latest(&root).unwrap_err();
    assert!(err.to_string().contains("encoder.bpk"), "{err}");
    // And a garbled state.json.
    std::fs::write(root.join("step-00000004/state.json"), b"{ not json").unwrap();
    let err = Checkpoint::load(&root.join("step-00000004")).unwrap_err();
    assert!(
        err.to_string().contains("state.json") && err.to_string().contains("corrupt"),
        "{err}"
    );

    // write_atomic replaces whole files and leaves no temporaries.
    let f = tmp.0.join("f.txt");
    write_atomic(&f, b"one").unwrap();
    write_atomic(&f, b"two").unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"two");
    assert_eq!(
        std::fs::read_dir(&tmp.0).unwrap().count(),
        2,
        "checkpoints/ and f.txt"
    );
}

/// The loss sequence of an interrupted-and-resumed run equals the uninterrupted one, on every
/// device, for MIPIC (encoder + lifts/projectors, two optimizers) and for 2D Matryoshka
/// (per-step dim and layer sampling).
#[test]
fn resume_replays_the_uninterrupted_run() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        for objective in [MIPIC, "kind = \"2d\"\ndims = [8, 16, 32]"] {
            let tmp = TempDir::new(&format!("resume-{name}"));
            let text = tiny_setup(&tmp.0, &device, objective, "");
            let config = parse(&text).unwrap();

            let mut full = Trainer::new(config.clone(), &device).unwrap();
            full.run(&mut Silent, None).unwrap();
            let expected = full.losses().to_vec();
            assert_eq!(expected.len(), 6);
            assert!(expected.iter().all(|l| l.is_finite()));
            std::fs::remove_dir_all(tmp.0.join("out")).unwrap();

            let mut first = Trainer::new(config.clone(), &device).unwrap();
            first.run(&mut Silent, Some(3)).unwrap();
            drop(first);
            let mut resumed = Trainer::resume(config, &device).unwrap();
            assert_eq!(resumed.step(), 3);
            resumed.run(&mut Silent, None).unwrap();
            let got = resumed.losses();
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{name}, {objective}: step {} resumed {a} vs uninterrupted {b}\n{got:?}\n{expected:?}",
                    i + 1
                );
            }
            assert_eq!(got.len(), 6);
            // The losses changed over the run: the optimizer did something.
            assert!(expected.windows(2).any(|w| w[0] != w[1]), "{expected:?}");
        }
    }
}

#[test]
fn resume_without_a_checkpoint_is_a_clear_error() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("nockpt");
    let text = tiny_setup(&tmp.0, &device, MIPIC, "");
    let err = Trainer::resume(parse(&text).unwrap(), &device)
        .err()
        .expect("no checkpoint yet");
    assert!(
        err.to_string().contains("no checkpoint to resume from"),
        "{err}"
    );
}

#[test]
fn a_non_finite_loss_stops_training_naming_the_step_and_term() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("nan");
    // cos / τ overflows f32 for τ = 1e-39 … and the InfoNCE terms become NaN.
    let text = tiny_setup(
        &tmp.0,
        &device,
        "kind = \"mrl\"\ndims = [8, 32]\ntemperature = 1e-39",
        "",
    );
    let mut trainer = Trainer::new(parse(&text).unwrap(), &device).unwrap();
    let err = trainer.run(&mut Silent, None).unwrap_err();
    match &err {
        TrainError::NonFiniteLoss { step, term, .. } => {
            assert_eq!(*step, 1);
            assert!(term.starts_with("mrl/"), "{err}");
        }
        other => panic!("expected NonFiniteLoss, got {other}"),
    }
    assert!(err.to_string().contains("step 1"), "{err}");
    assert_eq!(trainer.step(), 0, "the bad step is not applied");
}

#[test]
fn the_export_loads_back_with_the_same_embeddings() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        let tmp = TempDir::new(&format!("export-{name}"));
        let text = tiny_setup(&tmp.0, &device, MIPIC, "");
        let mut config = parse(&text).unwrap();
        config.training.steps = Some(2);
        let mut trainer = Trainer::new(config, &device).unwrap();
        trainer.run(&mut Silent, None).unwrap();
        let dir = tmp.0.join("exported");
        trainer.export(&dir).unwrap();
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "modules.json",
            "sentence_bert_config.json",
            "1_Pooling/config.json",
        ] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
        let loaded =
            models::SentenceEncoder::load(&dir, &device, &models::EncoderOptions::default())
                .unwrap();
        assert_eq!(loaded.pooling(), models::Pooling::Mean);
        let texts = [
            "a small dog is running .",
            "the cat is reading a book in the park .",
        ];
        let a: Vec<f32> = trainer
            .sentence_encoder()
            .embed_batch(&texts)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = loaded
            .embed_batch(&texts)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(a.len(), 2 * tiny::TINY_HIDDEN);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{name}: {x} vs {y}");
        }
        // The trained weights differ from the starting point (the export is not the input).
        let start = models::SentenceEncoder::load(
            &tmp.0.join("model"),
            &device,
            &models::EncoderOptions::default(),
        )
        .unwrap();
        let c: Vec<f32> = start
            .embed_batch(&texts)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(a.iter().zip(&c).any(|(x, y)| (x - y).abs() > 1e-6));
    }
}

#[test]
fn mipic_sampling_and_curriculum_keys_reach_the_loss_config() {
    let text = MINIMAL.replace(
        "kind = \"mrl\"",
        "kind = \"mipic\"\nmrl_dims_per_step = 3\npic_warmup_steps = 120",
    );
    let c = parse(&text).unwrap();
    let config =
        mrl_train::objective::mipic_config(&c.objective, 384, 6, mrl_core::Pooling::Mean).unwrap();
    assert_eq!(config.mrl_dims_per_step, Some(3));
    assert_eq!(config.pic_warmup_steps, 120);
    assert_eq!(config.mrl_config().n_dims_per_step, Some(3));
    assert_eq!(config.pic_config().warmup_steps, 120);
}
