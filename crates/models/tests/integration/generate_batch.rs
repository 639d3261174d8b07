//! Batched generation on a tiny random Llama (no checkpoint needed), on ndarray and flex:
//! a left-padded batch gives every row the logits it has alone (prefill and cached steps, no
//! NaN anywhere), a batch of one is the token-by-token loop exactly, a batch gives each row the
//! answer it gets alone (also when rows stop at different steps), and bad rows are named.

use crate::common;

use burn::tensor::{Device, Int, Tensor, TensorData, Tolerance};
use models::generation::{
    generate, generate_batch, sampling, BatchRow, Generation, GenerationOptions, SamplingOptions,
    StopReason,
};
use models::llama::{KvCache, LlamaConfig, LlamaVariant};
use models::{LlamaInput, LlamaModel, ModelError};
use mrl_common::SplitMix64;

fn tiny(variant: LlamaVariant, device: &Device) -> LlamaModel {
    // 4 query heads sharing 2 key/value heads of width 8; context 40.
    LlamaConfig::new(variant, 50, 32, 48, 3, 4, 2, 8)
        .with_rope_theta(1000.0)
        .with_max_position_embeddings(40)
        .init(device)
}

fn int(values: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `prompts` left-padded with id 0: ids and mask, `[rows, longest]`.
fn left_padded(prompts: &[&[u32]], device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let longest = prompts.iter().map(|p| p.len()).max().unwrap();
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for p in prompts {
        let pad = longest - p.len();
        ids.extend(std::iter::repeat_n(0, pad).chain(p.iter().map(|&t| t as i64)));
        mask.extend(std::iter::repeat_n(0, pad).chain(std::iter::repeat_n(1, p.len())));
    }
    let shape = [prompts.len(), longest];
    (int(ids, shape, device), int(mask, shape, device))
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn assert_finite(t: &Tensor<3>, what: &str) {
    let v = values(t.clone());
    assert!(v.iter().all(|x| x.is_finite()), "{what}: non-finite values");
}

const PROMPTS: [&[u32]; 3] = [&[3, 17, 42, 8, 8, 29, 1], &[5, 9, 11, 30], &[44, 2]];

#[test]
fn left_padding_gives_each_row_its_own_logits_and_no_nan() {
    for (name, device) in common::devices() {
        for variant in [LlamaVariant::Llama, LlamaVariant::Qwen3] {
            let model = tiny(variant, &device);
            let (ids, mask) = left_padded(&PROMPTS, &device);
            let input = LlamaInput {
                input_ids: ids.clone(),
                attention_mask: mask.clone(),
            };
            let fused = model.forward(input.clone(), false);
            let explicit = model.forward(input, true);
            for (l, h) in fused.hidden_states.iter().enumerate() {
                assert_finite(h, &format!("{name} {variant:?} hidden state {l}"));
            }
            let logits = fused.logits.unwrap();
            assert_finite(&logits, &format!("{name} {variant:?} logits"));
            // The two attention paths agree everywhere, padded positions included (a padded
            // query that sees no key attends to itself on both).
            logits.clone().into_data().assert_approx_eq::<f32>(
                &explicit.logits.unwrap().into_data(),
                Tolerance::absolute(1e-5),
            );
            let probs = explicit.attentions.unwrap()[0].clone();
            // Row 2 has 5 pads: its first query sees only its own (padded) key.
            let first = probs
                .slice([2..3, 0..4, 0..1])
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            for h in 0..4 {
                assert_eq!(first[h * 7], 1.0, "{name} head {h}: {first:?}");
            }

            for (row, prompt) in PROMPTS.iter().enumerate() {
                let n = prompt.len();
                let alone = model
                    .forward(
                        LlamaInput {
                            input_ids: int(
                                prompt.iter().map(|&t| t as i64).collect(),
                                [1, n],
                                &device,
                            ),
                            attention_mask: Tensor::ones([1, n], &device),
                        },
                        false,
                    )
                    .logits
                    .unwrap();
                logits
                    .clone()
                    .slice([row..row + 1, 7 - n..7])
                    .into_data()
                    .assert_approx_eq::<f32>(&alone.into_data(), Tolerance::absolute(1e-4));
            }

            // Cached: the padded prefill, then two steps for all rows, against each row alone.
            let mut cache = KvCache::new();
            let mut steps = vec![model.forward_cached_last(ids, mask, &mut cache)];
            let mut mask_rows: Vec<Vec<i64>> = PROMPTS
                .iter()
                .map(|p| {
                    let mut m = vec![0; 7 - p.len()];
                    m.resize(7, 1);
                    m
                })
                .collect();
            for token in [13i64, 21] {
                mask_rows.iter_mut().for_each(|m| m.push(1));
                let len = mask_rows[0].len();
                steps.push(model.forward_cached_last(
                    int(vec![token; 3], [3, 1], &device),
                    int(mask_rows.concat(), [3, len], &device),
                    &mut cache,
                ));
            }
            for (row, prompt) in PROMPTS.iter().enumerate() {
                let mut seq: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
                seq.extend([13, 21]);
                let n = seq.len();
                let alone = model
                    .forward(
                        LlamaInput {
                            input_ids: int(seq, [1, n], &device),
                            attention_mask: Tensor::ones([1, n], &device),
                        },
                        false,
                    )
                    .logits
                    .unwrap();
                for (s, step) in steps.iter().enumerate() {
                    let at = n - 3 + s;
                    let step_values = step.clone().slice([row..row + 1, 0..50]).into_data();
                    assert!(
                        step_values
                            .try_to_vec::<f32>()
                            .unwrap()
                            .iter()
                            .all(|x| x.is_finite()),
                        "{name} step {s}"
                    );
                    step_values.assert_approx_eq::<f32>(
                        &alone
                            .clone()
                            .slice([0..1, at..at + 1])
                            .reshape([1, 50])
                            .into_data(),
                        Tolerance::absolute(1e-4),
                    );
                }
            }
        }
    }
}

#[test]
fn the_last_position_logits_are_those_of_the_full_cached_step() {
    for (_, device) in common::devices() {
        let model = tiny(LlamaVariant::Llama, &device);
        let (ids, mask) = left_padded(&PROMPTS, &device);
        let full = model.forward_cached(ids.clone(), mask.clone(), &mut KvCache::new());
        let last = model.forward_cached_last(ids, mask, &mut KvCache::new());
        assert_eq!(last.dims(), [3, 50]);
        let expected = full.slice([0..3, 6..7]).reshape([3, 50]);
        // Up to rounding only: flex's matmul rounds the head of one position per row
        // differently from the head of all of them.
        last.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
    }
}

/// The generation loop as it was before batching: one row, the full logits of every cached
/// step, its own sampler.
fn reference_generate(
    model: &LlamaModel,
    prompt: &[u32],
    options: &GenerationOptions,
    device: &Device,
) -> Generation {
    let mut rng = SplitMix64::new(options.seed);
    let mut cache = KvCache::new();
    let ids = |tokens: &[u32]| {
        int(
            tokens.iter().map(|&t| t as i64).collect(),
            [1, tokens.len()],
            device,
        )
    };
    let last_row = |logits: Tensor<3>| {
        let [_, seq, vocab] = logits.dims();
        logits
            .slice([0..1, seq - 1..seq])
            .reshape([vocab])
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    };
    let ones = |len: usize| Tensor::<2, Int>::ones([1, len], device);
    let mut logits = last_row(model.forward_cached(ids(prompt), ones(prompt.len()), &mut cache));
    let mut history = prompt.to_vec();
    let mut tokens = Vec::new();
    loop {
        let next = sampling::next_token(&logits, &history, &options.sampling, &mut rng);
        if options.stop_tokens.contains(&next) {
            return Generation {
                tokens,
                stop_reason: StopReason::StopToken(next),
            };
        }
        tokens.push(next);
        history.push(next);
        if tokens.len() >= options.max_new_tokens {
            return Generation {
                tokens,
                stop_reason: StopReason::MaxNewTokens,
            };
        }
        logits = last_row(model.forward_cached(ids(&[next]), ones(cache.len + 1), &mut cache));
    }
}

fn sampled(seed: u64) -> GenerationOptions {
    GenerationOptions {
        max_new_tokens: 12,
        sampling: SamplingOptions {
            temperature: 1.0,
            top_p: Some(0.95),
            top_k: None,
            no_repeat_ngram_size: 3,
        },
        stop_tokens: Vec::new(),
        seed,
    }
}

#[test]
fn a_batch_of_one_is_the_token_by_token_loop_exactly() {
    for (name, device) in common::devices() {
        let model = tiny(LlamaVariant::Qwen2, &device);
        for (prompt, seed) in PROMPTS.iter().zip([1, 2, 3]) {
            let options = sampled(seed);
            let want = reference_generate(&model, prompt, &options, &device);
            let mut streamed = Vec::new();
            let got = generate(&model, prompt, &options, &device, |t| streamed.push(t)).unwrap();
            assert_eq!(got, want, "{name} seed {seed}");
            assert_eq!(streamed, got.tokens, "{name}");
            let row = BatchRow { prompt, seed };
            let batch = generate_batch(&model, &[row], &options, &device, |_, _| {}).unwrap();
            assert_eq!(batch, [want], "{name} seed {seed}");
        }
    }
}

#[test]
fn each_row_of_a_batch_gets_its_answer_alone_also_when_rows_stop_early() {
    for (name, device) in common::devices() {
        let model = tiny(LlamaVariant::Llama, &device);
        let rows: Vec<BatchRow> = PROMPTS
            .iter()
            .zip([7, 8, 9])
            .map(|(&prompt, seed)| BatchRow { prompt, seed })
            .collect();
        let alone = |options: &GenerationOptions| -> Vec<Generation> {
            rows.iter()
                .map(|r| {
                    let options = GenerationOptions {
                        seed: r.seed,
                        ..options.clone()
                    };
                    generate(&model, r.prompt, &options, &device, |_| {}).unwrap()
                })
                .collect()
        };
        // Greedy and sampled, every row to max_new_tokens.
        for options in [
            GenerationOptions {
                max_new_tokens: 10,
                ..GenerationOptions::default()
            },
            sampled(0),
        ] {
            let mut streamed = vec![Vec::new(); 3];
            let batch = generate_batch(&model, &rows, &options, &device, |row, t| {
                streamed[row].push(t)
            })
            .unwrap();
            let want = alone(&options);
            assert_eq!(batch, want, "{name} {:?}", options.sampling);
            for (s, g) in streamed.iter().zip(&batch) {
                assert_eq!(s, &g.tokens, "{name}");
                assert_eq!(g.stop_reason, StopReason::MaxNewTokens);
            }
        }
        // Stop tokens that end rows at different steps: the batch shrinks as they finish.
        let free = alone(&sampled(0));
        let stop = free[0].tokens[2];
        let options = GenerationOptions {
            stop_tokens: vec![stop],
            ..sampled(0)
        };
        let want = alone(&options);
        assert_eq!(
            want[0].tokens.len(),
            free[0].tokens.iter().position(|&t| t == stop).unwrap()
        );
        assert_eq!(want[0].stop_reason, StopReason::StopToken(stop));
        let lengths: Vec<usize> = want.iter().map(|g| g.tokens.len()).collect();
        assert!(
            lengths.iter().any(|&l| l != lengths[0]),
            "{name}: the rows should stop at different steps: {want:?}"
        );
        let batch = generate_batch(&model, &rows, &options, &device, |_, _| {}).unwrap();
        assert_eq!(batch, want, "{name} with stop token {stop}");
    }
}

#[test]
fn bad_rows_are_errors_naming_the_row() {
    let device = Device::flex();
    let model = tiny(LlamaVariant::Llama, &device);
    let options = GenerationOptions {
        max_new_tokens: 30,
        ..GenerationOptions::default()
    };
    let err = generate_batch(&model, &[], &options, &device, |_, _| {}).unwrap_err();
    assert!(
        matches!(err, ModelError::InvalidArgument { name: "rows", .. }),
        "{err}"
    );
    let ok = BatchRow {
        prompt: &[1, 2],
        seed: 0,
    };
    let empty = BatchRow {
        prompt: &[],
        seed: 0,
    };
    let err = generate_batch(&model, &[ok, empty], &options, &device, |_, _| {}).unwrap_err();
    assert!(
        matches!(&err, ModelError::BatchRow { row: 1, source } if matches!(**source, ModelError::InvalidArgument { name: "prompt", .. })),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "batch row 1: invalid prompt: no tokens");
    // 11 + 30 > 40.
    let long = BatchRow {
        prompt: &[1; 11],
        seed: 0,
    };
    let err = generate_batch(&model, &[ok, ok, long], &options, &device, |_, _| {}).unwrap_err();
    assert!(
        matches!(&err, ModelError::BatchRow { row: 2, source } if matches!(**source, ModelError::ContextOverflow { needed: 41, context: 40, .. })),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("batch row 2: the prompt has 11 tokens"),
        "{err}"
    );
    // `generate` keeps its unwrapped errors.
    let err = generate(&model, &[1; 11], &options, &device, |_| {}).unwrap_err();
    assert!(matches!(err, ModelError::ContextOverflow { .. }), "{err:?}");
}
