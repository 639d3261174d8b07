//! `mrl generate`: bad sampling flags, corrupt decoders, GGUF garbage, chat templates.

use super::{merge, model_faults, spoiled_copy};
use crate::fixtures::Fixtures;
use crate::harness::{Case, Cmd, Ctx};

/// `generate --model <llama> --prompt "a man is" --max-new-tokens 4`, with the flags of
/// `extra` replacing these.
fn generate(ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    merge(
        &[
            ("--model", ctx.fx.llama.display().to_string()),
            ("--prompt", "a man is".to_string()),
            ("--max-new-tokens", "4".to_string()),
        ],
        extra,
    )
}

fn flag_case(name: &str, flag: &'static str, value: &'static str) -> Case {
    Case::new(Cmd::Generate, name, move |ctx| {
        generate(ctx, &[flag, value])
    })
    .flag(flag)
}

pub fn cases(fx: &Fixtures) -> Vec<Case> {
    let mut cases = vec![
        Case::new(Cmd::Generate, "greedy", |ctx| generate(ctx, &[])).control(),
        Case::new(Cmd::Generate, "chat", |ctx| generate(ctx, &["--chat"])).control(),
        flag_case("--max-new-tokens 0", "--max-new-tokens", "0"),
        flag_case("--max-new-tokens -1", "--max-new-tokens", "-1"),
        flag_case(
            "--max-new-tokens 2^64 (overflow)",
            "--max-new-tokens",
            "18446744073709551616",
        ),
        flag_case("--temperature nan", "--temperature", "nan"),
        flag_case("--temperature inf", "--temperature", "inf"),
        flag_case("--temperature -1", "--temperature", "-1"),
        flag_case("--top-p 0", "--top-p", "0"),
        flag_case("--top-p 1.5", "--top-p", "1.5"),
        flag_case("--top-p nan", "--top-p", "nan"),
        flag_case("--top-p -0.5", "--top-p", "-0.5"),
        flag_case("--top-k 0", "--top-k", "0"),
        flag_case("--top-k -2", "--top-k", "-2"),
        flag_case("--no-repeat-ngram-size -1", "--no-repeat-ngram-size", "-1"),
        flag_case("--seed -1", "--seed", "-1"),
        flag_case("--device tpu", "--device", "tpu"),
        Case::new(Cmd::Generate, "model path missing", |ctx| {
            generate(ctx, &["--model", &ctx.path("no-such-model")])
        })
        .names("no-such-model"),
        Case::new(Cmd::Generate, "gguf garbage", |ctx| {
            let path = ctx.write(
                "garbage.gguf",
                b"this is not a gguf file at all\n".repeat(8),
            );
            generate(ctx, &["--model", &path])
        })
        .names("garbage.gguf"),
        Case::new(Cmd::Generate, "gguf magic then truncated", |ctx| {
            let mut bytes = b"GGUF".to_vec();
            bytes.extend_from_slice(&3u32.to_le_bytes());
            bytes.extend_from_slice(&[0xff; 5]);
            let path = ctx.write("truncated.gguf", bytes);
            generate(ctx, &["--model", &path])
        })
        .names("truncated.gguf"),
        Case::new(Cmd::Generate, "gguf claims 2^40 tensors", |ctx| {
            let mut bytes = b"GGUF".to_vec();
            bytes.extend_from_slice(&3u32.to_le_bytes());
            bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
            bytes.extend_from_slice(&0u64.to_le_bytes());
            let path = ctx.write("huge-count.gguf", bytes);
            generate(ctx, &["--model", &path])
        })
        .names("huge-count.gguf"),
        Case::new(Cmd::Generate, "--chat without a chat template", |ctx| {
            let model = ctx.dir.join("model");
            crate::fixtures::copy_dir(&ctx.fx.llama, &model);
            std::fs::remove_file(model.join("chat_template.jinja")).unwrap();
            generate(ctx, &["--model", model.to_str().unwrap(), "--chat"])
        })
        .names("chat_template"),
        Case::new(Cmd::Generate, "--chat with a broken template", |ctx| {
            let model = ctx.dir.join("model");
            crate::fixtures::copy_dir(&ctx.fx.llama, &model);
            std::fs::write(
                model.join("chat_template.jinja"),
                "{% for m in messages %}{{ m.",
            )
            .unwrap();
            generate(ctx, &["--model", model.to_str().unwrap(), "--chat"])
        })
        .names("chat_template.jinja"),
    ];
    for fault in model_faults(&fx.llama_tensors) {
        let spoil = fault.spoil.clone();
        let mut case = Case::new(
            Cmd::Generate,
            &format!("model {}", fault.name),
            move |ctx| {
                let model = spoiled_copy(ctx, &ctx.fx.llama, "model", &spoil);
                generate(ctx, &["--model", &model])
            },
        );
        for n in fault.names {
            case = case.names(n);
        }
        cases.push(case);
    }
    cases
}
