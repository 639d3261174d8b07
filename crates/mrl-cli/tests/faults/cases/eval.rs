//! `mrl eval`: malformed STS / classification / pair TSVs, instruction JSONL, bad flags,
//! unwritable `--json` / `--predictions`, corrupt models.

use super::{merge, some_model_faults, spoiled_copy, INVALID_UTF8};
use crate::fixtures::{Fixtures, BERT_HIDDEN};
use crate::harness::{Case, Cmd, Ctx};

/// `eval --model <bert> --task sts --data <sts> --dims 32,8`, with the flags of `extra`
/// replacing these.
fn sts(ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    merge(
        &[
            ("--model", ctx.fx.bert.display().to_string()),
            ("--task", "sts".into()),
            ("--data", ctx.fx.sts.display().to_string()),
            ("--dims", "32,8".into()),
        ],
        extra,
    )
}

/// `eval --task classification` on the fixture splits.
fn classification(ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    merge(
        &[
            ("--model", ctx.fx.bert.display().to_string()),
            ("--task", "classification".into()),
            ("--train", ctx.fx.cls_train.display().to_string()),
            ("--data", ctx.fx.cls_test.display().to_string()),
            ("--dims", "32,8".into()),
        ],
        extra,
    )
}

/// `eval --task pair` on the fixture pairs.
fn pair(ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    merge(
        &[
            ("--model", ctx.fx.bert.display().to_string()),
            ("--task", "pair".into()),
            ("--data", ctx.fx.pairs.display().to_string()),
            ("--dims", "32,8".into()),
        ],
        extra,
    )
}

/// `eval --task instruct` with the Llama, 2 records, one seed, 4 new tokens.
fn instruct(ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    merge(
        &[
            ("--model", ctx.fx.llama.display().to_string()),
            ("--task", "instruct".into()),
            ("--data", ctx.fx.instruct.display().to_string()),
            ("--seeds", "10".into()),
            ("--records", "0..2".into()),
            ("--max-new-tokens", "4".into()),
        ],
        extra,
    )
}

type Runner = fn(&Ctx, &[&str]) -> Vec<String>;

/// A data file (`flag` = `--data` or `--train`) with the content `bytes`, named `file`.
fn data_case(
    name: &str,
    run: Runner,
    flag: &'static str,
    file: &'static str,
    bytes: &'static [u8],
) -> Case {
    Case::new(Cmd::Eval, name, move |ctx| {
        let path = ctx.write(file, bytes);
        run(ctx, &[flag, &path])
    })
    .names(file)
}

fn flag_case(name: &str, run: Runner, flag: &'static str, value: &'static str) -> Case {
    Case::new(Cmd::Eval, name, move |ctx| run(ctx, &[flag, value])).flag(flag)
}

