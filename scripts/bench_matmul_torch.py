"""The matrix products of crates/models/examples/bench_matmul.rs in PyTorch (CPU, 2 threads).

Same shapes, same transposed views; prints one line per product and their total.

    $REF_VENV/bin/python scripts/bench_matmul_torch.py [repetitions]
"""
import sys
import time

import torch

ROWS = 416
PRODUCTS = [
    ("attention in/out X·W", (ROWS, 384), False, (384, 384), False),
    ("FFN up X·W", (ROWS, 384), False, (384, 1536), False),
    ("FFN down X·W", (ROWS, 1536), False, (1536, 384), False),
    ("FFN up ∂Y·Wᵀ", (ROWS, 1536), False, (384, 1536), True),
    ("FFN down ∂Y·Wᵀ", (ROWS, 384), False, (1536, 384), True),
    ("FFN up Xᵀ·∂Y", (ROWS, 384), True, (ROWS, 1536), False),
    ("FFN down Xᵀ·∂Y", (ROWS, 1536), True, (ROWS, 384), False),
    ("attention in/out Xᵀ·∂Y", (ROWS, 384), True, (ROWS, 384), False),
]


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    if reps <= 0:
        raise SystemExit("repetitions must be a positive integer")
    torch.set_num_threads(2)
    total = 0.0
    for what, lhs, lhs_t, rhs, rhs_t in PRODUCTS:
        a, b = torch.rand(*lhs), torch.rand(*rhs)
        a, b = (a.t() if lhs_t else a), (b.t() if rhs_t else b)
        for _ in range(10):
            a @ b
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        seconds = (time.perf_counter() - start) / reps
        total += seconds
        (rows, inner), cols = a.shape, b.shape[1]
        gflops = 2 * rows * inner * cols / seconds / 1e9
        print(f"{what:<24} {rows}x{inner}x{cols}: {seconds * 1e3:.3f} ms  {gflops:.1f} GFLOP/s")
    print(f"total {total * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
