//! Properties of the Llama decoder that need no checkpoint, on a tiny random model of each
//! variant: the KV-cached steps reproduce the full forward pass, right padding does not change
//! the real positions, the explicit (attention-returning) path equals the fused one, hidden
//! states follow the Hugging Face convention, and the first-K-layers student shares the teacher's
//! first layers.

use crate::common;

use burn::tensor::{Device, Int, Tensor, TensorData, Tolerance};
use models::llama::{KvCache, LlamaConfig, LlamaVariant};
use models::{LlamaInput, LlamaModel, Pooling};

fn tiny(variant: LlamaVariant) -> LlamaConfig {
    // 4 query heads sharing 2 key/value heads of width 8.
    LlamaConfig::new(variant, 50, 32, 48, 3, 4, 2, 8)
        .with_rope_theta(1000.0)
        .with_max_position_embeddings(16)
}

fn ids(rows: &[&[i64]], device: &Device) -> Tensor<2, Int> {
    let seq = rows[0].len();
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), seq]), device)
}

fn close(a: Tensor<3>, b: Tensor<3>, what: &str) {
    let (a, b) = (a.into_data(), b.into_data());
    assert_eq!(a.shape(), b.shape(), "{what}");
    a.assert_approx_eq::<f32>(&b, Tolerance::absolute(1e-4));
}

const TOKENS: [i64; 7] = [3, 17, 42, 8, 8, 29, 1];

#[test]
fn cached_steps_reproduce_the_full_forward_pass() {
    for (name, device) in common::devices() {
        for variant in [
            LlamaVariant::Llama,
            LlamaVariant::Qwen2,
            LlamaVariant::Qwen3,
        ] {
            let model = tiny(variant).init(&device);
            let full = model
                .forward(
                    LlamaInput {
                        input_ids: ids(&[&TOKENS], &device),
                        attention_mask: Tensor::ones([1, 7], &device),
                    },
                    false,
                )
                .logits
                .unwrap();
            // A 3-token prefill, then one token at a time.
            let mut cache = KvCache::new();
            let mut steps = vec![model.forward_cached(
                ids(&[&TOKENS[..3]], &device),
                Tensor::ones([1, 3], &device),
                &mut cache,
            )];
            for t in 3..7 {
                steps.push(model.forward_cached(
                    ids(&[&TOKENS[t..t + 1]], &device),
                    Tensor::ones([1, t + 1], &device),
                    &mut cache,
                ));
            }
            assert_eq!(cache.len, 7);
            close(Tensor::cat(steps, 1), full, &format!("{name} {variant:?}"));
        }
    }
}

#[test]
fn right_padding_leaves_real_positions_unchanged_and_paths_agree() {
    for (name, device) in common::devices() {
        let model = tiny(LlamaVariant::Llama).init(&device);
        let alone = model.forward(
            LlamaInput {
                input_ids: ids(&[&TOKENS[..4]], &device),
                attention_mask: Tensor::ones([1, 4], &device),
            },
            false,
        );
        let padded_input = LlamaInput {
            input_ids: ids(
                &[
                    &TOKENS,
                    &[TOKENS[0], TOKENS[1], TOKENS[2], TOKENS[3], 0, 0, 0],
                ],
                &device,
            ),
            attention_mask: ids(&[&[1; 7], &[1, 1, 1, 1, 0, 0, 0]], &device),
        };
        let fused = model.forward(padded_input.clone(), false);
        let explicit = model.forward(padded_input, true);
        let row = |t: Tensor<3>| t.slice([1..2, 0..4]);
        close(
            row(fused.logits.clone().unwrap()),
            alone.logits.unwrap(),
            &format!("{name} padded row"),
        );
        close(
            fused.logits.unwrap(),
            explicit.logits.unwrap(),
            &format!("{name} fused vs explicit"),
        );

        // Hidden states: embeddings first, final norm last; attention rows are causal
        // distributions that ignore padded keys.
        assert_eq!(explicit.hidden_states.len(), 4);
        let embeddings = model.embed_tokens.forward(ids(&[&TOKENS], &device));
        close(
            explicit.hidden_states[0].clone().slice([0..1, 0..7]),
            embeddings,
            &format!("{name} hidden_states[0]"),
        );
        let attentions = explicit.attentions.unwrap();
        assert_eq!(attentions.len(), 3);
        assert_eq!(attentions[0].dims(), [2, 4, 7, 7]);
        let probs = attentions[2]
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let at = |b: usize, h: usize, q: usize, k: usize| probs[((b * 4 + h) * 7 + q) * 7 + k];
        for q in 0..7 {
            let row_sum: f32 = (0..7).map(|k| at(0, 1, q, k)).sum();
            assert!((row_sum - 1.0).abs() < 1e-5, "{name} row sum {row_sum}");
            for k in q + 1..7 {
                assert_eq!(at(0, 1, q, k), 0.0, "{name} future key {k} seen from {q}");
            }
            for k in 4..7 {
                assert_eq!(at(1, 3, q, k), 0.0, "{name} padded key {k} seen from {q}");
            }
        }
    }
}

#[test]
fn the_student_is_the_teachers_first_layers() {
    let device = Device::flex();
    let teacher = tiny(LlamaVariant::Qwen3).init(&device);
    let input = LlamaInput {
        input_ids: ids(&[&TOKENS], &device),
        attention_mask: Tensor::ones([1, 7], &device),
    };
    let t = teacher.forward(input.clone(), false);
    let student: LlamaModel = teacher.clone().first_layers(2).unwrap();
    let s = student.forward(input, false);
    assert_eq!(s.hidden_states.len(), 3);
    close(
        s.hidden_states[1].clone(),
        t.hidden_states[1].clone(),
        "layer 1",
    );
    // The student's last hidden state is the final norm of teacher layer 2's output.
    close(
        s.hidden_states[2].clone(),
        teacher.norm.forward(t.hidden_states[2].clone()),
        "final norm",
    );
    assert!(teacher.clone().first_layers(4).is_err());
    assert!(teacher.first_layers(0).is_err());
}

#[test]
fn last_token_pooling_takes_the_last_real_position() {
    let device = Device::flex();
    let model = tiny(LlamaVariant::Qwen2).init(&device);
    let input = LlamaInput {
        input_ids: ids(
            &[&TOKENS, &[TOKENS[0], TOKENS[1], TOKENS[2], 0, 0, 0, 0]],
            &device,
        ),
        attention_mask: ids(&[&[1; 7], &[1, 1, 1, 0, 0, 0, 0]], &device),
    };
    let hidden = model
        .forward_hidden(input.clone(), false)
        .last_hidden_state();
    let pooled = model.embed(input, Pooling::LastToken).unwrap();
    assert_eq!(pooled.dims(), [2, 32]);
    let expected = Tensor::cat(
        vec![
            hidden.clone().slice([0..1, 6..7]).reshape([1, 32]),
            hidden.slice([1..2, 2..3]).reshape([1, 32]),
        ],
        0,
    );
    pooled
        .into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));
}
