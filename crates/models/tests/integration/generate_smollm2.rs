//! Generation with the shared SmolLM2-135M-Instruct GGUF: the greedy chat answer to the
//! capital-of-France question names Paris; the KV-cached generation equals greedy decoding by
//! full forward passes; a left-padded batch of instruction prompts gives each its own logits and
//! greedy answer; a prompt that does not fit the context is a clear error.

use crate::common;

use burn::tensor::{Int, Tensor, TensorData};
use models::generation::{
    generate, generate_batch, BatchRow, GenerationOptions, SamplingOptions, StopReason,
    TextGenerator,
};
use models::llama::KvCache;
use models::{LlamaInput, ModelError};

fn generator(device: &burn::tensor::Device) -> TextGenerator {
    let dir = common::shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    TextGenerator::load(&dir, device).unwrap()
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn the_greedy_chat_answer_names_paris() {
    for (name, device) in common::devices() {
        let g = generator(&device);
        let options = GenerationOptions {
            max_new_tokens: 24,
            ..GenerationOptions::default()
        };
        let (text, generation) = g
            .generate_text("What is the capital of France?", true, &options, |_| {})
            .unwrap();
        println!("{name}: {text:?} ({:?})", generation.stop_reason);
        assert!(text.contains("Paris"), "{name}: {text:?}");
    }
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn cached_generation_equals_uncached_greedy_decoding() {
    let device = burn::tensor::Device::flex();
    let g = generator(&device);
    let prompt = g.prompt_ids("Name three colours.", true).unwrap();
    let options = GenerationOptions {
        max_new_tokens: 6,
        ..GenerationOptions::default()
    };
    let cached = generate(&g.model, &prompt, &options, &device, |_| {}).unwrap();
    assert_eq!(cached.stop_reason, StopReason::MaxNewTokens);
    // Reference: the arg-max of a full forward pass over the whole sequence, token by token.
    let mut seq = prompt.clone();
    for _ in 0..6 {
        let ids: Vec<i64> = seq.iter().map(|&t| t as i64).collect();
        let input = LlamaInput {
            input_ids: Tensor::<2, Int>::from_data(TensorData::new(ids, [1, seq.len()]), &device),
            attention_mask: Tensor::ones([1, seq.len()], &device),
        };
        let logits = g.model.forward(input, false).logits.unwrap();
        let [_, len, vocab] = logits.dims();
        let last = logits.slice([0..1, len - 1..len]).reshape([vocab]);
        seq.push(last.argmax(0).into_scalar::<i64>() as u32);
    }
    assert_eq!(cached.tokens, seq[prompt.len()..]);

    // Sampling with a seed is reproducible.
    let sampled = GenerationOptions {
        max_new_tokens: 5,
        sampling: SamplingOptions {
            temperature: 0.8,
            top_p: Some(0.95),
            ..SamplingOptions::default()
        },
        seed: 11,
        ..GenerationOptions::default()
    };
    let a = generate(&g.model, &prompt, &sampled, &device, |_| {}).unwrap();
    let b = generate(&g.model, &prompt, &sampled, &device, |_| {}).unwrap();
    assert_eq!(a, b);
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn a_prompt_beyond_the_context_is_a_clear_error() {
    let device = burn::tensor::Device::flex();
    let g = generator(&device);
    let long = "Paris ".repeat(9000);
    let options = GenerationOptions::default();
    let err = g.generate_text(&long, false, &options, |_| {}).unwrap_err();
    assert!(
        matches!(err, ModelError::ContextOverflow { context: 8192, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("context window is 8192 tokens"),
        "{message}"
    );
}

/// The instruction prompt (`mrl eval --task instruct`, the distillation data) is tokenised as
/// transformers' `tokenizer(prompt, add_special_tokens=False)`: "###" first, no BOS.
#[test]
#[ignore = "needs MRL_SHARED"]
fn the_instruction_prompt_is_tokenised_without_special_tokens() {
    let device = burn::tensor::Device::flex();
    let g = generator(&device);
    let prompt = mrl_eval::render_prompt("Name a “fruit” • now");
    // transformers 5.24: AutoTokenizer.from_pretrained(<this dir>)(prompt,
    // add_special_tokens=False).input_ids
    let want = [
        3757, 20880, 42, 198, 5820, 253, 619, 25403, 573, 7825, 1209, 198, 198, 3757, 14212, 42,
        198,
    ];
    let ids = g.plain_ids(&prompt).unwrap();
    assert_eq!(ids, want);
    assert_eq!(g.tokenizer.id_to_token(ids[0]).as_deref(), Some("###"));
    assert!(!ids.contains(&1) && !ids.contains(&2), "{ids:?}");
    assert_eq!(g.context_length(), 8192);
    // Greedy generation from these ids equals generate_text on the same (non-chat) prompt,
    // since this tokenizer adds no special tokens either way.
    let options = GenerationOptions {
        max_new_tokens: 4,
        ..GenerationOptions::default()
    };
    let (a, ga) = g.generate_from_ids(&ids, &options, |_| {}).unwrap();
    let (b, gb) = g.generate_text(&prompt, false, &options, |_| {}).unwrap();
    assert_eq!((a, ga), (b, gb));
}

/// Four Dolly instructions of different lengths, left-padded in one batch: the last prompt
/// position's logits equal each prompt's alone within 2e-3 (30 layers of f32 rounding on logits
/// of magnitude ~20), nothing is NaN, and greedy answers of 8 tokens are the same.
#[test]
#[ignore = "needs MRL_SHARED"]
fn a_left_padded_batch_gives_each_prompt_its_own_logits_and_answer() {
    let records =
        mrl_eval::read_instruct_jsonl(&common::shared_path("data/dolly_2k.jsonl")).unwrap();
    for (name, device) in common::devices() {
        let g = generator(&device);
        let prompts: Vec<Vec<u32>> = [1900, 1901, 1902, 1903]
            .iter()
            .map(|&i| {
                g.plain_ids(&mrl_eval::render_prompt(&records[i].instruction))
                    .unwrap()
            })
            .collect();
        let longest = prompts.iter().map(Vec::len).max().unwrap();
        assert!(
            prompts.iter().any(|p| p.len() < longest - 4),
            "{name}: lengths too close"
        );
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for p in &prompts {
            let pad = longest - p.len();
            ids.extend(std::iter::repeat_n(0, pad).chain(p.iter().map(|&t| t as i64)));
            mask.extend(std::iter::repeat_n(0, pad).chain(std::iter::repeat_n(1, p.len())));
        }
        let shape = [prompts.len(), longest];
        let batched = g
            .model
            .forward_cached_last(
                Tensor::<2, Int>::from_data(TensorData::new(ids, shape), &device),
                Tensor::<2, Int>::from_data(TensorData::new(mask, shape), &device),
                &mut KvCache::new(),
            )
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(
            batched.iter().all(|x| x.is_finite()),
            "{name}: non-finite logits"
        );
        let vocab = g.model.vocab_size();
        for (row, p) in prompts.iter().enumerate() {
            let alone = g
                .model
                .forward_cached_last(
                    Tensor::<2, Int>::from_data(
                        TensorData::new(p.iter().map(|&t| t as i64).collect(), [1, p.len()]),
                        &device,
                    ),
                    Tensor::ones([1, p.len()], &device),
                    &mut KvCache::new(),
                )
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            let diff = common::max_abs_diff(&batched[row * vocab..(row + 1) * vocab], &alone);
            assert!(diff < 2e-3, "{name} row {row}: max |Δ logit| = {diff}");
        }
        let options = GenerationOptions {
            max_new_tokens: 8,
            ..GenerationOptions::default()
        };
        let rows: Vec<BatchRow> = prompts
            .iter()
            .map(|p| BatchRow { prompt: p, seed: 0 })
            .collect();
        let batch = generate_batch(&g.model, &rows, &options, &device, |_, _| {}).unwrap();
        for (row, p) in prompts.iter().enumerate() {
            let alone = generate(&g.model, p, &options, &device, |_| {}).unwrap();
            assert_eq!(batch[row], alone, "{name} row {row}");
        }
    }
}
