//! Values against the NumPy reference: every divergence in both teacher modes at τ = 1 and 2
//! (with and without τ²) and every reduction, the teacher's top-k, masked cross-entropy, top-1
//! agreement and the full objective.

use crate::common::*;

#[test]
fn divergences_match_reference_in_both_teacher_modes() {
    for (dev_name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for case in Case::all(&device, dtype) {
                for entry in case.fx["divergences"].as_array().unwrap() {
                    let divergence: Divergence =
                        serde_json::from_value(entry["divergence"].clone()).unwrap();
                    assert_eq!(divergence.name(), entry["name"].as_str().unwrap());
                    let tau = entry["temperature"].as_f64().unwrap();
                    let mode = entry["mode"].as_str().unwrap();
                    let what = format!(
                        "{dev_name} {dtype:?} {} {divergence} {mode} τ={tau}",
                        case.name()
                    );
                    let teacher = case.teacher(mode, tau, &device, dtype);
                    let loss = kd(divergence, tau);

                    let per_token = loss.forward_no_reduction(
                        case.student.clone(),
                        &teacher,
                        case.mask.clone(),
                    );
                    assert_eq!(per_token.dims(), [case.shape[0], case.shape[1]]);
                    assert_all_close(
                        &format!("{what} per token"),
                        &host(per_token),
                        &floats(&entry["per_token"]),
                        tol,
                    );

                    for (reduction, key) in [
                        (Reduction::Mean, "mean"),
                        (Reduction::Auto, "mean"),
                        (Reduction::Sum, "sum"),
                        (Reduction::BatchMean, "batch_mean"),
                    ] {
                        let out = loss.forward(
                            case.student.clone(),
                            &teacher,
                            case.mask.clone(),
                            reduction,
                        );
                        let want = entry[key].as_f64().unwrap();
                        assert_close(&format!("{what} {key}"), scalar(&out.loss), want, tol);
                        assert_eq!(out.terms[0].0, divergence.name());
                        assert_close(
                            &format!("{what} {key} term"),
                            scalar(&out.terms[0].1),
                            want,
                            tol,
                        );
                        if let Divergence::AdaptiveKl { .. } = divergence {
                            let names: Vec<&str> = out.terms.iter().map(|(n, _)| *n).collect();
                            assert_eq!(names, ["akl", "fkl", "rkl", "akl_head_weight"]);
                            if key == "mean" {
                                for (i, k) in
                                    [(1, "fkl_mean"), (2, "rkl_mean"), (3, "head_weight_mean")]
                                {
                                    assert_close(
                                        &format!("{what} {k}"),
                                        scalar(&out.terms[i].1),
                                        entry[k].as_f64().unwrap(),
                                        tol,
                                    );
                                }
                            }
                        } else {
                            assert_eq!(out.terms.len(), 1, "{what}: terms");
                        }
                    }

                    let scaled = KdLossConfig::new(divergence)
                        .with_temperature(tau)
                        .with_temperature_squared(true)
                        .init()
                        .forward(
                            case.student.clone(),
                            &teacher,
                            case.mask.clone(),
                            Reduction::Mean,
                        );
                    assert_close(
                        &format!("{what} mean·τ²"),
                        scalar(&scaled.loss),
                        entry["mean_temperature_squared"].as_f64().unwrap(),
                        tol,
                    );
                }
            }
        }
    }
}

