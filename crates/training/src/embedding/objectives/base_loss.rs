//! The base loss under the Matryoshka modifiers (MRL, ESE, 2D), chosen by the data format:
//! InfoNCE for unlabeled sentences (SimCSE: two dropout views are the positive pair), MNRL for
//! pairs and triplets (in-batch negatives, an optional hard negative), CoSENT for scored pairs.

use burn::module::Module;
use burn::tensor::Tensor;
use mrl_core::{
    CosentLoss, CosentLossConfig, EmbeddingInputs, EmbeddingLoss, InfoNceLoss, InfoNceLossConfig,
    MrlError, MultipleNegativesRankingLoss, MultipleNegativesRankingLossConfig,
};

use crate::embedding::config::DataFormat;

/// InfoNCE, MNRL or CoSENT, by data format.
#[derive(Module, Debug)]
pub struct BaseLoss {
    /// InfoNCE (SimCSE).
    pub info_nce: InfoNceLoss,
    /// Multiple-negatives ranking.
    pub mnrl: MultipleNegativesRankingLoss,
    /// CoSENT.
    pub cosent: CosentLoss,
    /// Which of the three is used.
    #[module(skip)]
    pub format: DataFormat,
}

impl BaseLoss {
    /// The base loss for `format`; `temperature` is InfoNCE's.
    pub fn new(format: DataFormat, temperature: f64) -> Self {
        Self {
            info_nce: InfoNceLossConfig::new()
                .with_temperature(temperature)
                .init(),
            mnrl: MultipleNegativesRankingLossConfig::new().init(),
            cosent: CosentLossConfig::new().init(),
            format,
        }
    }
}

impl EmbeddingLoss for BaseLoss {
    fn embedding_loss(
        &self,
        inputs: &EmbeddingInputs,
        step: u64,
    ) -> std::result::Result<Tensor<1>, MrlError> {
        match self.format {
            DataFormat::Sentences => self.info_nce.embedding_loss(inputs, step),
            DataFormat::Pairs | DataFormat::Triplets => self.mnrl.embedding_loss(inputs, step),
            DataFormat::ScoredPairs => self.cosent.embedding_loss(inputs, step),
        }
    }
}
