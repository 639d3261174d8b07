//! Random Hugging Face model directories of every supported architecture, built in code, for
//! tests and smoke runs: no download and no shared data needed (a dev-only crate).
//!
//! - [`write_tiny_model`] — the tiny BERT (hidden [`TINY_HIDDEN`], [`TINY_LAYERS`] layers) with
//!   its WordPiece tokenizer and mean pooling, which `mrl train` trains in a fraction of a second
//!   per step; [`tiny_sentences`] and [`tiny_sts_tsv`] are a corpus and an STS dev set over its
//!   vocabulary ([`WORDS`]);
//! - [`write_random_model`] — a random `bert`, `xlm-roberta`, `llama` or `qwen3` model
//!   ([`Arch`]) of any [`ModelShape`] (hidden size, layers, heads, key/value heads, head width,
//!   intermediate size, vocabulary), e.g. a Qwen3 with hidden 1024 and 28 layers but
//!   intermediate 64 and a tiny vocabulary, to measure what depends on depth and width only.
//!
//! Every directory loads through [`models::SentenceEncoder::load`].
//!
//! # Example
//! ```no_run
//! use burn::tensor::Device;
//! use models::{EncoderOptions, SentenceEncoder};
//! use tiny_models::{write_random_model, Arch, ModelShape};
//!
//! let device = Device::flex();
//! let dir = std::env::temp_dir().join("tiny-qwen3");
//! let shape = ModelShape::new(1024, 28, 16, 64, 64).with_kv_heads(8).with_head_dim(128);
//! write_random_model(&dir, Arch::Qwen3, &shape, 7, &device)?;
//! let encoder = SentenceEncoder::load(&dir, &device, &EncoderOptions::default())?;
//! let vectors = encoder.encode(&["a man is playing a guitar ."], 8, |_| {})?;
//! assert_eq!(vectors[0].len(), 1024);
//! # Ok::<(), models::ModelError>(())
//! ```

mod random_model;
mod tiny_bert;

pub use random_model::{word_tokenizer, write_random_model, Arch, ModelShape};
pub use tiny_bert::{
    tiny_config, tiny_sentences, tiny_sts_tsv, tiny_tokenizer, write_tiny_model, TINY_HIDDEN,
    TINY_LAYERS, WORDS,
};

#[cfg(test)]
mod tests {
    use super::*;

    use burn::tensor::Device;
    use models::{Backbone, EncoderOptions, ModelError, Pooling, SentenceEncoder};

    /// Burn's random numbers come from one generator per backend, shared by every thread:
    /// the tests that seed it take turns, or another test's draws would fall between a seed
    /// and the initialisation it is meant to fix.
    static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn seeded() -> std::sync::MutexGuard<'static, ()> {
        SEEDED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    use test_support::TempDir;

    fn sentences() -> Vec<String> {
        let mut s = tiny_sentences(5);
        s.push("an unknown word".to_string());
        s
    }

    #[test]
    fn every_architecture_loads_and_encodes_through_the_sentence_encoder() {
        let _turn = seeded();
        let device = Device::flex();
        // Uneven sizes, grouped-query attention and a head width other than hidden / heads for
        // the decoders, a vocabulary padded well beyond the words.
        let cases = [
            (Arch::Bert, ModelShape::new(24, 2, 3, 40, 80)),
            (
                Arch::XlmRoberta,
                ModelShape::new(16, 3, 2, 24, 60).with_max_positions(20),
            ),
            (
                Arch::Llama,
                ModelShape::new(32, 2, 4, 20, 70).with_kv_heads(2),
            ),
            (
                Arch::Qwen3,
                ModelShape::new(32, 3, 4, 16, 50)
                    .with_kv_heads(1)
                    .with_head_dim(16),
            ),
        ];
        let texts = sentences();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (arch, shape) in cases {
            let what = arch.model_type();
            let tmp = TempDir::new(what);
            write_random_model(tmp.path(), arch, &shape, 3, &device).unwrap();
            let encoder =
                SentenceEncoder::load(tmp.path(), &device, &EncoderOptions::default()).unwrap();
            assert_eq!(encoder.hidden_size(), shape.hidden_size, "{what}");
            assert_eq!(encoder.num_layers(), shape.num_layers, "{what}");
            assert_eq!(encoder.max_length(), shape.max_positions, "{what}");
            let (pooling, vocab) = match encoder.backbone() {
                Backbone::Bert(b) => (encoder.pooling(), b.config.vocab_size),
                Backbone::Decoder(d) => {
                    let config = &d.config;
                    assert_eq!(config.num_key_value_heads, shape.num_kv_heads.unwrap());
                    assert_eq!(
                        config.head_dim,
                        shape
                            .head_dim
                            .unwrap_or(shape.hidden_size / shape.num_heads)
                    );
                    (encoder.pooling(), config.vocab_size)
                }
            };
            assert_eq!(vocab, shape.vocab_size, "{what}");
            let want_pooling = match arch {
                Arch::Bert => Pooling::Mean,
                Arch::XlmRoberta => Pooling::Cls,
                Arch::Llama | Arch::Qwen3 => Pooling::LastToken,
            };
            assert_eq!(pooling, want_pooling, "{what}");
            if arch == Arch::XlmRoberta {
                let Backbone::Bert(b) = encoder.backbone() else {
                    panic!("an encoder")
                };
                let config = &b.config;
                assert_eq!(config.variant, models::BertVariant::XlmRoberta);
                assert_eq!(config.pad_token_id, 1);
            }

            // Special tokens as the architecture has them; the padded vocabulary never used.
            let batch = encoder.tokenizer().encode_batch(&texts).unwrap();
            let first = batch.ids(0);
            match arch {
                Arch::Bert => assert_eq!((first[0], *first.last().unwrap()), (2, 3)),
                Arch::XlmRoberta => assert_eq!((first[0], *first.last().unwrap()), (0, 2)),
                Arch::Llama | Arch::Qwen3 => assert_eq!(*first.last().unwrap(), 2, "{what}: eos"),
            }
            let unknown = batch.ids(texts.len() - 1);
            let unk = match arch {
                Arch::Bert => 1,
                Arch::XlmRoberta => 3,
                Arch::Llama | Arch::Qwen3 => 0,
            };
            assert!(unknown.contains(&unk), "{what}: {unknown:?}");
            let words = (arch.min_vocab_size()) as u32;
            assert!(batch.input_ids.iter().all(|&id| id < words), "{what}");

            // Finite, distinct vectors of the model's width; the same text alone or batched.
            let vectors = encoder.encode(&texts, 4, |_| {}).unwrap();
            assert_eq!(vectors.len(), texts.len(), "{what}");
            for v in &vectors {
                assert_eq!(v.len(), shape.hidden_size, "{what}");
                assert!(v.iter().all(|x| x.is_finite()), "{what}");
            }
            assert_ne!(vectors[0], vectors[1], "{what}");
            let alone = encoder.encode(&texts[2..3], 1, |_| {}).unwrap();
            let diff = alone[0]
                .iter()
                .zip(&vectors[2])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{what}: alone vs batched differ by {diff}");
        }
    }

