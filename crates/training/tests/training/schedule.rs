//! The warm-up + cosine learning-rate schedule.

#[test]
fn lr_schedule_warms_up_then_follows_a_cosine() {
    use training::lr_factor;
    assert_eq!(lr_factor(1, 4, 21, 0.0), 0.25);
    assert_eq!(lr_factor(4, 4, 21, 0.0), 1.0);
    assert_eq!(
        lr_factor(5, 4, 21, 0.0),
        1.0,
        "the first step after the warm-up is at the peak"
    );
    assert!(
        (lr_factor(13, 4, 21, 0.0) - 0.5).abs() < 1e-12,
        "half-way down the cosine"
    );
    assert!(
        lr_factor(21, 4, 21, 0.0).abs() < 1e-12,
        "the last step is at the minimum"
    );
    assert!((lr_factor(21, 4, 21, 0.1) - 0.1).abs() < 1e-12);
    assert_eq!(
        lr_factor(1, 0, 10, 0.0),
        1.0,
        "no warm-up: the cosine starts at 1"
    );
}
