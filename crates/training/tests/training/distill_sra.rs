//! SRA through the distillation task on a tiny random Llama teacher (no shared data) and a
//! student over another tokenizer (a word-level tokenizer with other special tokens and ids,
//! by vocabulary transplant): the loss breakdown and its composition `(1 − α)·CE + α·L_SRA`,
//! the projectors' training, the dev evaluation, the export with the student's tokenizer, and
//! the configurations SRA refuses.

use std::path::{Path, PathBuf};

use burn::module::Module;
use tiny_models::{word_tokenizer, Arch};
use training::distill::DistillTask;
use training::Silent;

use crate::common::{devices, rng_lock, TempDir};
use crate::distill::{parse, setup};

/// A student tokenizer unlike the teacher's (BERT-style specials, so other ids for every
/// word), with `[SEP]` as its EOS; returns its path.
fn student_tokenizer(root: &Path) -> PathBuf {
    let dir = root.join("student-tokenizer");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokenizer.json");
    word_tokenizer(Arch::Bert, 100).save(&path, false).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"bos_token": "[CLS]", "eos_token": "[SEP]"}"#,
    )
    .unwrap();
    path
}

fn sra_config(root: &Path, text: &str) -> String {
    let vocab = student_tokenizer(root);
    text.replace(
        "[objective]\nalpha = 0.5\ndivergence = { kind = \"forward_kl\" }",
        "[objective]\nkind = \"sra\"\nalpha = 0.5",
    )
    .replace(
        "layers = 1\n",
        &format!("layers = 1\nvocab = \"{}\"\n", vocab.display()),
    )
    .replace("[optimizer]\n", "[optimizer]\nhead_lr = 5e-3\n")
        + "[objective.sra]\npairs = [{ teacher_layer = 2, student_layer = 1 }]\ngeo_weight = 5.0\n"
}

#[test]
fn sra_composes_its_terms_and_trains_the_student_and_projectors() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        let tmp = TempDir::new(&format!("distill-sra-{name}"));
        let text = sra_config(
            tmp.path(),
            &setup(
                tmp.path(),
                &device,
                "[eval]\nrecords = \"10..12\"\nevery = 0\n",
            ),
        );
        let config = parse(&text).unwrap();
        let mut trainer = DistillTask::trainer(config, &device).unwrap();
        assert_eq!(
            trainer.model().student.vocab_size(),
            100,
            "{name}: transplanted vocab"
        );
        let spans: usize = trainer
            .task()
            .train_data()
            .examples
            .iter()
            .map(|e| e.cross.as_ref().expect("teacher tokens").spans.len())
            .sum();
        assert!(spans > 0, "{name}: no shared span");
        let before = weights(&trainer.model().projectors[0]);
        let report = trainer.train_step().unwrap();
        let names: Vec<&str> = report.terms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["total", "ce", "sra", "sra/com", "sra/geo", "sra/logit"],
            "{name}"
        );
        let v = |n: &str| report.terms.iter().find(|(m, _)| m == n).unwrap().1;
        assert!(
            (v("total") - (0.5 * v("ce") + 0.5 * v("sra"))).abs() < 1e-4 * v("total"),
            "{name}: total {} vs (1 − α)·CE + α·SRA",
            v("total")
        );
        assert!(
            (v("sra") - (v("sra/com") + v("sra/geo") + v("sra/logit"))).abs() < 1e-4 * v("sra"),
            "{name}: sra = com + geo + logit"
        );
        for term in ["sra/com", "sra/geo", "sra/logit"] {
            assert!(v(term) > 0.0, "{name}: {term} is 0 on random models");
        }
        trainer.run(&mut Silent, None).unwrap();
        assert!(trainer.losses().iter().all(|l| l.is_finite()));
        assert_ne!(
            weights(&trainer.model().projectors[0]),
            before,
            "{name}: the projector did not train"
        );
        let (task, model) = trainer.parts_mut();
        let dev = task.dev_data().expect("[eval] given").clone();
        let eval = task.evaluate_on(model, "dev", &dev).unwrap();
        let sra = eval.sra.expect("SRA runs report sra");
        assert!(sra.is_finite() && sra > 0.0, "{sra}");
        assert!(eval.kd.is_none(), "SRA has no token-level divergence");
        // The export carries the student's tokenizer, not the teacher's.
        let out = tmp.path().join("exported");
        trainer.task().export(trainer.model(), &out).unwrap();
        let exported = std::fs::read_to_string(out.join("tokenizer.json")).unwrap();
        let own = std::fs::read_to_string(student_tokenizer(tmp.path())).unwrap();
        assert_eq!(exported, own, "{name}: exported tokenizer");
    }
}

