//! Cross-tokenizer data on the real tokenizers (needs `MRL_SHARED`): the student's text
//! (GPT-2's byte-level BPE) tokenized again by the teacher (SmolLM2's) and the spans both
//! tokenizations share — on hard text (curly quotes, "•", whitespace runs, numbers, words the
//! two tokenizers split differently) and on Dolly.

use std::io::Write;

use test_support::shared_path;
use tokenizers::Tokenizer;
use training::distill::{load_tokenizer, DistillData, DistillExample};

const SMOLLM2_EOS: u32 = 2;
const GPT2_EOS: u32 = 50256;

fn tokenizers() -> (Tokenizer, Tokenizer) {
    let teacher = load_tokenizer(&shared_path("models/SmolLM2-135M-Instruct-Q4_1")).unwrap();
    let student = load_tokenizer(&shared_path("models/gpt2-tokenizer")).unwrap();
    (teacher, student)
}

fn cross_data(path: &std::path::Path, records: Option<std::ops::Range<usize>>) -> DistillData {
    let (teacher, student) = tokenizers();
    let mut data =
        DistillData::load(path, records, "data.records", &student, GPT2_EOS, 128, true).unwrap();
    data.attach_teacher_tokens(&teacher, SMOLLM2_EOS, 128, true)
        .unwrap();
    data
}

/// Every span decodes to the same text on both sides, the spans tile each side's response
/// tokens in order (each token once, none skipped before the last shared boundary), and the
/// appended EOS is in no span.
fn check_spans(example: &DistillExample, teacher_tok: &Tokenizer, student_tok: &Tokenizer) {
    let cross = example.cross.as_ref().expect("teacher tokens attached");
    let teacher = &cross.teacher;
    assert!(
        !cross.spans.is_empty(),
        "record {}: no span",
        example.record
    );
    let mut next = (
        teacher.response.iter().position(|&r| r).unwrap(),
        example.response.iter().position(|&r| r).unwrap(),
    );
    for (k, span) in cross.spans.iter().enumerate() {
        assert_eq!(
            span.teacher[0], next.0,
            "record {} span {k}: teacher tiling",
            example.record
        );
        assert_eq!(
            span.student[0], next.1,
            "record {} span {k}: student tiling",
            example.record
        );
        assert!(span.teacher.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(span.student.windows(2).all(|w| w[1] == w[0] + 1));
        next = (
            span.teacher.last().unwrap() + 1,
            span.student.last().unwrap() + 1,
        );
        let ids = |e: &DistillExample, tokens: &[usize]| -> Vec<u32> {
            tokens.iter().map(|&j| e.ids[j]).collect()
        };
        let t_text = teacher_tok
            .decode(&ids(teacher, &span.teacher), false)
            .unwrap();
        let s_text = student_tok
            .decode(&ids(example, &span.student), false)
            .unwrap();
        assert_eq!(t_text, s_text, "record {} span {k}", example.record);
        assert!(!span.teacher.contains(&(teacher.len() - 1)) || !teacher.has_eos);
        assert!(!span.student.contains(&(example.len() - 1)) || !example.has_eos);
    }
}

#[test]
#[ignore = "needs MRL_SHARED (SmolLM2 and GPT-2 tokenizers); ~1 s"]
fn spans_align_on_hard_text() {
    let dir = test_support::TempDir::new("cross-spans");
    let path = dir.path().join("hard.jsonl");
    let records = [
        ("Quote it.", "She said “don’t” — then left… • done • ok"),
        ("Spaces?", "a    b\t\tc  \n\n  d   "),
        (
            "Numbers",
            "In 2023, 12,345.67 units cost $1,000,000 (3.5%).",
        ),
        (
            "Split",
            "Unbelievably, antidisestablishmentarianism's unbelievers rechecked.",
        ),
        ("Unicode", "naïve café 東京 😀 — ½ ≥ 3"),
    ];
    {
        let mut f = std::fs::File::create(&path).unwrap();
        for (instruction, response) in records {
            let line = serde_json::json!({"instruction": instruction, "response": response});
            writeln!(f, "{line}").unwrap();
        }
    }
    let data = cross_data(&path, None);
    assert_eq!(data.len(), records.len());
    let (teacher_tok, student_tok) = tokenizers();
    for example in &data.examples {
        check_spans(example, &teacher_tok, &student_tok);
    }
    // A span holding several tokens on one side: the word split differently.
    let split = &data.examples[3].cross.as_ref().unwrap().spans;
    assert!(
        split.iter().any(|s| s.teacher.len() != s.student.len()),
        "the two tokenizers split these words alike: {split:?}"
    );
}

/// On the first 200 Dolly records, most teacher tokens end on a boundary both tokenizations
/// share: the SRA issue measured about 94 %.
#[test]
#[ignore = "needs MRL_SHARED (tokenizers, dolly_2k.jsonl); ~5 s"]
fn dolly_spans_align() {
    let data = cross_data(&shared_path("data/dolly_2k.jsonl"), Some(0..200));
    let (teacher_tok, student_tok) = tokenizers();
    let (mut single, mut spanned, mut response, mut on_boundary) = (0usize, 0, 0, 0);
    for example in &data.examples {
        check_spans(example, &teacher_tok, &student_tok);
        let cross = example.cross.as_ref().unwrap();
        response += cross.teacher.unit_eligible().iter().filter(|&&e| e).count();
        for span in &cross.spans {
            spanned += span.teacher.len();
            let end = cross.teacher.offsets[*span.teacher.last().unwrap()].1;
            on_boundary += span
                .teacher
                .iter()
                .filter(|&&j| cross.teacher.offsets[j].1 == end)
                .count();
            if span.teacher.len() == 1 {
                single += 1;
            }
        }
    }
    let shared = on_boundary as f64 / response as f64;
    eprintln!(
        "{} records: {response} teacher response tokens, {spanned} in spans, {on_boundary} \
         ending on a shared boundary ({:.1} %), {single} alone in their span",
        data.len(),
        100.0 * shared
    );
    assert!(
        shared > 0.9,
        "only {:.1} % on shared boundaries",
        100.0 * shared
    );
    assert!(spanned as f64 > 0.95 * response as f64);
}
