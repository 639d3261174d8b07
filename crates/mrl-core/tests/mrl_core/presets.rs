//! MIPIC presets: valid, equal to their TOML files under `crates/mrl-core/presets/`, and the notebook switch.

use crate::common::*;

#[test]
fn presets_are_valid_and_match_their_toml_files() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/presets");
    for preset in MipicPreset::ALL {
        let config = preset.config();
        config
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", preset.name()));
        assert_eq!(MipicPreset::from_name(preset.name()), Some(preset));
        let path = format!("{dir}/mipic-{}.toml", preset.name());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let parsed: MipicConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            format!("{parsed:?}"),
            format!("{config:?}"),
            "{path} differs from MipicPreset::{preset:?}"
        );
        assert_eq!(
            config.sia_dims().len(),
            6,
            "{}: six truncated dims, six gammas",
            preset.name()
        );
        assert_eq!(config.chain.last().unwrap().0, config.hidden_size);
    }
    let minilm = MipicPreset::MiniLmL6.config();
    assert_eq!(minilm.dims, [8, 16, 32, 64, 128, 256, 384]);
    assert_eq!(minilm.sia_layers, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        minilm.chain,
        [(8, 1), (16, 2), (32, 3), (64, 4), (128, 5), (384, 6)]
    );
    assert_eq!(MipicPreset::BgeM3.config().alpha, 0.5);
}

#[test]
fn notebook_switch_sets_the_notebook_weights() {
    let c = MipicPreset::BertBase.config().notebook();
    assert_eq!(
        (c.alpha, c.lambda_att, c.lambda_cka, c.lambda_pic),
        (0.6, 0.0, 0.4, 0.2)
    );
    assert_eq!(c.aggregation, Aggregation::Mean);
    assert_eq!(
        c.cka_schedule,
        SiaCkaSchedule::Notebook {
            budget: 64,
            k_min: 8
        }
    );
}
