//! MTA through the distillation task on a tiny random Llama teacher (no shared data): the
//! loss breakdown and its composition `(1 − α)·CE + α·(KD + λ·L_MTA)`, resume == uninterrupted
//! with the projectors in their own group, units read from the data or found by the chunker,
//! and the configurations MTA refuses.

use burn::module::Module;
use distill_objectives::{EnglishChunker, Granularity};
use training::distill::{DistillData, DistillTask};
use training::Silent;

use crate::common::{devices, rng_lock, TempDir};
use crate::distill::{parse, setup};

/// MTA on the tiny teacher (2 layers, width 16) and its 1-layer student.
const MTA: &str = r#"
[objective.mta]
pairs = [
  { teacher_layer = 1, student_layer = 1, granularity = "words" },
  { teacher_layer = 2, student_layer = 1, granularity = "phrases" },
]
"#;

fn mta_config(text: &str) -> String {
    text.replace(
        "[objective]\nalpha = 0.5",
        "[objective]\nkind = \"mta\"\nalpha = 0.5",
    )
    .replace("[optimizer]\n", "[optimizer]\nhead_lr = 5e-3\n")
        + MTA
}

#[test]
fn mta_composes_its_terms_resumes_exactly_and_trains_the_projectors() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        let tmp = TempDir::new(&format!("distill-mta-{name}"));
        let config = parse(&mta_config(&setup(tmp.path(), &device, ""))).unwrap();
        let mut full = DistillTask::trainer(config.clone(), &device).unwrap();
        let before: Vec<Vec<f32>> = projector_values(full.model());
        assert_eq!(before.len(), 2, "one projector per pair");
        let report = full.train_step().unwrap();
        let names: Vec<&str> = report.terms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "total",
                "ce",
                "kd",
                "mta",
                "mta/dsa_t1_s1",
                "mta/hra_t1_s1",
                "mta/dsa_t2_s1",
                "mta/hra_t2_s1"
            ],
            "{name}"
        );
        let v = |n: &str| report.terms.iter().find(|(m, _)| m == n).unwrap().1;
        let expected = 0.5 * v("ce") + 0.5 * (v("kd") + 2.0 * v("mta"));
        assert!(
            (v("total") - expected).abs() < 1e-4 * v("total"),
            "{name}: total {} vs (1 − α)·CE + α·(KD + λ·MTA) = {expected}",
            v("total")
        );
        let pair = |t: &str| v(&format!("mta/dsa_{t}")) + 0.1 * v(&format!("mta/hra_{t}"));
        assert!((v("mta") - 0.5 * (pair("t1_s1") + pair("t2_s1"))).abs() < 1e-5);
        assert!(v("mta") > 0.0, "{name}: MTA is 0 on random models");
        full.run(&mut Silent, None).unwrap();
        let expected = full.losses().to_vec();
        assert_eq!(expected.len(), 6);
        assert!(expected.iter().all(|l| l.is_finite()), "{expected:?}");
        assert_ne!(
            projector_values(full.model()),
            before,
            "{name}: the projectors did not train"
        );
        std::fs::remove_dir_all(tmp.path().join("out")).unwrap();

        let mut first = DistillTask::trainer(config.clone(), &device).unwrap();
        first.run(&mut Silent, Some(3)).unwrap();
        drop(first);
        let mut resumed = DistillTask::resume(config, &device).unwrap();
        resumed.run(&mut Silent, None).unwrap();
        for (i, (a, b)) in resumed.losses().iter().zip(&expected).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{name}: step {} resumed {a} vs uninterrupted {b}",
                i + 1
            );
        }
        assert_eq!(
            projector_values(resumed.model()),
            projector_values(full.model()),
            "{name}: resumed projectors"
        );
    }
}

fn projector_values(model: &training::distill::DistillModel) -> Vec<Vec<f32>> {
    model
        .projectors
        .iter()
        .map(|p| {
            p.clone()
                .valid()
                .weight
                .val()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap()
        })
        .collect()
}

#[test]
fn the_dev_evaluation_reports_mta() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-mta-eval");
    let text = mta_config(&setup(
        tmp.path(),
        &device,
        "[eval]\nrecords = \"10..12\"\nevery = 0\n",
    ));
    let mut trainer = DistillTask::trainer(parse(&text).unwrap(), &device).unwrap();
    let (task, model) = trainer.parts_mut();
    let dev = task.dev_data().expect("[eval] given").clone();
    let eval = task.evaluate_on(model, "dev", &dev).unwrap();
    let mta = eval.mta.expect("MTA runs report mta");
    assert!(mta.is_finite() && mta > 0.0, "{mta}");
    assert!(eval.kd.is_some());
}