fn weights(p: &burn::nn::Linear) -> Vec<f32> {
    p.clone()
        .valid()
        .weight
        .val()
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap()
}

#[test]
fn configurations_sra_cannot_run_are_refused_naming_the_key() {
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-sra-config");
    let good = sra_config(tmp.path(), &setup(tmp.path(), &device, ""));
    assert!(parse(&good).is_ok());
    let err = |text: String| parse(&text).unwrap_err().to_string();
    let vocab_line = good
        .lines()
        .find(|l| l.starts_with("vocab = "))
        .unwrap()
        .to_string();
    let e = err(good.replace(&format!("{vocab_line}\n"), ""));
    assert!(e.contains("student.vocab"), "{e}");
    let e = err(good.replace(
        "kind = \"sra\"",
        "kind = \"sra\"\ndivergence = { kind = \"forward_kl\" }",
    ));
    assert!(e.contains("objective.divergence"), "{e}");
    let e = err(good.replace(
        "kind = \"sra\"\n",
        "divergence = { kind = \"forward_kl\" }\n",
    ));
    assert!(
        e.contains("objective.sra") || e.contains("student.vocab"),
        "{e}"
    );
    // The cache serves SRA (its span inputs), not the other cross-tokenizer objectives.
    assert!(parse(&(good.clone() + "[cache]\ndir = \"c\"\n")).is_ok());
    let uld = good
        .replace("kind = \"sra\"", "kind = \"uld\"")
        .split("[objective.sra]")
        .next()
        .unwrap()
        .to_string();
    let e = err(uld + "[cache]\ndir = \"c\"\n");
    assert!(e.contains("`cache`") && e.contains("live"), "{e}");
    let e = err(good.replace("alpha = 0.5", "alpha = 0.0"));
    assert!(e.contains("objective.alpha"), "{e}");
    let e = err(good.replace("geo_weight = 5.0", "geo_weight = -1.0"));
    assert!(e.contains("geo_weight"), "{e}");
    // Layer 0 has no attention to weigh the centres of mass: refused when the models load.
    let _rng = rng_lock();
    let zero = parse(&good.replace("teacher_layer = 2", "teacher_layer = 0")).unwrap();
    let e = DistillTask::trainer(zero, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("objective.sra.pairs"), "{e}");
}