#[test]
fn teacher_top_k_matches_reference_and_feeds_the_same_values() {
    for (dev_name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for case in Case::all(&device, dtype) {
                let k = case.fx["k"].as_u64().unwrap() as usize;
                for tau in [1.0, 2.0] {
                    let what = format!("{dev_name} {dtype:?} {} τ={tau}", case.name());
                    let want = case.top_k(tau, &device, dtype);
                    let got = teacher_top_k(case.teacher.clone(), k, tau);
                    assert_eq!(got.k(), k);
                    assert_eq!(
                        host_int(got.ids.clone()),
                        host_int(want.ids.clone()),
                        "{what} ids"
                    );
                    assert_all_close(
                        &format!("{what} log_probs"),
                        &host(got.log_probs.clone()),
                        &host(want.log_probs),
                        tol,
                    );
                    assert_all_close(
                        &format!("{what} tail"),
                        &host(got.tail_log_mass.clone()),
                        &host(want.tail_log_mass),
                        tol,
                    );

                    // The divergences on Rust's own top-k equal the reference's top-k values.
                    let teacher = TeacherTarget::from(got);
                    for entry in case.fx["divergences"].as_array().unwrap() {
                        if entry["mode"] != "top_k" || entry["temperature"].as_f64() != Some(tau) {
                            continue;
                        }
                        let divergence: Divergence =
                            serde_json::from_value(entry["divergence"].clone()).unwrap();
                        let out = kd(divergence, tau).forward(
                            case.student.clone(),
                            &teacher,
                            case.mask.clone(),
                            Reduction::Mean,
                        );
                        assert_close(
                            &format!("{what} {divergence} on teacher_top_k"),
                            scalar(&out.loss),
                            entry["mean"].as_f64().unwrap(),
                            tol,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn masked_cross_entropy_matches_reference() {
    for (dev_name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for case in Case::all(&device, dtype) {
                let what = format!("{dev_name} {dtype:?} {}", case.name());
                let ce = &case.fx["cross_entropy"];
                // The fixture's targets hold -100 at the masked-out positions.
                assert!(ints(&case.fx["targets"]).contains(&-100));
                for (reduction, key) in [
                    (Reduction::Mean, "mean"),
                    (Reduction::Auto, "mean"),
                    (Reduction::Sum, "sum"),
                    (Reduction::BatchMean, "batch_mean"),
                ] {
                    let got = masked_cross_entropy(
                        case.student.clone(),
                        case.targets.clone(),
                        case.mask.clone(),
                        reduction,
                    );
                    assert_close(
                        &format!("{what} CE {key}"),
                        scalar(&got),
                        ce[key].as_f64().unwrap(),
                        tol,
                    );
                }
            }
        }
    }
}

#[test]
fn top1_agreement_matches_reference() {
    for (dev_name, device) in devices() {
        for (dtype, _) in PRECISIONS {
            for case in Case::all(&device, dtype) {
                let got = top1_agreement(
                    case.student.clone(),
                    case.teacher.clone(),
                    case.mask.clone(),
                );
                let want = case.fx["top1_agreement"].as_f64().unwrap();
                assert!(
                    (got - want).abs() < 1e-12,
                    "{dev_name} {dtype:?} {}: {got} vs {want}",
                    case.name()
                );
            }
        }
    }
    // The fixture exercises a fraction strictly between 0 and 1.
    let fx = fixtures();
    let fractions: Vec<f64> = fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["top1_agreement"].as_f64().unwrap())
        .collect();
    assert!(
        fractions.iter().any(|f| *f > 0.0 && *f < 1.0),
        "{fractions:?}"
    );
}

#[test]
fn objective_matches_reference() {
    for (dev_name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for case in Case::all(&device, dtype) {
                for entry in case.fx["objective"].as_array().unwrap() {
                    let divergence: Divergence =
                        serde_json::from_value(entry["divergence"].clone()).unwrap();
                    let tau = entry["temperature"].as_f64().unwrap();
                    let mode = entry["mode"].as_str().unwrap();
                    let what = format!("{dev_name} {dtype:?} {} {divergence} {mode}", case.name());
                    let objective = KdObjectiveConfig::new(
                        KdLossConfig::new(divergence)
                            .with_temperature(tau)
                            .with_temperature_squared(
                                entry["temperature_squared"].as_bool().unwrap(),
                            ),
                    )
                    .with_alpha(entry["alpha"].as_f64().unwrap())
                    .init();
                    let teacher = case.teacher(mode, tau, &device, dtype);
                    let out = objective.forward(
                        case.student.clone(),
                        case.targets.clone(),
                        case.mask.clone(),
                        &teacher,
                        Reduction::Mean,
                    );
                    for (key, got) in [("loss", &out.loss), ("ce", &out.ce), ("kd", &out.kd)] {
                        assert_close(
                            &format!("{what} {key}"),
                            scalar(got),
                            entry[key].as_f64().unwrap(),
                            tol,
                        );
                    }
                    let names: Vec<&str> = out.terms.iter().map(|(n, _)| *n).collect();
                    assert_eq!(&names[..3], ["ce", "kd", divergence.name()], "{what}");

                    // The per-token objective reduces to the same total.
                    let per_token = objective.forward_no_reduction(
                        case.student.clone(),
                        case.targets.clone(),
                        case.mask.clone(),
                        &teacher,
                    );
                    let count: f64 = floats(&case.fx["mask"]).iter().sum();
                    assert_close(
                        &format!("{what} per-token total"),
                        host(per_token).iter().sum::<f64>() / count,
                        entry["loss"].as_f64().unwrap(),
                        tol,
                    );
                }
            }
        }
    }
}
