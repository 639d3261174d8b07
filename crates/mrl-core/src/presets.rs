//! Named MIPIC presets: the paper's backbones (MIPIC Table 7, §5) and our MiniLM-L6 default.
//!
//! Every preset is also a TOML file under `configs/presets/` (`mipic-<name>.toml`) that
//! deserialises to exactly [`MipicPreset::config`]; a test keeps the two in sync.

use crate::mipic::MipicConfig;
use crate::pooling::Pooling;
use crate::sia::SiaCkaSchedule;

/// A backbone with a published (or, for MiniLM-L6, documented) MIPIC setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MipicPreset {
    /// TinyBERT-6L (`D = 768`, 6 layers): SIA layers `1..=6`, chain
    /// `(16,1) (32,2) (64,3) (256,4) (512,5) (768,6)`, `α = 0.4`.
    TinyBert6L,
    /// BERT-base (`D = 768`, 12 layers): SIA layers `2,4,6,8,9,10,12`, chain
    /// `(16,2) (32,4) (64,6) (128,8) (256,9) (512,10) (768,12)`, `α = 0.4`.
    BertBase,
    /// BGE-M3 (`D = 1024`, 24 layers): SIA layers `1,4,7,11,15,19,24`, chain
    /// `(16,1) (32,4) (64,7) (128,11) (256,15) (512,19) (1024,24)`, `α = 0.5`.
    BgeM3,
    /// Qwen3-Embedding-0.6B (`D = 1024`, 28 layers): SIA layers `2,6,12,16,20,24,28`, chain
    /// `(16,2) (32,6) (64,12) (128,16) (256,20) (512,24) (1024,28)`, `α = 0.5`.
    Qwen3Embedding06B,
    /// all-MiniLM-L6-v2 (`D = 384`, 6 layers), our CPU default: dims `8 … 256, 384`, SIA layers
    /// `1..=6`, chain `(8,1) (16,2) (32,3) (64,4) (128,5) (384,6)`, `α = 0.4`, mean pooling.
    MiniLmL6,
}

impl MipicPreset {
    /// Every preset.
    pub const ALL: [MipicPreset; 5] = [
        MipicPreset::TinyBert6L,
        MipicPreset::BertBase,
        MipicPreset::BgeM3,
        MipicPreset::Qwen3Embedding06B,
        MipicPreset::MiniLmL6,
    ];

    /// The preset's name, as in `configs/presets/mipic-<name>.toml`.
    pub fn name(self) -> &'static str {
        match self {
            MipicPreset::TinyBert6L => "tinybert-6l",
            MipicPreset::BertBase => "bert-base",
            MipicPreset::BgeM3 => "bge-m3",
            MipicPreset::Qwen3Embedding06B => "qwen3-embedding-0.6b",
            MipicPreset::MiniLmL6 => "minilm-l6",
        }
    }

    /// The preset with this [`name`](MipicPreset::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The config (paper variant: sums, `λ = 1`, paper k-schedule).
    pub fn config(self) -> MipicConfig {
        let paper = |hidden: usize,
                     dims: Vec<usize>,
                     layers: Vec<usize>,
                     chain: Vec<(usize, usize)>,
                     alpha: f64| {
            let truncated = dims.iter().filter(|&&d| d < hidden).count();
            MipicConfig::new()
                .with_hidden_size(hidden)
                .with_dims(dims)
                .with_sia_layers(layers)
                .with_chain(chain)
                .with_alpha(alpha)
                .with_cka_schedule(SiaCkaSchedule::paper(truncated))
        };
        let dims = |full: usize| vec![16, 32, 64, 128, 256, 512, full];
        match self {
            MipicPreset::TinyBert6L => paper(
                768,
                dims(768),
                (1..=6).collect(),
                vec![(16, 1), (32, 2), (64, 3), (256, 4), (512, 5), (768, 6)],
                0.4,
            ),
            MipicPreset::BertBase => paper(
                768,
                dims(768),
                vec![2, 4, 6, 8, 9, 10, 12],
                vec![
                    (16, 2),
                    (32, 4),
                    (64, 6),
                    (128, 8),
                    (256, 9),
                    (512, 10),
                    (768, 12),
                ],
                0.4,
            ),
            MipicPreset::BgeM3 => paper(
                1024,
                dims(1024),
                vec![1, 4, 7, 11, 15, 19, 24],
                vec![
                    (16, 1),
                    (32, 4),
                    (64, 7),
                    (128, 11),
                    (256, 15),
                    (512, 19),
                    (1024, 24),
                ],
                0.5,
            ),
            MipicPreset::Qwen3Embedding06B => paper(
                1024,
                dims(1024),
                vec![2, 6, 12, 16, 20, 24, 28],
                vec![
                    (16, 2),
                    (32, 6),
                    (64, 12),
                    (128, 16),
                    (256, 20),
                    (512, 24),
                    (1024, 28),
                ],
                0.5,
            ),
            MipicPreset::MiniLmL6 => paper(
                384,
                vec![8, 16, 32, 64, 128, 256, 384],
                (1..=6).collect(),
                vec![(8, 1), (16, 2), (32, 3), (64, 4), (128, 5), (384, 6)],
                0.4,
            )
            .with_pooling(Pooling::Mean),
        }
    }
}
