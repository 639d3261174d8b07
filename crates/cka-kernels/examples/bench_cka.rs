//! Times top-k CKA (forward, and forward + backward) at MIPIC shapes: reference tensor ops vs
//! the nested-prefix op, on every requested device. Prints a Markdown table (median of `--iters`).
//!
//! ```text
//! cargo xtask bench cka --devices flex,ndarray --iters 10
//! cargo run --release -p cka-kernels --example bench_cka -- --devices flex --iters 10
//! cargo run --release -p cka-kernels --example bench_cka -- --shapes 128x768 --skip-reference
//! ```
//!
//! Shapes: B = 16, m ∈ {64, 128}, D ∈ {384, 768}, every token real, six truncated dims
//! (`8 … 256` for D = 384, `16 … 512` for D = 768), the paper k-schedule (gammas 0.2 … 0.7,
//! k_min = 8). The time includes the host-side ranking and the gather of the top-k rows.
#![allow(deprecated)]

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use cka_kernels::{top_k_cka, top_k_cka_reference, CkaError, TopKCkaSpec};

type TopKFn = fn(Tensor<3>, Tensor<2>, Tensor<2>, &TopKCkaSpec) -> Result<Tensor<2>, CkaError>;

fn device(name: &str) -> Device {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Device::flex(),
        #[cfg(feature = "ndarray")]
        "ndarray" => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(Default::default()),
        other => panic!("--devices: `{other}` is not compiled in (flex, ndarray, wgpu)"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time_one(
    f: TopKFn,
    device: &Device,
    shape: [usize; 3],
    spec: &TopKCkaSpec,
    backward: bool,
    iters: usize,
) -> f64 {
    let [b, m, d] = shape;
    let device = if backward {
        device.clone().autodiff()
    } else {
        device.clone()
    };
    let hidden = Tensor::<3>::random([b, m, d], Distribution::Normal(0.0, 1.0), &device);
    let mask = Tensor::<2>::ones([b, m], &device);
    let scores = Tensor::<2>::random([b, m], Distribution::Default, &device);
    let mut times = Vec::with_capacity(iters);
    for it in 0..iters + 2 {
        let h = if backward {
            hidden.clone().require_grad()
        } else {
            hidden.clone()
        };
        let start = Instant::now();
        let cka = f(h.clone(), mask.clone(), scores.clone(), spec).expect("valid input");
        if backward {
            let grads = cka.sum().backward();
            let g = h.grad(&grads).expect("gradient");
            let _ = g.sum().into_scalar::<f32>();
        } else {
            let _ = cka.sum().into_scalar::<f32>();
        }
        if it >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    median(times)
}

fn main() {
    let mut devices = vec!["flex".to_string(), "ndarray".to_string()];
    let mut iters = 10usize;
    let mut shapes = vec![(64, 384), (128, 384), (64, 768), (128, 768)];
    let mut skip_reference = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--devices" => {
                devices = args
                    .next()
                    .expect("--devices LIST")
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            "--iters" => {
                iters = args
                    .next()
                    .expect("--iters N")
                    .parse()
                    .expect("--iters takes a number")
            }
            "--shapes" => {
                shapes = args
                    .next()
                    .expect("--shapes MxD,...")
                    .split(',')
                    .map(|s| {
                        let (m, d) = s.split_once('x').expect("--shapes takes MxD, e.g. 128x768");
                        (
                            m.parse().expect("m is a number"),
                            d.parse().expect("D is a number"),
                        )
                    })
                    .collect()
            }
            "--skip-reference" => skip_reference = true,
            other => panic!(
                "unknown argument `{other}` (known: --devices LIST, --iters N, --shapes MxD,..., --skip-reference)"
            ),
        }
    }
    println!("| device | shape (B, m, D) | pass | reference ms | nested-prefix ms | speed-up |");
    println!("|---|---|---|---:|---:|---:|");
    for name in &devices {
        let dev = device(name);
        for &(m, d) in &shapes {
            // Six truncated dims: D/48 … D/1.5 (8 … 256 for 384, 16 … 512 for 768).
            let dims: Vec<usize> = [48, 24, 12, 6, 3]
                .iter()
                .map(|q| d / q)
                .chain([d * 2 / 3])
                .collect();
            let spec = TopKCkaSpec::paper(dims);
            for backward in [false, true] {
                let reference = if skip_reference {
                    f64::NAN
                } else {
                    time_one(
                        top_k_cka_reference,
                        &dev,
                        [16, m, d],
                        &spec,
                        backward,
                        iters,
                    )
                };
                let fused = time_one(top_k_cka, &dev, [16, m, d], &spec, backward, iters);
                println!(
                    "| {name} | (16, {m}, {d}) | {} | {reference:.1} | {fused:.1} | {:.2}x |",
                    if backward { "fwd+bwd" } else { "fwd" },
                    reference / fused
                );
            }
        }
    }
}
