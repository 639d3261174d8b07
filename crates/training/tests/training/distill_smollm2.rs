//! The distillation data and measurements on the real SmolLM2-135M-Instruct (needs
//! `MRL_SHARED`): the first 64 Dolly records tokenize to the reference fixture's ids and
//! response masks, and teacher (30 layers) vs student (first 10 layers) reproduce its
//! cross-entropies, divergences and top-1 agreement (PyTorch f32 on the dequantised GGUF).

use burn::tensor::Device;
use models::llama::StudentInit;
use test_support::shared_path;
use training::distill::measure::Measure;
use training::distill::{load_tokenizer, DistillData, ObjectiveSection};

#[test]
#[ignore = "needs MRL_SHARED (SmolLM2 GGUF, dolly_2k.jsonl, the KD fixture); ~3 min"]
fn smollm2_reproduces_the_kd_fixture() {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared_path("fixtures/smollm2_dolly64_kd_reference.json"))
            .unwrap(),
    )
    .unwrap();
    let teacher_dir = shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    let tokenizer = load_tokenizer(&teacher_dir).unwrap();
    let data = DistillData::load(
        &shared_path("data/dolly_2k.jsonl"),
        Some(0..64),
        "data.records",
        &tokenizer,
        2,
        128,
        false,
    )
    .unwrap();
    let examples = fixture["examples"].as_array().unwrap();
    for (i, (e, want)) in data.examples.iter().zip(examples).enumerate() {
        let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).unwrap();
        let mask: Vec<u8> = serde_json::from_value(want["response_mask"].clone()).unwrap();
        assert_eq!(e.ids, ids, "record {i}: ids");
        let got: Vec<u8> = e.response.iter().map(|&r| u8::from(r)).collect();
        assert_eq!(got, mask, "record {i}: response mask");
    }
    assert_eq!(data.num_targets(), 2597);

    #[cfg(feature = "flex")]
    let device = Device::flex();
    #[cfg(not(feature = "flex"))]
    #[allow(deprecated)]
    let device = Device::ndarray();
    let (_, teacher) =
        models::LlamaModel::from_pretrained(&teacher_dir, models::LayerSelection::All, &device)
            .unwrap();
    let init = StudentInit::FirstLayers {
        layers: 10,
        untie_head: false,
        vocab: None,
    };
    let (_, student) = models::llama::build_student(&teacher_dir, &init, &device).unwrap();
    let objective: ObjectiveSection =
        toml::from_str("alpha = 0.5\ndivergence = { kind = \"forward_kl\" }").unwrap();
    let objective = objective.kd_objective().init();
    let report = Measure {
        student: &student,
        teacher: &teacher,
        objective: &objective,
        batch_size: 8,
        top_k: 64,
        device: &device,
    }
    .run(&data, |_| {})
    .unwrap();
    let kd = &report.kd;
    let close = |name: &str, got: f64, key: &str| {
        let want = fixture[key].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 2e-3 * want.abs().max(1e-3),
            "{name}: {got} vs the fixture's {want}"
        );
    };
    close("teacher CE", kd.teacher_ce, "ce_t");
    close("student CE", kd.student_ce, "ce_s");
    close("FKL", kd.fkl, "fkl");
    close("RKL", kd.rkl, "rkl");
    close("JSD", kd.jsd, "jsd");
    close("τ²·KL(τ=2)", kd.kl_tau2_scaled, "kl_tau2");
    close("top-1 agreement", kd.top1_agreement, "agree");
    assert_eq!(report.positions, 2597);
    // The top-64 + tail FKL bounds the full one from below.
    assert!(
        kd.fkl_top_k <= kd.fkl + 1e-4 && kd.fkl_top_k > 0.0,
        "{kd:?}"
    );
    eprintln!("top-64 FKL {} vs full FKL {}", kd.fkl_top_k, kd.fkl);
    // The objective's total is (1 − α)·CE + α·FKL.
    let total = report.loss["total"];
    assert!(
        (total - 0.5 * (kd.student_ce + kd.fkl)).abs() < 1e-3 * total,
        "{report:?}"
    );
}

/// MTA on real hidden states: SmolLM2 teacher vs its first 10 layers on 4 Dolly records (units
/// given in the records), identity projectors, the default schedule — against
/// `scripts/make_mta_smollm2_reference.py` (PyTorch, float64 from the f32 states).
#[test]
#[ignore = "needs MRL_SHARED (SmolLM2 GGUF); ~10 s"]
fn smollm2_mta_matches_pytorch() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("mta_smollm2_reference.json")).unwrap(),
    )
    .unwrap();
    let teacher_dir = shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    let tokenizer = load_tokenizer(&teacher_dir).unwrap();
    let mut data = DistillData::load(
        &fixtures.join("mta_smollm2_records.jsonl"),
        None,
        "--data",
        &tokenizer,
        2,
        128,
        false,
    )
    .unwrap();
    data.attach_units(&distill_objectives::EnglishChunker)
        .unwrap();
    for (e, ids) in data
        .examples
        .iter()
        .zip(want["input_ids"].as_array().unwrap())
    {
        let ids: Vec<u32> = serde_json::from_value(ids.clone()).unwrap();
        assert_eq!(e.ids, ids, "record {}: ids", e.record);
    }
    #[cfg(feature = "flex")]
    let device = Device::flex();
    #[cfg(not(feature = "flex"))]
    #[allow(deprecated)]
    let device = Device::ndarray();
    let (teacher_config, teacher) =
        models::LlamaModel::from_pretrained(&teacher_dir, models::LayerSelection::All, &device)
            .unwrap();
    let init = StudentInit::FirstLayers {
        layers: 10,
        untie_head: false,
        vocab: None,
    };
    let (student_config, student) =
        models::llama::build_student(&teacher_dir, &init, &device).unwrap();
    let section: training::distill::MtaSection =
        toml::from_str("projector_init = \"identity\"").unwrap();
    let mta = training::distill::mta_loss(&section, 0, &student_config, &teacher_config, &device)
        .unwrap();
    let report =
        training::distill::measure::measure_mta(&student, &teacher, &mta, &data, &device).unwrap();
    // f32 models here against PyTorch's f32 states taken to float64: 1e-3 relative.
    let close = |what: String, got: f64, want: f64| {
        assert!(
            (got - want).abs() <= 1e-3 * want.abs().max(1e-3),
            "{what}: {got} vs PyTorch {want}"
        );
    };
    close("mta".into(), report.mta, want["mta"].as_f64().unwrap());
    for (k, (p, w)) in report
        .pairs
        .iter()
        .zip(want["pairs"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(p.units, w["units"].as_f64().unwrap(), "pair {k} units");
        close(format!("pair {k} dsa"), p.dsa, w["dsa"].as_f64().unwrap());
        close(format!("pair {k} hra"), p.hra, w["hra"].as_f64().unwrap());
    }
    for (b, (e, w)) in report
        .examples
        .iter()
        .zip(want["examples"].as_array().unwrap())
        .enumerate()
    {
        close(format!("record {b} mta"), e.mta, w["mta"].as_f64().unwrap());
    }
}

