//! Multiple-negatives ranking loss: values against the NumPy fixture, with and without hard negatives.

use crate::common::*;

#[test]
fn mnrl_matches_numpy_fixture_with_and_without_hard_negatives() {
    let fx = &fixtures()["mnrl"];
    let s = usizes(&fx["shape"]);
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            let t = |v: &Value| tensor(floats(v), [s[0], s[1]], &device, dtype);
            let negatives: Vec<Tensor<2>> =
                fx["negatives"].as_array().unwrap().iter().map(t).collect();
            let loss = MultipleNegativesRankingLossConfig::new().init();
            let what = format!("{name} {dtype:?} MNRL");
            let got = loss.forward_no_reduction(t(&fx["anchors"]), t(&fx["positives"]), &negatives);
            assert_all_close(&what, &host(got), &floats(&fx["per_example"]), tol);
            let got = loss.forward_no_reduction(t(&fx["anchors"]), t(&fx["positives"]), &[]);
            assert_all_close(
                &what,
                &host(got),
                &floats(&fx["per_example_no_negatives"]),
                tol,
            );
            // Without hard negatives MNRL is InfoNCE with τ = 1 / scale.
            let info = InfoNceLossConfig::new().with_temperature(1.0 / 20.0).init();
            let via_info = info.forward_no_reduction(t(&fx["anchors"]), t(&fx["positives"]));
            assert_all_close(
                &what,
                &host(via_info),
                &floats(&fx["per_example_no_negatives"]),
                tol,
            );
        }
    }
}
