//! `mrl train`: malformed TOML configs and values, bad data files, corrupt models, flipped
//! and truncated checkpoints on `--resume`, a full disk.

use std::path::Path;

use super::{some_model_faults, spoiled_copy, INVALID_UTF8};
use crate::fixtures::{self, replace_once, train_toml, Fixtures};
use crate::harness::{Case, Cmd, Ctx};

/// Writes `<case>/train.toml` (the fixture config writing into `<case>/out`, edited by
/// `edit`) and returns `--config <it>` and `extra`.
fn train(ctx: &Ctx, edit: impl FnOnce(String) -> String, extra: &[&str]) -> Vec<String> {
    let toml = edit(train_toml(ctx.fx, &ctx.dir.join("out")));
    let mut args = vec!["--config".to_string(), ctx.write("train.toml", toml)];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// A config with the line `from` replaced by `to`; the message must name `key`.
fn key_case(name: &str, from: &'static str, to: &'static str, key: &str) -> Case {
    Case::new(Cmd::Train, name, move |ctx| {
        train(ctx, |t| replace_once(&t, from, to), &[])
    })
    .names(key)
}

/// Copies the fixture run (checkpoint at step 2) to `<case>/out`, spoils it, and resumes.
fn resume_case(name: &str, spoil: impl Fn(&Path) + Send + Sync + 'static, names: &str) -> Case {
    Case::new(Cmd::Train, name, move |ctx| {
        let out = ctx.dir.join("out");
        fixtures::copy_dir(&ctx.fx.train_run, &out);
        spoil(&out);
        train(ctx, |t| t, &["--resume"])
    })
    .names(names)
}

fn checkpoint_file(out: &Path, file: &str) -> std::path::PathBuf {
    fixtures::latest_checkpoint(out).join(file)
}

pub fn cases(fx: &Fixtures) -> Vec<Case> {
    let mut cases = vec![
        Case::new(Cmd::Train, "one step", |ctx| {
            train(ctx, |t| t, &["--stop-after", "1"])
        })
        .control(),
        Case::new(Cmd::Train, "resume the copied checkpoint", |ctx| {
            fixtures::copy_dir(&ctx.fx.train_run, &ctx.dir.join("out"));
            train(ctx, |t| t, &["--resume", "--stop-after", "1"])
        })
        .control(),
        // The TOML file.
        Case::new(Cmd::Train, "config missing", |ctx| {
            vec!["--config".into(), ctx.path("no-such-config.toml")]
        })
        .names("no-such-config.toml"),
        Case::new(Cmd::Train, "config TOML syntax error", |ctx| {
            train(ctx, |t| replace_once(&t, "[training]", "[training"), &[])
        })
        .names("train.toml"),
        Case::new(Cmd::Train, "config invalid UTF-8", |ctx| {
            let mut bytes = train_toml(ctx.fx, &ctx.dir.join("out")).into_bytes();
            bytes.extend_from_slice(b"# \xff\xfe\n");
            vec!["--config".into(), ctx.write("train.toml", bytes)]
        })
        .names("train.toml"),
        Case::new(Cmd::Train, "config empty", |ctx| {
            train(ctx, |_| String::new(), &[])
        })
        .names("train.toml"),
        key_case(
            "training.steps wrong type",
            "steps = 4",
            "steps = \"four\"",
            "training.steps",
        ),
        key_case(
            "unknown key training.stepz",
            "steps = 4",
            "steps = 4\nstepz = 2",
            "stepz",
        ),
        Case::new(Cmd::Train, "missing [model] section", |ctx| {
            train(
                ctx,
                |t| {
                    let start = t.find("[model]").unwrap();
                    let end = t.find("[data]").unwrap();
                    format!("{}{}", &t[..start], &t[end..])
                },
                &[],
            )
        })
        .names("model"),
        Case::new(Cmd::Train, "missing data.path", |ctx| {
            let line = format!("path = \"{}\"\n", ctx.fx.sentences.display());
            train(ctx, |t| replace_once(&t, &line, ""), &[])
        })
        .names("data.path"),
        key_case(
            "objective.dims not ending at the hidden size",
            "dims = [8, 16, 32]",
            "dims = [8, 16]",
            "objective.dims",
        ),
        key_case(
            "objective.dims duplicate",
            "dims = [8, 16, 32]",
            "dims = [8, 8, 32]",
            "objective.dims",
        ),
        key_case(
            "objective.dims zero",
            "dims = [8, 16, 32]",
            "dims = [0, 16, 32]",
            "objective.dims",
        ),
        key_case(
            "objective.dims above the hidden size",
            "dims = [8, 16, 32]",
            "dims = [8, 16, 64]",
            "objective.dims",
        ),
        key_case(
            "objective.dims negative",
            "dims = [8, 16, 32]",
            "dims = [-8, 16, 32]",
            "objective.dims",
        ),
        key_case(
            "objective.dims empty",
            "dims = [8, 16, 32]",
            "dims = []",
            "objective.dims",
        ),
        key_case(
            "objective.kind unknown",
            "kind = \"mrl\"",
            "kind = \"magic\"",
            "objective.kind",
        ),
        key_case(
            "training.steps 0",
            "steps = 4",
            "steps = 0",
            "training.steps",
        ),
        key_case(
            "training.steps -5",
            "steps = 4",
            "steps = -5",
            "training.steps",
        ),
        key_case(
            "training.steps 2^64 (overflow)",
            "steps = 4",
            "steps = 18446744073709551616",
            "training.steps",
        ),
        key_case(
            "training.batch_size 0",
            "batch_size = 8",
            "batch_size = 0",
            "training.batch_size",
        ),
        key_case("optimizer.lr nan", "lr = 1e-3", "lr = nan", "optimizer.lr"),
        key_case("optimizer.lr inf", "lr = 1e-3", "lr = inf", "optimizer.lr"),
        key_case(
            "optimizer.lr negative",
            "lr = 1e-3",
            "lr = -1e-3",
            "optimizer.lr",
        ),
        key_case(
            "model.max_length 0",
            "max_length = 16",
            "max_length = 0",
            "model.max_length",
        ),
        key_case(
            "model.max_length 1",
            "max_length = 16",
            "max_length = 1",
            "model.max_length",
        ),
        key_case(
            "checkpoint.keep 0",
            "every = 2",
            "every = 2\nkeep = 0",
            "checkpoint.keep",
        ),
        key_case("seed -1", "seed = 1", "seed = -1", "seed"),
        key_case(
            "device unknown",
            "device = \"ndarray\"",
            "device = \"tpu\"",
            "tpu",
        ),
        Case::new(Cmd::Train, "--set without =", |ctx| {
            train(ctx, |t| t, &["--set", "training.steps"])
        })
        .names("training.steps")
        .forbids("unexpected argument"),
        Case::new(Cmd::Train, "--set value not TOML", |ctx| {
            train(ctx, |t| t, &["--set", "training.steps=[1,"])
        })
        .names("training.steps"),
        Case::new(Cmd::Train, "--stop-after 0", |ctx| {
            train(ctx, |t| t, &["--stop-after", "0"])
        })
        .flag("--stop-after"),
        Case::new(Cmd::Train, "--stop-after -1", |ctx| {
            train(ctx, |t| t, &["--stop-after", "-1"])
        })
        .flag("--stop-after"),
        // Data files.
        Case::new(Cmd::Train, "corpus missing", |ctx| {
            let corpus = ctx.path("no-such-corpus.txt");
            train(
                ctx,
                |t| t.replace(ctx.fx.sentences.to_str().unwrap(), &corpus),
                &[],
            )
        })
        .names("no-such-corpus.txt"),
        Case::new(Cmd::Train, "corpus empty", |ctx| {
            let corpus = ctx.write("corpus-empty.txt", "");
            train(
                ctx,
                |t| t.replace(ctx.fx.sentences.to_str().unwrap(), &corpus),
                &[],
            )
        })
        .names("corpus-empty.txt"),
        Case::new(Cmd::Train, "corpus invalid UTF-8", |ctx| {
            let mut bytes = std::fs::read(&ctx.fx.sentences).unwrap();
            bytes.extend_from_slice(b"\n");
            bytes.extend_from_slice(INVALID_UTF8);
            let corpus = ctx.write("corpus-latin1.txt", bytes);
            train(
                ctx,
                |t| t.replace(ctx.fx.sentences.to_str().unwrap(), &corpus),
                &[],
            )
        })
        .names("corpus-latin1.txt"),
        Case::new(Cmd::Train, "eval.dev malformed", |ctx| {
            let dev = ctx.write(
                "dev-bad.tsv",
                "score\tsentence1\tsentence2\n4.0\tonly one sentence\n",
            );
            train(ctx, |t| t.replace(ctx.fx.sts.to_str().unwrap(), &dev), &[])
        })
        .names("dev-bad.tsv"),
        Case::new(Cmd::Train, "--eval TSV non-numeric score", |ctx| {
            let extra = ctx.write(
                "extra-bad.tsv",
                "score\tsentence1\tsentence2\nhigh\ta man .\ta dog .\n",
            );
            train(ctx, |t| t, &["--eval", &extra])
        })
        .names("extra-bad.tsv"),
        Case::new(Cmd::Train, "--eval missing", |ctx| {
            let extra = ctx.path("no-such-extra.tsv");
            train(ctx, |t| t, &["--eval", &extra])
        })
        .names("no-such-extra.tsv"),
        // Checkpoints.
        Case::new(Cmd::Train, "--resume without a checkpoint", |ctx| {
            train(ctx, |t| t, &["--resume"])
        })
        .names("checkpoints"),
        resume_case(
            "checkpoint model.bpk flipped byte",
            |out| fixtures::flip_byte(&checkpoint_file(out, "model.bpk"), 0.5),
            "model.bpk",
        ),
        resume_case(
            "checkpoint optim.bpk flipped byte",
            |out| fixtures::flip_byte(&checkpoint_file(out, "optim.bpk"), 0.7),
            "optim.bpk",
        ),
        resume_case(
            "checkpoint model.bpk truncated",
            |out| {
                let p = checkpoint_file(out, "model.bpk");
                fixtures::truncate(&p, fixtures::len(&p) / 3)
            },
            "model.bpk",
        ),
        resume_case(
            "checkpoint model.bpk missing",
            |out| std::fs::remove_file(checkpoint_file(out, "model.bpk")).unwrap(),
            "model.bpk",
        ),
        resume_case(
            "checkpoint state.json garbage",
            |out| std::fs::write(checkpoint_file(out, "state.json"), "{\"step\": ").unwrap(),
            "state.json",
        ),
        resume_case(
            "checkpoint state.json future version",
            |out| {
                super::edit_json(&checkpoint_file(out, "state.json"), |m| {
                    m.insert("version".into(), 99.into());
                })
            },
            "state.json",
        )
        .names("99"),
        resume_case(
            "checkpoint latest dangling",
            |out| std::fs::write(out.join("checkpoints/latest"), "step-99999999").unwrap(),
            "step-99999999",
        ),
        Case::new(
            Cmd::Train,
            "--resume with different objective.dims",
            |ctx| {
                fixtures::copy_dir(&ctx.fx.train_run, &ctx.dir.join("out"));
                train(
                    ctx,
                    |t| replace_once(&t, "dims = [8, 16, 32]", "dims = [16, 32]"),
                    &["--resume"],
                )
            },
        )
        .names("objective.dims"),
        Case::new(Cmd::Train, "--resume with a different seed", |ctx| {
            fixtures::copy_dir(&ctx.fx.train_run, &ctx.dir.join("out"));
            train(
                ctx,
                |t| replace_once(&t, "seed = 1", "seed = 2"),
                &["--resume"],
            )
        })
        .names("seed"),
        // Full disk.
        Case::new(Cmd::Train, "output_dir on a full disk", |ctx| {
            train(ctx, |t| t, &["--stop-after", "2"])
        })
        .names("{case}/out")
        .full_disk(),
    ];
    for fault in some_model_faults(
        &fx.bert_tensors,
        &[
            "weights-nan",
            "weights-truncated",
            "config-json-missing-field",
            "tokenizer-json-missing",
        ],
    ) {
        let spoil = fault.spoil.clone();
        let mut case = Case::new(Cmd::Train, &format!("model {}", fault.name), move |ctx| {
            let model = spoiled_copy(ctx, &ctx.fx.bert, "model", &spoil);
            train(
                ctx,
                |t| t.replace(ctx.fx.bert.to_str().unwrap(), &model),
                &[],
            )
        });
        for n in fault.names {
            case = case.names(n);
        }
        cases.push(case);
    }
    cases
}