/// SRA on the real models across tokenizers: SmolLM2-135M-Instruct (teacher, its tokenizer)
/// and the untrained GPT-2-vocabulary student (its first 10 layers, vocabulary transplant), the
/// first 8 Dolly records in one batch, the projector at the identity — against the PyTorch step
/// of `scripts/bench_sra_torch.py --check` (transformers' eager attention and hidden states,
/// spans and terms written in Python from the formulas).
#[test]
#[ignore = "needs MRL_SHARED (SmolLM2 GGUF, GPT-2 tokenizer, dolly_2k.jsonl); ~30 s"]
fn smollm2_sra_matches_pytorch() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("sra_smollm2_reference.json")).unwrap(),
    )
    .unwrap();
    let teacher_dir = shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    let vocab = shared_path("models/gpt2-tokenizer/tokenizer.json");
    #[cfg(feature = "flex")]
    let device = Device::flex();
    #[cfg(not(feature = "flex"))]
    #[allow(deprecated)]
    let device = Device::ndarray();
    let (teacher_config, teacher) =
        models::LlamaModel::from_pretrained(&teacher_dir, models::LayerSelection::All, &device)
            .unwrap();
    let init = StudentInit::FirstLayers {
        layers: 10,
        untie_head: false,
        vocab: Some(vocab.clone()),
    };
    let (student_config, student) =
        models::llama::build_student(&teacher_dir, &init, &device).unwrap();
    let (teacher_tokenizer, student_tokenizer) = (
        load_tokenizer(&teacher_dir).unwrap(),
        load_tokenizer(&vocab).unwrap(),
    );
    let mut data = DistillData::load(
        &shared_path("data/dolly_2k.jsonl"),
        Some(0..8),
        "--data",
        &student_tokenizer,
        student_config.eos_token_ids[0],
        128,
        true,
    )
    .unwrap();
    data.attach_teacher_tokens(&teacher_tokenizer, 2, 128, true)
        .unwrap();
    assert_eq!(data.len(), 8);
    let ids = |v: &serde_json::Value| -> Vec<u32> { serde_json::from_value(v.clone()).unwrap() };
    let first = &data.examples[0];
    assert_eq!(first.ids, ids(&want["student_ids_0"]), "student ids");
    let teacher_first = &first.cross.as_ref().unwrap().teacher;
    assert_eq!(
        teacher_first.ids,
        ids(&want["teacher_ids_0"]),
        "teacher ids"
    );
    let section: training::distill::SraSection =
        toml::from_str("projector_init = \"identity\"").unwrap();
    let loss = training::distill::sra_loss(&section, 0, &student_config, &teacher_config, &device)
        .unwrap();
    let shared =
        training::distill::shared_vocabulary(&student_tokenizer, &teacher_tokenizer).unwrap();
    assert_eq!(shared.len(), 36_961);
    let models = training::distill::SraModels {
        student: &student,
        teacher: training::distill::SraTeacher::Live(&teacher),
        shared: &shared,
        teacher_head: training::distill::sra_teacher_head(&teacher, &shared),
    };
    let report =
        training::distill::measure::measure_sra(&models, &loss, 0.5, &data, &device).unwrap();
    // Both sides f32 (different kernels and summation orders): 1e-4 relative.
    let close = |what: String, got: f64, want: f64| {
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1e-3),
            "{what}: {got} vs PyTorch {want}"
        );
    };
    for (name, got) in [
        ("com", report.com),
        ("geo", report.geo),
        ("logit", report.logit),
        ("ce", report.ce),
        ("total", report.total),
    ] {
        close(name.into(), got, want[name].as_f64().unwrap());
    }
    let spans: Vec<usize> = serde_json::from_value(want["spans_per_example"].clone()).unwrap();
    assert_eq!(report.spans_per_example, spans);
    for (b, (e, w)) in report
        .examples
        .iter()
        .zip(want["examples"].as_array().unwrap())
        .enumerate()
    {
        close(format!("record {b} com"), e.com, w["com"].as_f64().unwrap());
        close(format!("record {b} geo"), e.geo, w["geo"].as_f64().unwrap());
        close(
            format!("record {b} logit"),
            e.logit,
            w["logit"].as_f64().unwrap(),
        );
    }
}
