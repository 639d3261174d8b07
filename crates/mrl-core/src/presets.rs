//! Named MIPIC presets: the paper's backbones (MIPIC Table 7, §5) and our MiniLM-L6 default.
//!
//! Every preset is a TOML file under `crates/mrl-core/presets/` (`mipic-<name>.toml`),
//! embedded in the library: the file is the one source of the preset's values.

use crate::mipic::MipicConfig;

/// A backbone with a published (or, for MiniLM-L6, documented) MIPIC setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MipicPreset {
    /// TinyBERT-6L (`D = 768`, 6 layers), the paper's.
    TinyBert6L,
    /// BERT-base (`D = 768`, 12 layers), the paper's.
    BertBase,
    /// BGE-M3 (XLM-RoBERTa, `D = 1024`, 24 layers), the paper's.
    BgeM3,
    /// Qwen3-Embedding-0.6B (`D = 1024`, 28 layers), the paper's.
    Qwen3Embedding06B,
    /// all-MiniLM-L6-v2 (`D = 384`, 6 layers), our CPU default (dims from 8, mean pooling).
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

    /// The preset's name, as in `presets/mipic-<name>.toml`.
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

    /// The preset's TOML file (`crates/mrl-core/presets/mipic-<name>.toml`), embedded: the one
    /// source of the preset's values, readable and copyable by users.
    pub fn toml(self) -> &'static str {
        match self {
            MipicPreset::TinyBert6L => include_str!("../presets/mipic-tinybert-6l.toml"),
            MipicPreset::BertBase => include_str!("../presets/mipic-bert-base.toml"),
            MipicPreset::BgeM3 => include_str!("../presets/mipic-bge-m3.toml"),
            MipicPreset::Qwen3Embedding06B => {
                include_str!("../presets/mipic-qwen3-embedding-0.6b.toml")
            }
            MipicPreset::MiniLmL6 => include_str!("../presets/mipic-minilm-l6.toml"),
        }
    }

    /// The config (paper variant: sums, `λ = 1`, paper k-schedule), parsed from
    /// [`MipicPreset::toml`].
    ///
    /// # Panics
    /// If the embedded file does not parse (a test parses every preset).
    pub fn config(self) -> MipicConfig {
        toml::from_str(self.toml())
            .unwrap_or_else(|e| panic!("preset `{}` does not parse: {e}", self.name()))
    }
}