pub fn cases(fx: &Fixtures) -> Vec<Case> {
    let over = format!("{},8", BERT_HIDDEN * 2);
    let mut cases = vec![
        Case::new(Cmd::Eval, "sts good input", |ctx| sts(ctx, &[])).control(),
        Case::new(Cmd::Eval, "sts CRLF line endings", |ctx| {
            let text = std::fs::read_to_string(&ctx.fx.sts).unwrap().replace('\n', "\r\n");
            let path = ctx.write("crlf.tsv", text);
            sts(ctx, &["--data", &path])
        })
        .control(),
        Case::new(Cmd::Eval, "classification good input", |ctx| classification(ctx, &[])).control(),
        Case::new(Cmd::Eval, "pair good input", |ctx| pair(ctx, &[])).control(),
        Case::new(Cmd::Eval, "instruct good input", |ctx| instruct(ctx, &[])).control(),
        // STS data.
        data_case("sts two columns", sts, "--data", "sts-two-columns.tsv",
            b"score\tsentence1\tsentence2\n4.0\ta man is playing a guitar .\n"),
        data_case("sts four columns", sts, "--data", "sts-four-columns.tsv",
            b"score\tsentence1\tsentence2\n4.0\ta man .\ta dog .\textra\n"),
        data_case("sts non-numeric score", sts, "--data", "sts-word-score.tsv",
            b"score\tsentence1\tsentence2\nhigh\ta man .\ta dog .\n3.0\ta cat .\ta dog .\n"),
        data_case("sts NaN score", sts, "--data", "sts-nan-score.tsv",
            b"score\tsentence1\tsentence2\nNaN\ta man .\ta dog .\n3.0\ta cat .\ta dog .\n2.0\ta cat .\ta man .\n"),
        data_case("sts inf score", sts, "--data", "sts-inf-score.tsv",
            b"score\tsentence1\tsentence2\ninf\ta man .\ta dog .\n3.0\ta cat .\ta dog .\n2.0\ta cat .\ta man .\n"),
        data_case("sts empty file", sts, "--data", "sts-empty.tsv", b""),
        data_case("sts header only", sts, "--data", "sts-header-only.tsv", b"score\tsentence1\tsentence2\n"),
        data_case("sts invalid UTF-8", sts, "--data", "sts-latin1.tsv",
            b"score\tsentence1\tsentence2\n4.0\ta man \xff\xfe .\ta dog .\n"),
        data_case("sts constant scores", sts, "--data", "sts-constant.tsv",
            b"score\tsentence1\tsentence2\n3.0\ta man .\ta dog .\n3.0\ta cat .\ta dog .\n3.0\ta cat .\ta man .\n"),
        Case::new(Cmd::Eval, "sts data missing", |ctx| sts(ctx, &["--data", &ctx.path("no-such-sts.tsv")]))
            .names("no-such-sts.tsv"),
        Case::new(Cmd::Eval, "sts data is a directory", |ctx| {
            std::fs::create_dir_all(ctx.dir.join("sts-dir")).unwrap();
            sts(ctx, &["--data", &ctx.path("sts-dir")])
        })
        .names("sts-dir"),
        // Classification data.
        data_case("classification train one column", classification, "--train", "cls-one-column.tsv",
            b"label\ttext\nanimal\nmusic\n"),
        data_case("classification train empty", classification, "--train", "cls-empty.tsv", b""),
        data_case("classification train one class", classification, "--train", "cls-one-class.tsv",
            b"label\ttext\nanimal\ta man .\nanimal\ta dog .\nanimal\ta cat .\n"),
        data_case("classification test label not in train", classification, "--data", "cls-unseen.tsv",
            b"label\ttext\nspaceship\ta man is playing a guitar .\n"),
        data_case("classification test invalid UTF-8", classification, "--data", "cls-latin1.tsv",
            INVALID_UTF8),
        // Pair data.
        data_case("pair label 2", pair, "--data", "pair-label-2.tsv",
            b"sentence1\tsentence2\tlabel\na man .\ta dog .\t1\na cat .\ta dog .\t2\n"),
        data_case("pair label word", pair, "--data", "pair-label-word.tsv",
            b"sentence1\tsentence2\tlabel\na man .\ta dog .\t1\na cat .\ta dog .\tmaybe\n"),
        data_case("pair two columns", pair, "--data", "pair-two-columns.tsv",
            b"sentence1\tsentence2\tlabel\na man .\t1\na cat .\t0\n"),
        data_case("pair one class", pair, "--data", "pair-one-class.tsv",
            b"sentence1\tsentence2\tlabel\na man .\ta dog .\t1\na cat .\ta dog .\t1\n"),
        // Flags.
        flag_case("--dims 0", sts, "--dims", "0"),
        Case::new(Cmd::Eval, "--dims above the hidden size", move |ctx| sts(ctx, &["--dims", &over]))
            .flag("--dims"),
        flag_case("--dims duplicate", sts, "--dims", "16,16,8"),
        flag_case("--dims -5", sts, "--dims", "-5"),
        flag_case("--dims 2^64 (overflow)", sts, "--dims", "18446744073709551616"),
        flag_case("--dims empty", sts, "--dims", ""),
        flag_case("--max-length 0", sts, "--max-length", "0"),
        flag_case("--max-length 1", sts, "--max-length", "1"),
        flag_case("--batch-size 0", sts, "--batch-size", "0"),
        flag_case("--batch-size -1", sts, "--batch-size", "-1"),
        flag_case("--pooling bogus", sts, "--pooling", "bogus"),
        Case::new(Cmd::Eval, "--task all without the shared data", |ctx| {
            vec![
                "--model".into(),
                ctx.fx.bert.display().to_string(),
                "--task".into(),
                "all".into(),
            ]
        })
        .names("stsb_test.tsv"),
        // Outputs.
        Case::new(Cmd::Eval, "--json on a full disk", |ctx| sts(ctx, &["--json", &ctx.path("scores.json")]))
            .names("scores.json")
            .full_disk(),
        // A device is written in place (it cannot be renamed over): /dev/full fails, and stays
        // the device it is (checked after the case).
        Case::new(Cmd::Eval, "--json /dev/full", |ctx| sts(ctx, &["--json", "/dev/full"]))
            .names("/dev/full")
            .output_fault(),
        Case::new(Cmd::Eval, "--json under a regular file", |ctx| {
            ctx.write("plain-file", "x");
            sts(ctx, &["--json", &ctx.path("plain-file/scores.json")])
        })
        .names("scores.json")
        .output_fault(),
        Case::new(Cmd::Eval, "existing --json kept when the data is bad", |ctx| {
            ctx.write("scores.json", "{\"old\": true}\n");
            let data = ctx.write("bad-data.tsv", "score\tsentence1\tsentence2\nx\ty\tz\n");
            sts(ctx, &["--data", &data, "--json", &ctx.path("scores.json")])
        })
        .names("bad-data.tsv"),
        // Instruction following.
        data_case("instruct JSONL garbage line", instruct, "--data", "instruct-garbage.jsonl",
            b"{\"instruction\": \"a man\", \"response\": \"a dog\"}\n{not json\n"),
        data_case("instruct JSONL missing response", instruct, "--data", "instruct-no-response.jsonl",
            b"{\"instruction\": \"a man\"}\n"),
        data_case("instruct JSONL wrong type", instruct, "--data", "instruct-number.jsonl",
            b"{\"instruction\": 3, \"response\": \"a dog\"}\n"),
        data_case("instruct JSONL empty", instruct, "--data", "instruct-empty.jsonl", b""),
        data_case("instruct JSONL invalid UTF-8", instruct, "--data", "instruct-latin1.jsonl",
            b"{\"instruction\": \"a \xff man\", \"response\": \"a dog\"}\n"),
        flag_case("instruct --max-new-tokens 0", instruct, "--max-new-tokens", "0"),
        flag_case("instruct --max-new-tokens -1", instruct, "--max-new-tokens", "-1"),
        flag_case("instruct --temperature nan", instruct, "--temperature", "nan"),
        flag_case("instruct --temperature inf", instruct, "--temperature", "inf"),
        flag_case("instruct --temperature -1", instruct, "--temperature", "-1"),
        flag_case("instruct --top-p 0", instruct, "--top-p", "0"),
        flag_case("instruct --top-p nan", instruct, "--top-p", "nan"),
        flag_case("instruct --top-k -1", instruct, "--top-k", "-1"),
        flag_case("instruct --seeds duplicate", instruct, "--seeds", "10,10"),
        flag_case("instruct --seeds -1", instruct, "--seeds", "-1"),
        flag_case("instruct --records reversed", instruct, "--records", "5..2"),
        flag_case("instruct --records past the end", instruct, "--records", "0..100"),
        flag_case("instruct --batch-size 0", instruct, "--batch-size", "0"),
        Case::new(Cmd::Eval, "instruct --predictions on a full disk", |ctx| {
            instruct(ctx, &["--predictions", &ctx.path("predictions.jsonl")])
        })
        .names("predictions.jsonl")
        .full_disk(),
        Case::new(Cmd::Eval, "instruct --json on a full disk", |ctx| {
            instruct(ctx, &["--json", &ctx.path("rouge.json")])
        })
        .names("rouge.json")
        .full_disk(),
        Case::new(Cmd::Eval, "instruct gguf garbage", |ctx| {
            let path = ctx.write("garbage.gguf", b"not a gguf\n".repeat(16));
            instruct(ctx, &["--model", &path])
        })
        .names("garbage.gguf"),
    ];
    let encoder_faults = [
        "weights-truncated",
        "weights-nan",
        "weights-wrong-shape",
        "config-json-garbage",
        "tokenizer-json-garbage",
    ];
    for fault in some_model_faults(&fx.bert_tensors, &encoder_faults) {
        let spoil = fault.spoil.clone();
        let mut case = Case::new(
            Cmd::Eval,
            &format!("sts model {}", fault.name),
            move |ctx| {
                let model = spoiled_copy(ctx, &ctx.fx.bert, "model", &spoil);
                sts(ctx, &["--model", &model])
            },
        );
        for n in fault.names {
            case = case.names(n);
        }
        cases.push(case);
    }
    for fault in some_model_faults(
        &fx.llama_tensors,
        &["weights-inf", "weights-missing-tensor"],
    ) {
        let spoil = fault.spoil.clone();
        let mut case = Case::new(
            Cmd::Eval,
            &format!("instruct model {}", fault.name),
            move |ctx| {
                let model = spoiled_copy(ctx, &ctx.fx.llama, "model", &spoil);
                instruct(ctx, &["--model", &model])
            },
        );
        for n in fault.names {
            case = case.names(n);
        }
        cases.push(case);
    }
    cases
}