/// The cross-tokenizer baselines on the same setup: ULD, MinED, DSKD-CMA (each
/// `(1 − α)·CE + α·term`) and MTA's cross-tokenizer variant (`(1 − α)·CE + α·λ·L_MTA`), trained
/// a few steps, reported by the dev evaluation.
#[test]
fn the_cross_tokenizer_baselines_train() {
    let _rng = rng_lock();
    let (name, device) = devices().remove(0);
    for kind in ["uld", "mined", "mta-cross", "dskd-cma"] {
        let tmp = TempDir::new(&format!("distill-{kind}-{name}"));
        let text = sra_config(
            tmp.path(),
            &setup(
                tmp.path(),
                &device,
                "[eval]\nrecords = \"10..12\"\nevery = 0\n",
            ),
        );
        let text = text
            .replace("kind = \"sra\"", &format!("kind = \"{kind}\""))
            .split("[objective.sra]")
            .next()
            .unwrap()
            .to_string();
        // MTA's schedule for the tiny models; its term is weighted by λ = 2.
        const MTA: &str = r#"
[objective.mta]
pairs = [
  { teacher_layer = 1, student_layer = 1, granularity = "words" },
  { teacher_layer = 2, student_layer = 1, granularity = "phrases" },
]
"#;
        let (text, term, weight, projectors) = match kind {
            "mta-cross" => (text + MTA, "mta", 2.0, 2),
            "dskd-cma" => (text, "dskd_cma", 1.0, 3),
            _ => (text, kind, 1.0, 0),
        };
        let mut trainer = DistillTask::trainer(parse(&text).unwrap(), &device).unwrap();
        assert_eq!(trainer.model().projectors.len(), projectors, "{kind}");
        let report = trainer.train_step().unwrap();
        let names: Vec<&str> = report.terms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["total", "ce", term], "{kind}");
        let v = |n: &str| report.terms.iter().find(|(m, _)| m == n).unwrap().1;
        assert!(v(term) > 0.0, "{kind}: 0 on random models");
        assert!(
            (v("total") - (0.5 * v("ce") + 0.5 * weight * v(term))).abs() < 1e-4 * v("total"),
            "{kind}: total {} vs (1 − α)·CE + α·{weight}·{term}",
            v("total")
        );
        trainer.run(&mut Silent, None).unwrap();
        assert!(trainer.losses().iter().all(|l| l.is_finite()), "{kind}");
        let (task, model) = trainer.parts_mut();
        let dev = task.dev_data().unwrap().clone();
        let eval = task.evaluate_on(model, "dev", &dev).unwrap();
        let value = match kind {
            "uld" => eval.uld,
            "mined" => eval.mined,
            "dskd-cma" => eval.dskd_cma,
            _ => eval.mta,
        };
        assert!(
            value.is_some_and(|v| v.is_finite() && v > 0.0),
            "{kind}: {eval:?}"
        );
        assert!(eval.sra.is_none() && eval.kd.is_none());
    }
}

/// SFT over the student's own tokenizer (the cross-tokenizer table's "SFT only" row):
/// `kind = "kd"`, `alpha = 0` and `[student] vocab` train the transplanted student on CE over
/// its own tokens, with no teacher term, on the records the cross-tokenizer objectives read;
/// the same config with `alpha > 0` is refused naming `student.vocab`.
#[test]
fn sft_over_the_students_own_tokenizer() {
    let _rng = rng_lock();
    let (name, device) = devices().remove(0);
    let tmp = TempDir::new(&format!("distill-sft-vocab-{name}"));
    let text = sra_config(
        tmp.path(),
        &setup(
            tmp.path(),
            &device,
            "[eval]\nrecords = \"10..12\"\nevery = 0\n",
        ),
    );
    let text = text
        .replace(
            "kind = \"sra\"\nalpha = 0.5",
            "alpha = 0.0\ndivergence = { kind = \"forward_kl\" }",
        )
        .split("[objective.sra]")
        .next()
        .unwrap()
        .to_string();
    let e = parse(&text.replace("alpha = 0.0", "alpha = 0.5"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("student.vocab") && e.contains("SFT"), "{e}");
    let mut trainer = DistillTask::trainer(parse(&text).unwrap(), &device).unwrap();
    assert_eq!(
        trainer.model().student.vocab_size(),
        100,
        "transplanted vocab"
    );
    assert!(trainer.model().projectors.is_empty());
    let student_words = word_tokenizer(Arch::Bert, 100);
    let first = &trainer.task().train_data().examples[0];
    let text_of = student_words.decode(&first.ids, false).unwrap();
    assert!(
        text_of.contains("[SEP]"),
        "student tokens end with its EOS: {text_of}"
    );
    let report = trainer.train_step().unwrap();
    let names: Vec<&str> = report.terms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["total", "ce"]);
    let v = |n: &str| report.terms.iter().find(|(m, _)| m == n).unwrap().1;
    assert!(
        (v("total") - v("ce")).abs() < 1e-6 * v("ce"),
        "SFT: total = CE"
    );
    trainer.run(&mut Silent, None).unwrap();
    let losses = trainer.losses();
    assert!(losses.iter().all(|l| l.is_finite()));
    let (task, model) = trainer.parts_mut();
    let dev = task.dev_data().unwrap().clone();
    let eval = task.evaluate_on(model, "dev", &dev).unwrap();
    assert!(
        eval.ce.is_finite() && eval.kd.is_none() && eval.sra.is_none(),
        "{eval:?}"
    );
}

