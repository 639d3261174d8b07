//! Forward-pass behaviour on a tiny synthetic checkpoint: hidden-state convention, attention
//! probabilities, padding invariance, tokenizer padding, dropout only under autodiff.

use crate::common::*;
use burn::tensor::{Device, Int, Tensor, TensorData};
use models::{BertInput, BertModel, EncoderOptions, SentenceEncoder, TextTokenizer};

fn values_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn ids(rows: &[&[i64]], device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let seq = rows.iter().map(|r| r.len()).max().unwrap();
    let mut input = Vec::new();
    let mut mask = Vec::new();
    for r in rows {
        for t in 0..seq {
            input.push(r.get(t).copied().unwrap_or(0));
            mask.push(i64::from(t < r.len()));
        }
    }
    let shape = [rows.len(), seq];
    (
        Tensor::from_data(TensorData::new(input, shape), device),
        Tensor::from_data(TensorData::new(mask, shape), device),
    )
}

fn tiny_model(device: &Device) -> (TempDir, BertModel) {
    let tmp = TempDir::new("forward");
    write_tiny_model(tmp.path());
    let (_, model) = BertModel::from_pretrained(tmp.path(), device).unwrap();
    (tmp, model)
}

#[test]
fn hidden_states_follow_the_hf_convention_and_attention_rows_are_distributions() {
    for (name, device) in devices() {
        let (_tmp, model) = tiny_model(&device);
        let (input_ids, mask) = ids(&[&[2, 4, 5, 7, 3], &[2, 6, 3]], &device);
        let out = model.forward(BertInput::new(input_ids.clone(), mask.clone()), true);
        assert_eq!(out.hidden_states.len(), LAYERS + 1, "{name}");
        for h in &out.hidden_states {
            assert_eq!(h.dims(), [2, 5, HIDDEN], "{name}");
        }
        // Index 0 is the embedding output: LayerNorm'd, so each token row has mean ≈ β-mean.
        let emb = model.embeddings.forward(input_ids, None);
        let diff = max_abs_diff(&values_of(emb), &values_of(out.hidden_states[0].clone()));
        assert!(diff < 1e-6, "{name}: embedding output differs by {diff}");

        let attentions = out.attentions.as_ref().expect("requested");
        assert_eq!(attentions.len(), LAYERS, "{name}");
        for a in attentions {
            assert_eq!(a.dims(), [2, HEADS, 5, 5], "{name}");
            let probs = values_of(a.clone());
            for (row_index, row) in probs.chunks(5).enumerate() {
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{name}: row sums to {sum}");
                // Second sequence: keys 3 and 4 are padding and get exactly zero weight.
                if row_index >= HEADS * 5 {
                    assert_eq!(row[3], 0.0, "{name}");
                    assert_eq!(row[4], 0.0, "{name}");
                }
            }
        }
        // The fused-attention path (no probabilities requested) gives the same states.
        let fused = model.forward(
            BertInput::new(ids(&[&[2, 4, 5, 7, 3], &[2, 6, 3]], &device).0, mask),
            false,
        );
        assert!(fused.attentions.is_none());
        for (a, b) in fused.hidden_states.iter().zip(&out.hidden_states) {
            let diff = max_abs_diff(&values_of(a.clone()), &values_of(b.clone()));
            assert!(
                diff < 1e-5,
                "{name}: fused vs explicit attention differ by {diff}"
            );
        }
    }
}

#[test]
fn padding_does_not_change_the_real_tokens() {
    for (name, device) in devices() {
        let (_tmp, model) = tiny_model(&device);
        let (alone_ids, alone_mask) = ids(&[&[2, 6, 3]], &device);
        let alone = model
            .forward(BertInput::new(alone_ids, alone_mask), false)
            .last_hidden_state();
        let (batch_ids, batch_mask) = ids(&[&[2, 4, 5, 7, 8, 9, 3], &[2, 6, 3]], &device);
        let batched = model
            .forward(BertInput::new(batch_ids, batch_mask), false)
            .last_hidden_state();
        let row = batched.slice([1..2, 0..3, 0..HIDDEN]);
        let diff = max_abs_diff(&values_of(alone), &values_of(row));
        assert!(diff < 1e-5, "{name}: padding changed real tokens by {diff}");
    }
}

