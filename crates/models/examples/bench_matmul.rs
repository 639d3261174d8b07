//! Matrix products of one MiniLM layer's training step on one Burn device, timed one by one.
//!
//! The eight products of a linear layer's forward and backward at the shapes of
//! `docs/benchmarks.md`'s training steps (416 rows: a batch of 16 sentence pairs of ~13
//! tokens; hidden 384, feed-forward 1536): `X·W`, `∂Y·Wᵀ` and `Xᵀ·∂Y`, with the transposed
//! operands as views, as autodiff hands them over. `scripts/bench_matmul_torch.py` times the
//! same products in PyTorch.
//!
//! ```text
//! cargo run --release -p models --example bench_matmul -- flex 200
//! ```
//! Prints one line per product (milliseconds, GFLOP/s) and their total.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// The mrl binary's allocator, so output buffers are reused as in `mrl train`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rows of the activations.
const ROWS: usize = 416;

/// One product: what it is, then each operand's shape as stored and whether it is used
/// transposed.
type Product = (&'static str, [usize; 2], bool, [usize; 2], bool);

fn main() {
    let mut args = std::env::args().skip(1);
    let device = match args.next().as_deref().unwrap_or("flex") {
        "flex" => Device::flex(),
        #[allow(deprecated)]
        "ndarray" => Device::ndarray(),
        other => panic!("device must be flex or ndarray, got {other:?}"),
    };
    let reps: usize = args
        .next()
        .map(|r| r.parse().expect("repetitions must be a positive integer"))
        .unwrap_or(200);
    assert!(reps > 0, "repetitions must be a positive integer");
    let m = ROWS;
    let products: [Product; 8] = [
        ("attention in/out X·W", [m, 384], false, [384, 384], false),
        ("FFN up X·W", [m, 384], false, [384, 1536], false),
        ("FFN down X·W", [m, 1536], false, [1536, 384], false),
        ("FFN up ∂Y·Wᵀ", [m, 1536], false, [384, 1536], true),
        ("FFN down ∂Y·Wᵀ", [m, 384], false, [1536, 384], true),
        ("FFN up Xᵀ·∂Y", [m, 384], true, [m, 1536], false),
        ("FFN down Xᵀ·∂Y", [m, 1536], true, [m, 384], false),
        ("attention in/out Xᵀ·∂Y", [m, 384], true, [m, 384], false),
    ];
    let mut total = 0.0;
    for (what, lhs, lhs_t, rhs, rhs_t) in products {
        let operand = |shape: [usize; 2], transposed: bool| {
            let t = Tensor::<2>::random(shape, Distribution::Default, &device);
            if transposed {
                t.transpose()
            } else {
                t
            }
        };
        let (a, b) = (operand(lhs, lhs_t), operand(rhs, rhs_t));
        let ([rows, inner], cols) = (a.dims(), b.dims()[1]);
        for _ in 0..10 {
            let _ = a.clone().matmul(b.clone()).into_data();
        }
        let start = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(a.clone().matmul(b.clone()));
        }
        let seconds = start.elapsed().as_secs_f64() / reps as f64;
        total += seconds;
        let gflops = 2.0 * (rows * inner * cols) as f64 / seconds / 1e9;
        println!(
            "{what:<24} {rows}x{inner}x{cols}: {:.3} ms  {gflops:.1} GFLOP/s",
            seconds * 1e3
        );
    }
    println!("total {:.3} ms", total * 1e3);
}
