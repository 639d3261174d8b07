//! all-MiniLM-L6-v2 against sentence-transformers / transformers reference values
//! (`tests/fixtures/minilm_embeddings.json`, written by `scripts/make_minilm_embeddings_fixture.py`).
//! Needs the shared model: `MRL_SHARED=../shared cargo test -p models -- --include-ignored`.

use crate::common::*;
use burn::tensor::Tensor;
use models::{truncate_normalize, EncoderOptions, SentenceEncoder};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    max_seq_length: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
    first_sentence_hidden_states_prefix16: Vec<Vec<Vec<f32>>>,
    first_sentence_attention_layer0_head0: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_embeddings.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

const TOLERANCE: f32 = 1e-4;

#[test]
#[ignore = "needs MRL_SHARED"]
fn minilm_matches_sentence_transformers_on_every_device() {
    let fixture = fixture();
    let dir = minilm_dir();
    let texts: Vec<&str> = fixture.sentences.iter().map(String::as_str).collect();
    for (name, device) in devices() {
        let encoder = SentenceEncoder::load(&dir, &device, &EncoderOptions::default()).unwrap();
        assert_eq!(encoder.max_length(), fixture.max_seq_length, "{name}");

        let batch = encoder.tokenizer().encode_batch(&texts).unwrap();
        for (i, want) in fixture.token_ids.iter().enumerate() {
            assert_eq!(
                batch.ids(i),
                want.as_slice(),
                "{name}: token ids of `{}`",
                texts[i]
            );
        }

        // One padded batch, like the reference.
        let pooled = encoder.embed_batch(&texts).unwrap();
        let got = values(truncate_normalize(pooled, encoder.hidden_size()).unwrap());
        let want: Vec<f32> = fixture.embeddings.concat();
        let diff = max_abs_diff(&got, &want);
        println!("{name}: max |ours - sentence-transformers| = {diff:.3e}");
        assert!(diff <= TOLERANCE, "{name}: embeddings differ by {diff}");

        // The length-sorted batched path gives the same vectors.
        let sorted = encoder.encode(&texts, 3, |_| {}).unwrap();
        for (row, want) in sorted.iter().zip(&fixture.embeddings) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            let unit: Vec<f32> = row.iter().map(|v| v / norm).collect();
            let diff = max_abs_diff(&unit, want);
            assert!(
                diff <= TOLERANCE,
                "{name}: batched embeddings differ by {diff}"
            );
        }
    }
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn minilm_hidden_states_and_attention_match_transformers() {
    let fixture = fixture();
    let dir = minilm_dir();
    for (name, device) in devices() {
        let encoder = SentenceEncoder::load(&dir, &device, &EncoderOptions::default()).unwrap();
        let batch = encoder
            .tokenizer()
            .encode_batch(&[fixture.sentences[0].as_str()])
            .unwrap();
        let out = encoder
            .bert()
            .expect("a BERT backbone")
            .forward(batch.to_bert_input(&device), true);
        assert_eq!(
            out.hidden_states.len(),
            fixture.first_sentence_hidden_states_prefix16.len()
        );
        for (layer, (h, want)) in out
            .hidden_states
            .iter()
            .zip(&fixture.first_sentence_hidden_states_prefix16)
            .enumerate()
        {
            let [_, seq, _] = h.dims();
            let got = values(h.clone().slice([0..1, 0..seq, 0..16]));
            let diff = max_abs_diff(&got, &want.concat());
            assert!(
                diff <= TOLERANCE,
                "{name}: hidden state {layer} differs by {diff}"
            );
        }
        let attention = out.attentions.unwrap()[0].clone();
        let [_, _, seq, _] = attention.dims();
        let got = values(attention.slice([0..1, 0..1, 0..seq, 0..seq]));
        let diff = max_abs_diff(
            &got,
            &fixture.first_sentence_attention_layer0_head0.concat(),
        );
        assert!(
            diff <= TOLERANCE,
            "{name}: layer-0 attention differs by {diff}"
        );
    }
}