/// Records with `"units"` use them as given (character offsets into the response); records
/// without use the chunker; invalid units name the record and its line.
#[test]
fn units_come_from_the_data_or_the_chunker() {
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-mta-units");
    setup(tmp.path(), &device, "");
    let teacher = tmp.path().join("teacher");
    let tokenizer = training::distill::load_tokenizer(&teacher).unwrap();
    let response = "the small dog is playing";
    let lines = [
        serde_json::json!({"instruction": "the old cat", "response": response,
            "units": {"words": [[4, 9], [10, 13]], "phrases": [[0, 13]]}}),
        serde_json::json!({"instruction": "the old cat", "response": response}),
    ];
    let path = tmp.path().join("units.jsonl");
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    let load = |p: &std::path::Path| {
        DistillData::load(p, None, "data.records", &tokenizer, 2, 40, false).unwrap()
    };
    let mut data = load(&path);
    data.attach_units(&EnglishChunker).unwrap();
    let given = data.examples[0].units.as_ref().unwrap();
    let chunked = data.examples[1].units.as_ref().unwrap();
    assert_eq!(given.get(Granularity::Words).units.len(), 2, "{given:?}");
    assert_eq!(given.get(Granularity::Phrases).units.len(), 1, "{given:?}");
    // The chunker finds the five words of the response.
    assert_eq!(
        chunked.get(Granularity::Words).units.len(),
        5,
        "{chunked:?}"
    );
    // Every member is a response token and not the EOS.
    for e in &data.examples {
        let last = e.len() - 1;
        for g in [Granularity::Words, Granularity::Phrases] {
            for unit in &e.units.as_ref().unwrap().get(g).units {
                for &j in unit {
                    assert!(e.response[j] && j != last, "token {j} of {:?}", e.ids);
                }
            }
        }
    }
    // Offsets past the response: named with the record and its line.
    let bad = tmp.path().join("bad.jsonl");
    let line = serde_json::json!({"instruction": "x", "response": "a dog",
        "units": {"words": [[0, 9]], "phrases": []}});
    std::fs::write(&bad, format!("{}\n{line}\n", lines[1])).unwrap();
    let err = load(&bad)
        .attach_units(&EnglishChunker)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2: record 1"), "{err}");
    let malformed = tmp.path().join("malformed.jsonl");
    let line = serde_json::json!({"instruction": "x", "response": "a dog", "units": [1, 2]});
    std::fs::write(&malformed, line.to_string()).unwrap();
    let err = load(&malformed)
        .attach_units(&EnglishChunker)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`units` must be"), "{err}");
}

#[test]
fn configurations_mta_cannot_run_are_refused_naming_the_key() {
    let _rng = rng_lock(); // a trainer seeds the device
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("distill-mta-config");
    let base = setup(tmp.path(), &device, "");
    let mta = mta_config(&base);
    assert!(parse(&mta).is_ok());
    // A [objective.mta] table without kind = "mta".
    let err = parse(&(base.clone() + MTA)).unwrap_err().to_string();
    assert!(err.contains("objective.mta"), "{err}");
    let err = parse(&format!("{mta}\n[cache]\ndir = \"c\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cache") && err.contains("hidden states"),
        "{err}"
    );
    let err = parse(&mta.replace("alpha = 0.5", "alpha = 0"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("objective.alpha"), "{err}");
    let err = parse(&mta.replace("pairs = [", "lambda = -1\npairs = ["))
        .unwrap_err()
        .to_string();
    assert!(err.contains("objective.mta.lambda"), "{err}");
    let err = parse(&mta.replace(
        "[objective.mta]",
        "[objective.mta]\nhra_weight = 0\ndsa_weight = 0",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("objective.mta"), "{err}");
    // A layer past the teacher's depth is refused when the run starts.
    let deep = parse(&mta.replace("teacher_layer = 2", "teacher_layer = 3")).unwrap();
    let err = DistillTask::trainer(deep, &device).err().expect("too deep");
    let err = err.to_string();
    assert!(
        err.contains("objective.mta.pairs") && err.contains("teacher_layer = 3"),
        "{err}"
    );
}
