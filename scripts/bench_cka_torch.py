#!/usr/bin/env python3
"""PyTorch eager timings of the same top-k CKA computation as `bench_cka` (never used by tests).

    python3 -m venv /tmp/ref-venv && /tmp/ref-venv/bin/pip install torch
    /tmp/ref-venv/bin/python scripts/bench_cka_torch.py --threads 2 --iters 10

Three forms, forward + backward, median ms:
- feature-space batched f32: per dim, ||Xc^T Yc||^2 etc. with batched matmuls;
- sample-space batched f32: per dim, k x k Grams (the strongest PyTorch baseline);
- per-example f64 loop (what the papers' public code does).
Shapes and schedule match crates/cka-kernels/examples/bench_cka.rs (B = 16, all tokens real,
six truncated dims, gammas 0.2..0.7, k_min = 8). Ranking + gather are included, as in Rust.
"""
import argparse
import math
import statistics
import time

import torch

EPS2 = 1e-12


def ks_for(m, n_dims):
    return [min(m, max(8, math.ceil((0.2 + 0.1 * i) * m))) for i in range(n_dims)]


def gather_ranked(hidden, scores, kmax):
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :kmax]
    return torch.gather(hidden, 1, order.unsqueeze(-1).expand(-1, -1, hidden.shape[2]))


def centre(x):
    return x - x.mean(dim=1, keepdim=True)


def cka_sample(x, y):
    xc, yc = centre(x), centre(y)
    kx, ky = xc @ xc.transpose(1, 2), yc @ yc.transpose(1, 2)
    cross = (kx * ky).sum((1, 2))
    return cross / (((kx * kx).sum((1, 2)) + EPS2).sqrt() * ((ky * ky).sum((1, 2)) + EPS2).sqrt())


def cka_feature(x, y):
    xc, yc = centre(x), centre(y)
    xy, xx, yy = xc.transpose(1, 2) @ yc, xc.transpose(1, 2) @ xc, yc.transpose(1, 2) @ yc
    return (xy * xy).sum((1, 2)) / (((xx * xx).sum((1, 2)) + EPS2).sqrt() * ((yy * yy).sum((1, 2)) + EPS2).sqrt())


def batched(form, hidden, scores, dims):
    ks = ks_for(hidden.shape[1], len(dims))
    sel = gather_ranked(hidden, scores, max(ks))
    total = 0.0
    for d, k in zip(dims, ks):
        total = total + form(sel[:, :k, :d], sel[:, :k, :]).sum()
    return total


def per_example_f64(hidden, scores, dims):
    h64 = hidden.double()
    ks = ks_for(hidden.shape[1], len(dims))
    total = 0.0
    for b in range(hidden.shape[0]):
        order = torch.argsort(scores[b], descending=True, stable=True)
        for d, k in zip(dims, ks):
            sel = h64[b, order[:k]]
            x, y = sel[:, :d], sel
            total = total + cka_feature(x.unsqueeze(0), y.unsqueeze(0)).sum()
    return total


def time_it(fn, hidden, scores, dims, iters):
    times = []
    for it in range(iters + 2):
        h = hidden.clone().requires_grad_(True)
        start = time.perf_counter()
        fn(h, scores, dims).backward()
        _ = h.grad.sum().item()
        if it >= 2:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} threads")
    print("| shape (B, m, D) | feature-space f32 ms | sample-space f32 ms | per-example f64 ms |")
    print("|---|---:|---:|---:|")
    for m, d in [(64, 384), (128, 384), (64, 768), (128, 768)]:
        dims = [8, 16, 32, 64, 128, 256] if d == 384 else [16, 32, 64, 128, 256, 512]
        hidden = torch.randn(16, m, d)
        scores = torch.rand(16, m)
        f = time_it(lambda h, s, ds: batched(cka_feature, h, s, ds), hidden, scores, dims, a.iters)
        s = time_it(lambda h, s, ds: batched(cka_sample, h, s, ds), hidden, scores, dims, a.iters)
        e = time_it(per_example_f64, hidden, scores, dims, max(2, a.iters // 3))
        print(f"| (16, {m}, {d}) | {f:.1f} | {s:.1f} | {e:.1f} |")


if __name__ == "__main__":
    main()
