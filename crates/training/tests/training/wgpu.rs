//! Training on wgpu (the CubeCL path) against flex.

use std::path::Path;

use burn::tensor::Device;
use training::embedding::EmbeddingTask;
use training::Silent;

use crate::common::{parse, rng_lock, tiny_setup, TempDir, MIPIC};

/// The same MIPIC run on wgpu (the `#[cube]` CKA kernels inside autodiff, on lavapipe here)
/// and on flex: same starting weights (the flex run's step-0 checkpoint), dropout off, so the
/// loss sequences agree up to f32 rounding (kernels sum in another order).
#[test]
fn mipic_trains_on_wgpu_as_on_flex() {
    let _rng = rng_lock();
    let flex = Device::flex();
    let wgpu = Device::wgpu(Default::default());
    let tmp = TempDir::new("wgpu");
    let text = tiny_setup(tmp.path(), &flex, MIPIC, "");
    // No dropout: the two backends draw different random numbers.
    let config_path = tmp.path().join("model/config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    json["hidden_dropout_prob"] = 0.0.into();
    json["attention_probs_dropout_prob"] = 0.0.into();
    std::fs::write(&config_path, json.to_string()).unwrap();
    let mut config = parse(&text).unwrap();
    config.training.steps = Some(4);

    let mut on_flex = EmbeddingTask::trainer(config.clone(), &flex).unwrap();
    on_flex.save_checkpoint().unwrap();
    let start = tmp.path().join("start");
    copy_dir(&tmp.path().join("out"), &start);
    on_flex.run(&mut Silent, None).unwrap();

    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    copy_dir(&start, &tmp.path().join("out"));
    let mut on_wgpu = EmbeddingTask::resume(config, &wgpu).unwrap();
    assert_eq!(on_wgpu.step(), 0);
    on_wgpu.run(&mut Silent, None).unwrap();

    let (a, b) = (on_flex.losses(), on_wgpu.losses());
    assert_eq!(a.len(), 4);
    assert!(a.windows(2).any(|w| w[0] != w[1]), "training moved: {a:?}");
    for (step, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 2e-3 * x.abs().max(1.0),
            "step {}: flex {x} vs wgpu {y}\nflex {a:?}\nwgpu {b:?}",
            step + 1
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