#[test]
fn dropout_acts_only_on_autodiff_devices() {
    for (name, device) in devices() {
        let (_tmp, model) = tiny_model(&device);
        let run = |model: &BertModel, device: &Device| {
            let (i, m) = ids(&[&[2, 4, 5, 7, 3]], device);
            values_of(
                model
                    .forward(BertInput::new(i, m), false)
                    .last_hidden_state(),
            )
        };
        assert_eq!(
            run(&model, &device),
            run(&model, &device),
            "{name}: inference must be deterministic"
        );

        let train_device = device.clone().autodiff();
        let (_tmp2, train_model) = tiny_model(&train_device);
        let a = run(&train_model, &train_device);
        let b = run(&train_model, &train_device);
        assert!(
            max_abs_diff(&a, &b) > 1e-3,
            "{name}: two training passes should differ (SimCSE views)"
        );
        let eval = run(&model, &device);
        assert!(
            max_abs_diff(&a, &eval) > 1e-3,
            "{name}: dropout had no effect"
        );
    }
}

#[test]
fn the_tokenizer_pads_to_the_longest_in_batch_and_truncates() {
    let tmp = TempDir::new("tok");
    write_tiny_tokenizer(&tmp.path().join("tokenizer.json"));
    let tok = TextTokenizer::from_file(&tmp.path().join("tokenizer.json"), 6).unwrap();
    let batch = tok
        .encode_batch(&["The cat sat", "dogs", "the big red bird flies fast and"])
        .unwrap();
    // The file pads to a fixed 12; we pad to the longest (truncated to 6).
    assert_eq!(batch.seq_len, 6);
    assert_eq!(batch.lengths(), [5, 4, 6]);
    assert_eq!(batch.ids(0), [2, 4, 5, 7, 3]);
    assert_eq!(batch.ids(1), [2, 6, 13, 3]); // "dogs" = dog ##s
    assert_eq!(batch.ids(2), [2, 4, 14, 15, 17, 3]); // truncated, [SEP] kept
    assert_eq!(&batch.input_ids[6..12], [2, 6, 13, 3, 0, 0]);
    assert_eq!(&batch.attention_mask[6..12], [1, 1, 1, 1, 0, 0]);
    // Character offsets: "The cat sat" → The (0,3), cat (4,7), sat (8,11).
    assert_eq!(&batch.offsets[0][1..4], [(0, 3), (4, 7), (8, 11)]);
    assert_eq!(&batch.offsets[1][1..3], [(0, 3), (3, 4)]);
}

#[test]
fn sentence_encoder_pools_in_input_order() {
    let tmp = TempDir::new("encode");
    write_tiny_model(tmp.path());
    for (name, device) in devices() {
        let encoder =
            SentenceEncoder::load(tmp.path(), &device, &EncoderOptions::default()).unwrap();
        assert_eq!(encoder.max_length(), POSITIONS, "{name}");
        let texts = [
            "the cat",
            "a big red bird flies fast",
            "dog",
            "the cat",
            "a b c",
        ];
        // Three batches: on the CPU backends they run on one thread per core.
        let mut reported = Vec::new();
        let batched = encoder.encode(&texts, 2, |n| reported.push(n)).unwrap();
        assert_eq!(batched.len(), 5);
        reported.sort_unstable();
        assert_eq!(reported, [1, 2, 2], "{name}: progress once per batch");
        for (text, got) in texts.iter().zip(&batched) {
            let alone = values_of(encoder.embed_batch(&[text]).unwrap());
            let diff = max_abs_diff(&alone, got);
            assert!(
                diff < 1e-5,
                "{name}: `{text}` differs by {diff} when batched"
            );
        }
        assert_eq!(batched[0], batched[3]);
        assert!(encoder.encode(&texts, 0, |_| {}).is_err());
    }
}
