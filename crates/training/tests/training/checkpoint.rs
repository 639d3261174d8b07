//! Checkpoints: atomic writes, pruning, verification.

use training::checkpoint::{checkpoints_dir, write_atomic, Checkpoint, CheckpointState};

use crate::common::TempDir;

fn checkpoint(step: usize) -> Checkpoint {
    let mut files = std::collections::BTreeMap::new();
    files.insert("model.bpk".to_string(), vec![step as u8; 100]);
    files.insert("optim.bpk".to_string(), vec![7u8; 10]);
    Checkpoint {
        state: CheckpointState {
            version: training::checkpoint::VERSION,
            task: "test".into(),
            step,
            seed: 1,
            losses: vec![1.0; step],
            config: serde_json::json!({ "seed": 1 }),
            before: None,
            files: Default::default(),
        },
        files,
    }
}

#[test]
fn checkpoints_are_atomic_pruned_and_verified() {
    let tmp = TempDir::new("ckpt");
    let root = checkpoints_dir(tmp.path());
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
    assert_eq!(loaded.files["model.bpk"], vec![6u8; 100]);

    // An interrupted save (a stale temporary directory) does not disturb `latest`.
    std::fs::create_dir_all(root.join(".step-00000008.999.tmp")).unwrap();
    std::fs::write(root.join(".step-00000008.999.tmp/model.bpk"), b"half").unwrap();
    assert_eq!(Checkpoint::load_latest(&root).unwrap().state.step, 6);

    // A truncated file is reported as corrupt, naming it.
    let victim = root.join("step-00000006/model.bpk");
    std::fs::write(&victim, vec![6u8; 50]).unwrap();
    let err = Checkpoint::load_latest(&root).unwrap_err();
    assert!(
        err.to_string().contains("corrupt") && err.to_string().contains("model.bpk"),
        "{err}"
    );
    // A missing file too.
    std::fs::remove_file(&victim).unwrap();
    let err = Checkpoint::load_latest(&root).unwrap_err();
    assert!(err.to_string().contains("model.bpk"), "{err}");
    // And a garbled state.json.
    std::fs::write(root.join("step-00000004/state.json"), b"{ not json").unwrap();
    let err = Checkpoint::load(&root.join("step-00000004")).unwrap_err();
    assert!(
        err.to_string().contains("state.json") && err.to_string().contains("corrupt"),
        "{err}"
    );

    // write_atomic replaces whole files and leaves no temporaries.
    let f = tmp.path().join("f.txt");
    write_atomic(&f, b"one").unwrap();
    write_atomic(&f, b"two").unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"two");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        2,
        "checkpoints/ and f.txt"
    );
}

#[test]
fn a_save_removes_the_scratch_directories_of_killed_runs() {
    if !std::path::Path::new("/proc/self").exists() {
        return; // whether a process still runs cannot be told here
    }
    let tmp = TempDir::new("ckpt-stale");
    let root = checkpoints_dir(tmp.path());
    // What a run killed while writing step 10 leaves: its scratch directory, named with its
    // pid (u32::MAX is above Linux's pid_max, so never a running process).
    let stale = root.join(format!(".step-00000010.{}.tmp", u32::MAX));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.bpk"), vec![0u8; 1000]).unwrap();
    checkpoint(2).save(&root, 2).unwrap();
    assert!(!stale.exists(), "the stale scratch directory is removed");
    assert!(Checkpoint::load_latest(&root).is_ok());
}