/// The span cache (`mrl distill cache` for an SRA config) holds the teacher's aligned-layer
/// states and centre-of-mass weights at its response tokens: an SRA run reading it takes the
/// live run's steps and dev evaluation, on both backends; a cache for other layers, or a KD
/// cache, is refused naming what differs.
#[test]
fn the_span_cache_replays_the_live_teacher() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        let tmp = TempDir::new(&format!("distill-sra-cache-{name}"));
        let cache_dir = tmp.path().join("cache");
        let cache = format!(
            "[cache]\ndir = \"{}\"\nshard_records = 3\n",
            cache_dir.display()
        );
        let eval = "[eval]\nrecords = \"10..12\"\nevery = 0\n";
        let live = sra_config(tmp.path(), &setup(tmp.path(), &device, eval));
        // Two pairs over two teacher layers: the cache stores both.
        let live = live.replace(
            "pairs = [{ teacher_layer = 2, student_layer = 1 }]",
            "pairs = [{ teacher_layer = 1, student_layer = 1 }, { teacher_layer = 2, student_layer = 1 }]",
        );
        let cached = parse(&(live.clone() + &cache)).unwrap();
        let err = DistillTask::trainer(cached.clone(), &device)
            .err()
            .expect("no cache yet");
        assert!(err.to_string().contains("mrl distill cache"), "{err}");
        training::distill::cache::write_cache(&cached, 4, false, |_, _| {}).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(cache_dir.join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["top_k"], 0, "{name}");
        assert_eq!(
            manifest["hidden_layers"],
            serde_json::json!([1, 2]),
            "{name}"
        );
        assert!(manifest["parts"]["dev"]["rows"].as_u64().unwrap() > 0);

        let mut a = DistillTask::trainer(parse(&live).unwrap(), &device).unwrap();
        let mut b = DistillTask::trainer(cached.clone(), &device).unwrap();
        assert!(
            b.task().teacher_kind().contains("hidden states [1, 2]"),
            "{}",
            b.task().teacher_kind()
        );
        for step in 0..3 {
            let (ra, rb) = (a.train_step().unwrap(), b.train_step().unwrap());
            assert_eq!(ra.terms.len(), rb.terms.len());
            for ((n, x), (m, y)) in ra.terms.iter().zip(&rb.terms) {
                assert_eq!(n, m);
                assert!(
                    (x - y).abs() <= 1e-4 * x.abs().max(1e-3),
                    "{name} step {step} {n}: live {x} vs cached {y}"
                );
            }
        }
        let eval_of = |t: &mut training::Trainer<DistillTask>| {
            let (task, model) = t.parts_mut();
            let dev = task.dev_data().unwrap().clone();
            task.evaluate_on(model, "dev", &dev).unwrap()
        };
        let (ea, eb) = (eval_of(&mut a), eval_of(&mut b));
        let (x, y) = (ea.sra.unwrap(), eb.sra.unwrap());
        assert!(
            (x - y).abs() <= 1e-4 * x.abs(),
            "{name} dev sra: live {x} vs cached {y}"
        );

        // Stale: the cache holds layers [1, 2], this run reads [2] only.
        let one_pair = live.replace(
            "pairs = [{ teacher_layer = 1, student_layer = 1 }, { teacher_layer = 2, student_layer = 1 }]",
            "pairs = [{ teacher_layer = 2, student_layer = 1 }]",
        );
        let e = DistillTask::trainer(parse(&(one_pair + &cache)).unwrap(), &device)
            .err()
            .expect("stale")
            .to_string();
        assert!(e.contains("stale") && e.contains("hidden_layers"), "{e}");
    }
}
