#!/usr/bin/env python3
"""PyTorch eager timing of the same MIPIC loss as `crates/mrl-core/examples/bench_mipic.rs`.

Never used by tests. Run:

    /tmp/ref-venv/bin/python scripts/bench_mipic_torch.py --threads 2 --iters 10

Same shapes and presets as the Rust example: B = 16, m = 64 (real lengths 64 down to 41), two
SimCSE views; MiniLM-L6 (D = 384, 7 hidden states, mean pooling, dims 8..384, SIA layers 1..6,
chain (8,1)..(384,6)) and BERT-base (D = 768, 13 hidden states, CLS pooling, dims 16..768,
SIA layers 2,4,6,8,9,10,12, chain (16,2)..(768,12)); alpha 0.4, tau 0.05, paper top-k schedule.
Top-k CKA uses the batched sample-space form (k x k Grams per dim), the strongest PyTorch
baseline measured in ../shared/README.md. Only the loss is timed (forward, backward, reading the
total), with fresh random hidden states each iteration, exactly like the Rust example.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

PRESETS = {
    "minilm": dict(name="MiniLM-L6", hidden=384, dims=[8, 16, 32, 64, 128, 256, 384], layers=[1, 2, 3, 4, 5, 6],
                   chain=[(8, 1), (16, 2), (32, 3), (64, 4), (128, 5), (384, 6)], n_hidden=7, pooling="mean"),
    "bert": dict(name="BERT-base", hidden=768, dims=[16, 32, 64, 128, 256, 512, 768], layers=[2, 4, 6, 8, 9, 10, 12],
                 chain=[(16, 2), (32, 4), (64, 6), (128, 8), (256, 9), (512, 10), (768, 12)], n_hidden=13,
                 pooling="cls"),
}
TAU, ALPHA, K_MIN, EPS2 = 0.05, 0.4, 8, 1e-12
GAMMAS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


def info_nce(u, v, tau):
    logits = F.normalize(u, dim=-1) @ F.normalize(v, dim=-1).T / tau
    return F.cross_entropy(logits, torch.arange(len(u)))


def pool(h, mask, how):
    if how == "cls":
        return h[:, 0]
    w = mask.unsqueeze(-1)
    return (h * w).sum(1) / w.sum(1).clamp_min(1e-9)


def top_k_cka_losses(h, mask, scores, dims):
    """1 - CKA per truncated dim (batch mean): one ranking per example, nested sets, padding-aware."""
    B, m, D = h.shape
    lengths = mask.sum(1).long().tolist()
    ks = [[min(n, max(K_MIN, math.ceil(g * n))) for g in GAMMAS[: len(dims)]] for n in lengths]
    kmax = max(max(r) for r in ks)
    order = torch.sort(scores.masked_fill(mask == 0, -math.inf), dim=1, descending=True, stable=True).indices[:, :kmax]
    sel = torch.gather(h, 1, order.unsqueeze(-1).expand(-1, -1, D))  # [B, K, D]
    out = []
    for i, d in enumerate(dims):
        w = torch.tensor([[1.0 if a < ks[b][i] else 0.0 for a in range(kmax)] for b in range(B)]).unsqueeze(-1)
        cnt = w.sum(1, keepdim=True)

        def centre(x):
            return (x - (x * w).sum(1, keepdim=True) / cnt) * w

        xc, yc = centre(sel[:, :, :d]), centre(sel)
        kx, ky = xc @ xc.transpose(1, 2), yc @ yc.transpose(1, 2)
        cka = (kx * ky).sum((1, 2)) / (((kx * kx).sum((1, 2)) + EPS2).sqrt() * ((ky * ky).sum((1, 2)) + EPS2).sqrt())
        out.append(1.0 - cka.mean())
    return out


def sia(hs, mask, lifts, p):
    D = p["hidden"]
    sia_dims = [d for d in p["dims"] if d < D]
    pad = (mask - 1.0) * 1e9
    total = 0.0
    for li, l in enumerate(p["layers"]):
        h = hs[l]
        cls = h[:, 0]
        teacher = torch.einsum("bd,bjd->bj", cls, h) / math.sqrt(D)
        lt = F.log_softmax(teacher / TAU + pad, dim=1)
        for i, d in enumerate(sia_dims):
            q = cls @ lifts[li][i].T  # P_i h_CLS, [B, d]
            student = torch.einsum("bd,bjd->bj", q, h[:, :, :d]) / math.sqrt(D)
            ls = F.log_softmax(student / TAU + pad, dim=1)
            total = total + (ls.exp() * (ls - lt) * mask).sum(1).mean()
        total = total + sum(top_k_cka_losses(h, mask, teacher.detach(), sia_dims))
    return total


def pic(hs, projectors, p):
    total = 0.0
    for (d0, l0), (d1, l1), phi in zip(p["chain"][:-1], p["chain"][1:], projectors):
        total = total + info_nce(phi(hs[l0][:, 0, :d0]), hs[l1][:, 0, :d1].detach(), TAU)
    return total


def mipic(views, mask, lifts, projectors, p):
    za, zb = (pool(v[-1], mask, p["pooling"]) for v in views)
    mrl = sum(info_nce(za[:, :d], zb[:, :d], TAU) for d in p["dims"])
    s = 0.5 * (sia(views[0], mask, lifts, p) + sia(views[1], mask, lifts, p))
    c = 0.5 * (pic(views[0], projectors, p) + pic(views[1], projectors, p))
    return ALPHA * mrl + (1 - ALPHA) * (s + c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--shape", choices=["minilm", "bert", "all"], default="all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, m = 16, 64
    mask = torch.tensor([[1.0 if j < m - (b * 3) % 24 else 0.0 for j in range(m)] for b in range(B)])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| shape | implementation | hidden states | median fwd+bwd (ms) | min (ms) | iters |")
    print("|---|---|---|---|---|---|")
    for key in (["minilm", "bert"] if args.shape == "all" else [args.shape]):
        p = PRESETS[key]
        D = p["hidden"]
        sia_dims = [d for d in p["dims"] if d < D]
        lifts = [[torch.nn.Parameter(torch.randn(d, D) / math.sqrt(d)) for d in sia_dims] for _ in p["layers"]]
        projectors = [torch.nn.Sequential(torch.nn.Linear(d0, max(d0, d1) // 2), torch.nn.ReLU(),
                                          torch.nn.Linear(max(d0, d1) // 2, d1))
                      for (d0, _), (d1, _) in zip(p["chain"][:-1], p["chain"][1:])]
        times = []
        for it in range(args.warmup + args.iters):
            views = [[torch.randn(B, m, D, requires_grad=True) for _ in range(p["n_hidden"])] for _ in range(2)]
            start = time.perf_counter()
            loss = mipic(views, mask, lifts, projectors, p)
            loss.backward()
            _ = loss.item()
            _ = views[0][-1].grad.sum().item()
            if it >= args.warmup:
                times.append((time.perf_counter() - start) * 1e3)
        print(f"| {p['name']} (B{B} m{m} D{D}) | PyTorch eager f32 | {p['n_hidden']} | "
              f"{statistics.median(times):.1f} | {min(times):.1f} | {args.iters} |")


if __name__ == "__main__":
    main()
