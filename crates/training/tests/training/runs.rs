//! Whole runs on the tiny model: resume == uninterrupted, non-finite losses, export, every
//! objective kind.

use tiny_models as tiny;
use training::embedding::{EmbeddingTask, ObjectiveSection};
use training::{Silent, TrainError};

use crate::common::{devices, parse, rng_lock, tiny_setup, TempDir, MIPIC};

/// The loss sequence of an interrupted-and-resumed run equals the uninterrupted one, on every
/// device, for MIPIC (encoder + lifts/projectors, two optimizers) and for 2D Matryoshka
/// (per-step dim and layer sampling).
#[test]
fn resume_replays_the_uninterrupted_run() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        for objective in [MIPIC, "kind = \"2d\"\ndims = [8, 16, 32]"] {
            let tmp = TempDir::new(&format!("resume-{name}"));
            let text = tiny_setup(tmp.path(), &device, objective, "");
            let config = parse(&text).unwrap();

            let mut full = EmbeddingTask::trainer(config.clone(), &device).unwrap();
            full.run(&mut Silent, None).unwrap();
            let expected = full.losses().to_vec();
            assert_eq!(expected.len(), 6);
            assert!(expected.iter().all(|l| l.is_finite()));
            std::fs::remove_dir_all(tmp.path().join("out")).unwrap();

            let mut first = EmbeddingTask::trainer(config.clone(), &device).unwrap();
            first.run(&mut Silent, Some(3)).unwrap();
            drop(first);
            let mut resumed = EmbeddingTask::resume(config, &device).unwrap();
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
    let text = tiny_setup(tmp.path(), &device, MIPIC, "");
    let err = EmbeddingTask::resume(parse(&text).unwrap(), &device)
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
        tmp.path(),
        &device,
        "kind = \"mrl\"\ndims = [8, 32]\ntemperature = 1e-39",
        "",
    );
    let mut trainer = EmbeddingTask::trainer(parse(&text).unwrap(), &device).unwrap();
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
        let text = tiny_setup(tmp.path(), &device, MIPIC, "");
        let mut config = parse(&text).unwrap();
        config.training.steps = Some(2);
        let mut trainer = EmbeddingTask::trainer(config, &device).unwrap();
        trainer.run(&mut Silent, None).unwrap();
        let dir = tmp.path().join("exported");
        trainer.task().export(trainer.model(), &dir).unwrap();
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
            .task()
            .sentence_encoder(trainer.model())
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
            &tmp.path().join("model"),
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

/// Every registered objective builds on the tiny model from its `[objective]` section and takes
/// a finite step whose breakdown names its terms.
#[test]
fn every_objective_kind_trains() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    for kind in ObjectiveSection::KINDS {
        let objective = match *kind {
            "mipic" => MIPIC.to_string(),
            other => format!("kind = \"{other}\"\ndims = [8, 16, 32]"),
        };
        let tmp = TempDir::new(&format!("kind-{kind}"));
        let text = tiny_setup(tmp.path(), &device, &objective, "");
        let mut config = parse(&text).unwrap();
        config.training.steps = Some(1);
        assert_eq!(config.objective.kind(), *kind);
        let mut trainer = EmbeddingTask::trainer(config, &device).unwrap();
        let report = trainer.train_step().unwrap();
        assert!(report.loss().is_finite(), "{kind}: {report:?}");
        assert!(
            report.terms.len() > 1,
            "{kind}: a breakdown, not only the total"
        );
        assert_eq!(trainer.model().objective.dims(), [8, 16, 32], "{kind}");
    }
}

/// Dims must end at the hidden size (the full-width embedding is the last nested dim).
#[test]
fn dims_that_do_not_end_at_the_hidden_size_are_refused() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("dims-end");
    let text = tiny_setup(tmp.path(), &device, "kind = \"mrl\"\ndims = [8, 16]", "");
    let err = EmbeddingTask::trainer(parse(&text).unwrap(), &device)
        .err()
        .expect("dims ending below the width");
    assert!(
        err.to_string().contains("`objective.dims`") && err.to_string().contains("32"),
        "{err}"
    );
}

/// `--resume` with a config whose training-relevant keys differ is refused, naming every
/// differing key; evaluation settings may change; the "before" evaluation survives the resume.
#[test]
fn resume_checks_the_config_and_keeps_the_before_scores() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("resume-config");
    let text =
        tiny_setup(tmp.path(), &device, MIPIC, "").replace("before = false", "before = true");
    let config = parse(&text).unwrap();
    let mut first = EmbeddingTask::trainer(config.clone(), &device).unwrap();
    let summary = first.run(&mut Silent, Some(2)).unwrap();
    let before = summary.before.expect("evaluated before the first step");
    drop(first);

    let changed = parse(
        &text
            .replace("steps = 6", "steps = 8")
            .replace("kind = \"mipic\"", "kind = \"mipic\"\nalpha = 0.3"),
    )
    .unwrap();
    let err = EmbeddingTask::resume(changed, &device)
        .err()
        .expect("a different config");
    assert!(matches!(err, TrainError::ResumeConfig { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("`training.steps`") && message.contains("`objective.alpha`"),
        "{message}"
    );
    let other_seed = parse(&text.replace("seed = 3", "seed = 4")).unwrap();
    let err = EmbeddingTask::resume(other_seed, &device).err().unwrap();
    assert!(err.to_string().contains("`seed`"), "{err}");

    // Evaluation settings may differ; the before scores come back from the checkpoint.
    let eval_changed = parse(&text.replace("[eval]", "[eval]\nbatch_size = 7")).unwrap();
    let mut resumed = EmbeddingTask::resume(eval_changed, &device).unwrap();
    let summary = resumed.run(&mut Silent, None).unwrap();
    assert_eq!(summary.before.as_ref(), Some(&before));
    assert_eq!(resumed.step(), 6);
}
