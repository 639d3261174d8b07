//! PIC: the curriculum adds chain links shallow-first.

use crate::common::*;

#[test]
fn pic_curriculum_adds_links_shallow_first() {
    for (name, device) in devices() {
        let chain = vec![(3, 1), (6, 2), (9, 3), (12, 4)]; // 3 links
        let hs: Vec<Tensor<3>> = (0..5).map(|_| random3([4, 5, 12], &device)).collect();
        let full = PicConfig::new().with_chain(chain.clone()).init(&device);
        let mut warm = PicConfig::new()
            .with_chain(chain.clone())
            .with_warmup_steps(10)
            .init(&device);
        warm.projectors = full.projectors.clone();
        // link i of 3 starts at floor(i * 10 / 3): 0, 3, 6
        assert_eq!(
            (0..3).map(|i| warm.link_start(i)).collect::<Vec<_>>(),
            [0, 3, 6]
        );
        let reference = full.forward(&hs, 0);
        let link = |i: usize| scalar(&reference.links[i].loss);
        for (step, active) in [(0, 1), (2, 1), (3, 2), (5, 2), (6, 3), (1000, 3)] {
            let out = warm.forward(&hs, step);
            let flags: Vec<bool> = out.links.iter().map(|t| t.active).collect();
            let want: Vec<bool> = (0..3).map(|i| i < active).collect();
            assert_eq!(flags, want, "{name}: step {step}");
            let sum: f64 = (0..active).map(link).sum();
            assert_close(
                &format!("{name} step {step}"),
                scalar(&out.total),
                sum,
                1e-6,
            );
            for t in out.links.iter().filter(|t| !t.active) {
                assert_eq!(scalar(&t.loss), 0.0, "{name}: an inactive link reports 0");
            }
        }
        // Without a curriculum the step does not matter.
        assert_eq!(
            scalar(&full.forward(&hs, 7).total),
            scalar(&reference.total)
        );
    }
}
