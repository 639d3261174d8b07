//! `mrl distill` (training, `cache`, `--eval-only`): malformed configs and values, bad JSONL
//! data, corrupt teachers, flipped checkpoints, unwritable `--json`.

use std::path::Path;

use super::{some_model_faults, spoiled_copy};
use crate::fixtures::{self, distill_toml, replace_once, Fixtures};
use crate::harness::{Case, Cmd, Ctx};

/// Writes `<case>/distill.toml` (the fixture config writing into `<case>/out`, edited by
/// `edit`) and returns `before`, `--config <it>` and `extra`.
fn config(
    ctx: &Ctx,
    before: &[&str],
    edit: impl FnOnce(String) -> String,
    extra: &[&str],
) -> Vec<String> {
    let toml = edit(distill_toml(ctx.fx, &ctx.dir.join("out")));
    let mut args: Vec<String> = before.iter().map(|a| a.to_string()).collect();
    args.extend(["--config".to_string(), ctx.write("distill.toml", toml)]);
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn distill(ctx: &Ctx, edit: impl FnOnce(String) -> String, extra: &[&str]) -> Vec<String> {
    config(ctx, &[], edit, extra)
}

/// The config with a `[cache]` section in `<case>/cache` (top-k `top_k`), for `distill cache`.
fn with_cache(ctx: &Ctx, top_k: usize) -> impl FnOnce(String) -> String {
    let cache = ctx.dir.join("cache");
    move |t: String| {
        format!(
            "{t}\n[cache]\ndir = \"{}\"\ntop_k = {top_k}\n",
            cache.display()
        )
    }
}

/// A config with the line `from` replaced by `to`; the message must name `key`.
fn key_case(name: &str, from: &'static str, to: &'static str, key: &str) -> Case {
    Case::new(Cmd::Distill, name, move |ctx| {
        distill(ctx, |t| replace_once(&t, from, to), &[])
    })
    .names(key)
}

/// A data file with the content `bytes` named `file` as `data.path`.
fn data_case(name: &str, file: &'static str, bytes: &'static [u8]) -> Case {
    Case::new(Cmd::Distill, name, move |ctx| {
        let data = ctx.write(file, bytes);
        distill(
            ctx,
            |t| t.replace(ctx.fx.instruct.to_str().unwrap(), &data),
            &[],
        )
    })
    .names(file)
}

/// Copies the fixture run (checkpoint at step 1) to `<case>/out`, spoils it, and resumes.
fn resume_case(name: &str, spoil: impl Fn(&Path) + Send + Sync + 'static, names: &str) -> Case {
    Case::new(Cmd::Distill, name, move |ctx| {
        let out = ctx.dir.join("out");
        fixtures::copy_dir(&ctx.fx.distill_run, &out);
        spoil(&out);
        distill(ctx, |t| t, &["--resume"])
    })
    .names(names)
}

/// `--eval-only --data <instruct>` and `extra`.
fn eval_only(ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    let data = ctx.fx.instruct.display().to_string();
    let mut args = vec!["--eval-only", "--data", &data];
    args.extend(extra);
    distill(ctx, |t| t, &args)
}

pub fn cases(fx: &Fixtures) -> Vec<Case> {
    let mut cases = vec![
        Case::new(Cmd::Distill, "one step", |ctx| distill(ctx, |t| t, &["--stop-after", "1"])).control(),
        Case::new(Cmd::Distill, "resume the copied checkpoint", |ctx| {
            fixtures::copy_dir(&ctx.fx.distill_run, &ctx.dir.join("out"));
            distill(ctx, |t| t, &["--resume", "--stop-after", "1"])
        })
        .control(),
        Case::new(Cmd::Distill, "eval-only", |ctx| eval_only(ctx, &["--json", &ctx.path("report.json")]))
            .control(),
        // The config.
        Case::new(Cmd::Distill, "no --config", |_| vec![]).flag("--config"),
        Case::new(Cmd::Distill, "config missing", |ctx| {
            vec!["--config".into(), ctx.path("no-such-distill.toml")]
        })
        .names("no-such-distill.toml"),
        Case::new(Cmd::Distill, "config TOML syntax error", |ctx| {
            distill(ctx, |t| replace_once(&t, "[optimizer]", "[optimizer"), &[])
        })
        .names("distill.toml"),
        key_case("unknown key student.layerz", "layers = 1", "layerz = 1", "layerz"),
        key_case("student.init unknown", "init = \"first_layers\"", "init = \"magic\"", "student.init"),
        key_case("student.layers 0", "layers = 1", "layers = 0", "student.layers"),
        key_case("student.layers above the teacher's", "layers = 1", "layers = 9", "student.layers"),
        key_case("data.records reversed", "records = \"0..8\"", "records = \"8..2\"", "data.records"),
        key_case("data.records past the end", "records = \"0..8\"", "records = \"0..100\"", "data.records"),
        key_case("data.records garbage", "records = \"0..8\"", "records = \"all\"", "data.records"),
        key_case("data.max_length 0", "max_length = 40", "max_length = 0", "data.max_length"),
        key_case("data.max_length 1", "max_length = 40", "max_length = 1", "data.max_length"),
        key_case("objective.alpha 1.5", "alpha = 0.5", "alpha = 1.5", "objective.alpha"),
        key_case("objective.alpha nan", "alpha = 0.5", "alpha = nan", "objective.alpha"),
        key_case("objective.alpha -0.5", "alpha = 0.5", "alpha = -0.5", "objective.alpha"),
        key_case("objective.temperature 0", "temperature = 1.0", "temperature = 0.0", "objective.temperature"),
        key_case("objective.temperature inf", "temperature = 1.0", "temperature = inf", "objective.temperature"),
        key_case("training.steps 0", "steps = 2", "steps = 0", "training.steps"),
        key_case("training.batch_size 0", "batch_size = 4", "batch_size = 0", "training.batch_size"),
        key_case("optimizer.lr negative", "lr = 1e-2", "lr = -1e-2", "optimizer.lr"),
        key_case("optimizer.warmup_steps -1", "warmup_steps = 1", "warmup_steps = -1", "optimizer.warmup_steps"),
        Case::new(Cmd::Distill, "--stop-after -1", |ctx| distill(ctx, |t| t, &["--stop-after", "-1"]))
            .flag("--stop-after"),
        Case::new(Cmd::Distill, "teacher missing", |ctx| {
            let teacher = ctx.path("no-such-teacher");
            distill(ctx, |t| t.replace(ctx.fx.llama.to_str().unwrap(), &teacher), &[])
        })
        .names("no-such-teacher"),
        // Data.
        data_case("data JSONL garbage line", "data-garbage.jsonl",
            b"{\"instruction\": \"a man\", \"response\": \"a dog\"}\n{\"instruction\": \"a cat\", \"response\": \"a dog\"}\n{not json\n"),
        data_case("data JSONL missing response", "data-no-response.jsonl",
            b"{\"instruction\": \"a man\"}\n{\"instruction\": \"a cat\"}\n"),
        data_case("data JSONL empty", "data-empty.jsonl", b""),
        data_case("data JSONL invalid UTF-8", "data-latin1.jsonl",
            b"{\"instruction\": \"a \xff man\", \"response\": \"a dog\"}\n"),
        Case::new(Cmd::Distill, "data plain text", |ctx| {
            let data = ctx.write("data-text.jsonl", "a man is playing a guitar .\n");
            distill(ctx, |t| t.replace(ctx.fx.instruct.to_str().unwrap(), &data), &[])
        })
        .names("data-text.jsonl"),
        // `distill cache`.
        Case::new(Cmd::Distill, "cache cache.top_k 0", |ctx| {
            let edit = with_cache(ctx, 0);
            config(ctx, &["cache"], edit, &[])
        })
        .names("cache.top_k"),
        Case::new(Cmd::Distill, "cache without a [cache] section", |ctx| {
            config(ctx, &["cache"], |t| t, &[])
        })
        .names("[cache]"),
        Case::new(Cmd::Distill, "cache --batch-size 0", |ctx| {
            let edit = with_cache(ctx, 8);
            config(ctx, &["cache"], edit, &["--batch-size", "0"])
        })
        .flag("--batch-size"),
        Case::new(Cmd::Distill, "cache --batch-size -1", |ctx| {
            let edit = with_cache(ctx, 8);
            config(ctx, &["cache"], edit, &["--batch-size", "-1"])
        })
        .flag("--batch-size"),
        // `--eval-only`.
        Case::new(Cmd::Distill, "eval-only data garbage", |ctx| {
            let data = ctx.write("eval-garbage.jsonl", "[1, 2, 3]\n");
            distill(ctx, |t| t, &["--eval-only", "--data", &data])
        })
        .names("eval-garbage.jsonl"),
        Case::new(Cmd::Distill, "eval-only --json on a full disk", |ctx| {
            eval_only(ctx, &["--json", &ctx.path("report.json")])
        })
        .names("report.json")
        .full_disk(),
        Case::new(Cmd::Distill, "eval-only --json under a regular file", |ctx| {
            ctx.write("plain-file", "x");
            eval_only(ctx, &["--json", &ctx.path("plain-file/report.json")])
        })
        .names("report.json")
        .output_fault(),
        // Checkpoints.
        resume_case("checkpoint model.bpk flipped byte", |out| {
            fixtures::flip_byte(&fixtures::latest_checkpoint(out).join("model.bpk"), 0.5)
        }, "model.bpk"),
        resume_case("checkpoint optim.bpk truncated", |out| {
            let p = fixtures::latest_checkpoint(out).join("optim.bpk");
            fixtures::truncate(&p, fixtures::len(&p) / 2)
        }, "optim.bpk"),
        resume_case("checkpoint state.json garbage", |out| {
            std::fs::write(fixtures::latest_checkpoint(out).join("state.json"), "[]").unwrap()
        }, "state.json"),
        Case::new(Cmd::Distill, "--resume with a different objective.alpha", |ctx| {
            fixtures::copy_dir(&ctx.fx.distill_run, &ctx.dir.join("out"));
            distill(ctx, |t| replace_once(&t, "alpha = 0.5", "alpha = 0.7"), &["--resume"])
        })
        .names("objective.alpha"),
        Case::new(Cmd::Distill, "output_dir on a full disk", |ctx| {
            distill(ctx, |t| t, &["--stop-after", "1"])
        })
        .names("{case}/out")
        .full_disk(),
    ];
    for fault in some_model_faults(
        &fx.llama_tensors,
        &[
            "weights-nan",
            "weights-truncated",
            "weights-wrong-shape",
            "config-json-garbage",
            "tokenizer-json-garbage",
        ],
    ) {
        let spoil = fault.spoil.clone();
        let mut case = Case::new(
            Cmd::Distill,
            &format!("teacher {}", fault.name),
            move |ctx| {
                let teacher = spoiled_copy(ctx, &ctx.fx.llama, "teacher", &spoil);
                distill(
                    ctx,
                    |t| t.replace(ctx.fx.llama.to_str().unwrap(), &teacher),
                    &[],
                )
            },
        );
        for n in fault.names {
            case = case.names(n);
        }
        cases.push(case);
    }
    cases
}
