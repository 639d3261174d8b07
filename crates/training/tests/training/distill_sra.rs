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
    let e = err(good.clone() + "[cache]\ndir = \"c\"\n");
    assert!(e.contains("`cache`") || e.contains("cache"), "{e}");
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
