//! InfoNCE (SimCSE): values against the NumPy fixture, and the batch-of-one panic.

use crate::common::*;

#[test]
fn info_nce_matches_numpy_fixture() {
    let fx = &fixtures()["info_nce"];
    let s = usizes(&fx["shape"]);
    let want = floats(&fx["per_example"]);
    for (name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            let a = tensor(floats(&fx["anchors"]), [s[0], s[1]], &device, dtype);
            let p = tensor(floats(&fx["positives"]), [s[0], s[1]], &device, dtype);
            let loss = InfoNceLossConfig::new()
                .with_temperature(fx["temperature"].as_f64().unwrap())
                .init();
            let what = format!("{name} {dtype:?} InfoNCE");
            assert_all_close(
                &what,
                &host(loss.forward_no_reduction(a.clone(), p.clone())),
                &want,
                tol,
            );
            let mean = want.iter().sum::<f64>() / want.len() as f64;
            assert_close(
                &what,
                scalar(&loss.forward(a.clone(), p.clone(), Reduction::Mean)),
                mean,
                tol,
            );
            assert_close(
                &what,
                scalar(&loss.forward(a, p, Reduction::Sum)),
                mean * want.len() as f64,
                tol,
            );
        }
    }
}

#[test]
#[should_panic(expected = "InfoNceLoss: `anchors` has batch size 1")]
fn info_nce_forward_panics_on_a_batch_of_one() {
    let (_, device) = devices().remove(0);
    let _ = InfoNceLossConfig::new().init().forward(
        random2([1, 4], &device),
        random2([1, 4], &device),
        Reduction::Mean,
    );
}