    /// The full-depth, full-width shapes the crate exists for (Qwen3-0.6B's attention with a
    /// 64-wide MLP and a tiny vocabulary: ~730 MB of weights; BGE-M3's width and depth: ~410 MB).
    #[test]
    #[ignore = "writes ~1.1 GB of weights; run with --include-ignored"]
    fn full_depth_models_load_and_encode() {
        let _turn = seeded();
        let device = Device::flex();
        let cases = [
            (
                Arch::Qwen3,
                ModelShape::new(1024, 28, 16, 64, 64)
                    .with_kv_heads(8)
                    .with_head_dim(128),
            ),
            (Arch::XlmRoberta, ModelShape::new(1024, 24, 16, 64, 64)),
        ];
        for (arch, shape) in cases {
            let tmp = TempDir::new("full-depth");
            write_random_model(tmp.path(), arch, &shape, 1, &device).unwrap();
            let encoder =
                SentenceEncoder::load(tmp.path(), &device, &EncoderOptions::default()).unwrap();
            assert_eq!(
                (encoder.hidden_size(), encoder.num_layers()),
                (1024, shape.num_layers)
            );
            let vectors = encoder
                .encode(
                    &["a man is playing a guitar .", "the cat is sleeping ."],
                    2,
                    |_| {},
                )
                .unwrap();
            assert!(vectors.iter().flatten().all(|x| x.is_finite()), "{arch:?}");
            assert_ne!(vectors[0], vectors[1], "{arch:?}");
        }
    }

    #[test]
    fn one_seed_gives_one_model_and_another_seed_another() {
        let _turn = seeded();
        let device = Device::flex();
        let shape = ModelShape::new(16, 1, 2, 16, 48);
        let dirs: Vec<TempDir> = (0..3).map(|i| TempDir::new(&format!("seed{i}"))).collect();
        for (dir, seed) in dirs.iter().zip([5, 5, 6]) {
            write_random_model(dir.path(), Arch::Qwen3, &shape, seed, &device).unwrap();
        }
        let weights = |d: &TempDir| std::fs::read(d.path().join("model.safetensors")).unwrap();
        assert_eq!(weights(&dirs[0]), weights(&dirs[1]));
        assert_ne!(weights(&dirs[0]), weights(&dirs[2]));
    }

    #[test]
    fn shapes_the_architecture_cannot_take_are_refused_by_name() {
        let _turn = seeded();
        let device = Device::flex();
        let tmp = TempDir::new("refused");
        let cases = [
            (Arch::Bert, ModelShape::new(16, 1, 2, 16, 10), "vocab_size"),
            (
                Arch::Bert,
                ModelShape::new(16, 1, 3, 16, 60),
                "does not divide",
            ),
            (
                Arch::XlmRoberta,
                ModelShape::new(16, 1, 2, 16, 60).with_kv_heads(1),
                "num_kv_heads",
            ),
            (
                Arch::Llama,
                ModelShape::new(16, 1, 4, 16, 60).with_kv_heads(3),
                "num_key_value_heads",
            ),
        ];
        for (arch, shape, needle) in cases {
            let err = write_random_model(tmp.path(), arch, &shape, 1, &device).unwrap_err();
            assert!(
                matches!(err, ModelError::InvalidArgument { .. })
                    && err.to_string().contains(needle),
                "{arch:?}: `{needle}` not in {err}"
            );
        }
        assert_eq!("qwen3".parse::<Arch>().unwrap(), Arch::Qwen3);
        let err = "gpt2".parse::<Arch>().unwrap_err();
        assert!(err.to_string().contains("`gpt2`"), "{err}");
    }
}
