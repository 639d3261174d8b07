//! `mrl encode`: bad flags, bad input files, unwritable outputs, corrupt models.

use super::{merge, model_faults, spoiled_copy, INVALID_UTF8};
use crate::fixtures::{Fixtures, BERT_HIDDEN};
use crate::harness::{Case, Cmd, Ctx};

/// `encode --model <bert> --input <sentences> --dim 16 --output <case>/vectors.jsonl`, with
/// the flags of `extra` replacing these.
fn encode(ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    merge(
        &[
            ("--model", ctx.fx.bert.display().to_string()),
            ("--input", ctx.fx.sentences.display().to_string()),
            ("--dim", "16".to_string()),
            ("--output", ctx.path("vectors.jsonl")),
        ],
        extra,
    )
}

fn flag_case(name: &str, flag: &'static str, value: &'static str) -> Case {
    Case::new(Cmd::Encode, name, move |ctx| encode(ctx, &[flag, value])).flag(flag)
}

pub fn cases(fx: &Fixtures) -> Vec<Case> {
    let over = (BERT_HIDDEN + 1).to_string();
    let mut cases = vec![
        Case::new(Cmd::Encode, "good input", |ctx| encode(ctx, &[])).control(),
        flag_case("--dim 0", "--dim", "0"),
        flag_case("--dim -5", "--dim", "-5"),
        Case::new(Cmd::Encode, "--dim above the hidden size", move |ctx| {
            encode(ctx, &["--dim", &over])
        })
        .flag("--dim"),
        flag_case("--dim 2^64 (overflow)", "--dim", "18446744073709551616"),
        flag_case("--dim nan", "--dim", "nan"),
        flag_case("--max-length 0", "--max-length", "0"),
        flag_case("--max-length 1", "--max-length", "1"),
        flag_case("--max-length -1", "--max-length", "-1"),
        flag_case("--batch-size 0", "--batch-size", "0"),
        flag_case("--batch-size -3", "--batch-size", "-3"),
        flag_case(
            "--batch-size 2^64 (overflow)",
            "--batch-size",
            "18446744073709551616",
        ),
        flag_case("--pooling bogus", "--pooling", "bogus"),
        flag_case("--device tpu", "--device", "tpu"),
        Case::new(Cmd::Encode, "input missing", |ctx| {
            encode(ctx, &["--input", &ctx.path("no-such-input.txt")])
        })
        .names("no-such-input.txt"),
        Case::new(Cmd::Encode, "input empty", |ctx| {
            encode(ctx, &["--input", &ctx.write("empty-input.txt", "")])
        })
        .names("empty-input.txt"),
        Case::new(Cmd::Encode, "input only blank lines", |ctx| {
            encode(
                ctx,
                &["--input", &ctx.write("blank-input.txt", "\n  \r\n\t\n")],
            )
        })
        .names("blank-input.txt"),
        Case::new(Cmd::Encode, "input invalid UTF-8", |ctx| {
            encode(
                ctx,
                &["--input", &ctx.write("latin1-input.txt", INVALID_UTF8)],
            )
        })
        .names("latin1-input.txt"),
        Case::new(Cmd::Encode, "input is a directory", |ctx| {
            std::fs::create_dir_all(ctx.dir.join("input-dir")).unwrap();
            encode(ctx, &["--input", &ctx.path("input-dir")])
        })
        .names("input-dir"),
        Case::new(Cmd::Encode, "output on a full disk", |ctx| encode(ctx, &[]))
            .names("vectors.jsonl")
            .full_disk(),
        Case::new(Cmd::Encode, "output /dev/full", |ctx| {
            encode(ctx, &["--output", "/dev/full"])
        })
        .names("/dev/full")
        .output_fault(),
        Case::new(Cmd::Encode, "output under a regular file", |ctx| {
            ctx.write("plain-file", "x");
            encode(ctx, &["--output", &ctx.path("plain-file/vectors.jsonl")])
        })
        .names("vectors.jsonl")
        .output_fault(),
        Case::new(Cmd::Encode, "output is a directory", |ctx| {
            std::fs::create_dir_all(ctx.dir.join("out-dir")).unwrap();
            encode(ctx, &["--output", &ctx.path("out-dir")])
        })
        .names("out-dir")
        .output_fault(),
        Case::new(
            Cmd::Encode,
            "existing output kept when the model is corrupt",
            |ctx| {
                ctx.write("vectors.jsonl", "[1.0]\n");
                let model = spoiled_copy(
                    ctx,
                    &ctx.fx.bert,
                    "model",
                    &model_faults(&ctx.fx.bert_tensors)[0].spoil,
                );
                encode(ctx, &["--model", &model])
            },
        )
        .names("model.safetensors"),
    ];
    for fault in model_faults(&fx.bert_tensors) {
        let spoil = fault.spoil.clone();
        let mut case = Case::new(Cmd::Encode, &format!("model {}", fault.name), move |ctx| {
            let model = spoiled_copy(ctx, &ctx.fx.bert, "model", &spoil);
            encode(ctx, &["--model", &model])
        });
        for n in fault.names {
            case = case.names(n);
        }
        cases.push(case);
    }
    cases
}
