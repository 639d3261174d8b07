//! Pooling of the fixture's hidden states (the function is `mrl-common`'s, re-exported by `mrl-core`).

use crate::common::*;

#[test]
fn pooling_matches_fixture() {
    for (name, device) in devices() {
        let case = MipicCase::new(&device, DType::F64);
        let [b, _, d] = case.shape();
        let last = case.view_a.last().unwrap().clone();
        let got = pool(last.clone(), case.mask.clone(), Pooling::Mean).unwrap();
        assert_all_close(
            &format!("{name} mean pooling"),
            &host(got),
            &floats(&case.fx["pooled_a"]),
            1e-12,
        );
        let cls = pool(last.clone(), case.mask.clone(), Pooling::Cls).unwrap();
        assert_all_close(
            "cls",
            &host(cls),
            &host(last.slice([0..b, 0..1, 0..d]).reshape([b, d])),
            0.0,
        );
    }
}
