#!/usr/bin/env python3
"""Reference values of the `distill-objectives` crate, computed independently in NumPy float64.

Writes `crates/distill-objectives/tests/fixtures/divergences.json`, which the Rust tests
(`tests/distill_objectives/values.rs`) compare against. Run from anywhere:

    python3 crates/distill-objectives/scripts/make_divergence_reference.py

Definitions (p = teacher, q = student, both softmax(logits / tau) over the vocabulary, per
position). They follow DSKD's `code/criterions/various_divergence.py` (arXiv 2406.17328) and
DistiLLM's `distillm/losses.py` (arXiv 2402.03898), re-derived here in plain probability form
(no log-space tricks, so an error in the Rust log-space code cannot be mirrored here):

    fkl      sum p (log p - log q)
    rkl      sum q (log q - log p)
    js       m = beta p + (1-beta) q;  beta KL(p||m) + (1-beta) KL(q||m)     (DSKD: beta = 1/2)
    tv       1/2 sum |p - q|                                                  (DistiLLM tv_distance)
    sfkl     KL(p || lam p + (1-lam) q)                                       (DSKD, lam = 0.1)
    srkl     KL(q || (1-lam) p + lam q)                                       (DSKD, lam = 0.1)
    akl      DSKD compute_adaptive_kl_divergence: sort p ascending, gap = |p - q| in that
             order, tail = ascending cumulative p <= head_ratio, g_head / g_tail = gap sums,
             (g_head fkl + g_tail rkl) / (g_head + g_tail)
    skew_kl  -sum p log(lam p + (1-lam) q)                                    (DistiLLM skewed_forward_kl)

Top-k mode: the teacher's k most likely tokens (of softmax(teacher / tau)) plus one "rest" bucket;
both distributions are coarsened onto these k+1 outcomes and every divergence is evaluated on the
coarsened pair. Reductions: mean = sum over counted positions / number of counted positions,
batch_mean = sum / batch, sum = sum.
"""

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "divergences.json")


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(a, b):
    """sum a log(a / b) with 0 log 0 = 0."""
    out = np.zeros(a.shape[:-1])
    for idx in np.ndindex(*a.shape[:-1]):
        s = 0.0
        for ai, bi in zip(a[idx], b[idx]):
            if ai > 0.0:
                s += ai * np.log(ai / bi)
        out[idx] = s
    return out


def divergence(kind, params, p, q):
    """Per-position divergence of the distributions p (teacher), q (student): [..., C] -> [...]."""
    if kind == "forward_kl":
        return kl(p, q), None
    if kind == "reverse_kl":
        return kl(q, p), None
    if kind == "jensen_shannon":
        beta = params["beta"]
        m = beta * p + (1 - beta) * q
        return beta * kl(p, m) + (1 - beta) * kl(q, m), None
    if kind == "total_variation":
        return 0.5 * np.abs(p - q).sum(-1), None
    if kind == "skewed_forward_kl":
        lam = params["lambda"]
        return kl(p, lam * p + (1 - lam) * q), None
    if kind == "skewed_reverse_kl":
        lam = params["lambda"]
        return kl(q, (1 - lam) * p + lam * q), None
    if kind == "distillm_skew_kl":
        lam = params["lambda"]
        return -(p * np.log(lam * p + (1 - lam) * q)).sum(-1), None
    if kind == "adaptive_kl":
        ratio = params["head_ratio"]
        order = np.argsort(p, axis=-1, kind="stable")  # ascending, as DSKD's torch.sort
        ps = np.take_along_axis(p, order, -1)
        qs = np.take_along_axis(q, order, -1)
        gap = np.abs(ps - qs)
        cum = np.cumsum(ps, -1)
        # The Rust f32 cumsum must land on the same side of the threshold.
        margin = np.abs(cum - ratio).min()
        assert margin > 1e-4, f"cumulative teacher mass {margin} from head_ratio: pick another seed"
        tail = cum <= ratio
        g_head = (gap * ~tail).sum(-1)
        g_tail = (gap * tail).sum(-1)
        fkl, rkl = kl(p, q), kl(q, p)
        w = g_head / (g_head + g_tail)
        return w * fkl + (1 - w) * rkl, {"fkl": fkl, "rkl": rkl, "head_weight": w}
    raise ValueError(kind)


def coarsen(p, ids):
    """The k listed outcomes of p followed by the rest bucket: [..., V] -> [..., k+1]."""
    top = np.take_along_axis(p, ids, -1)
    rest = p.sum(-1) - top.sum(-1)
    return np.concatenate([top, rest[..., None]], -1)


def coarsen_exact(logits_scaled, ids):
    """As coarsen, but the rest mass as a sum over the non-listed tokens (no 1 - sum)."""
    p = softmax(logits_scaled)
    top = np.take_along_axis(p, ids, -1)
    keep = np.ones_like(p, dtype=bool)
    np.put_along_axis(keep, ids, False, -1)
    rest = (p * keep).sum(-1)
    return np.concatenate([top, rest[..., None]], -1)


def reduce(per_token, mask):
    s = float((per_token * mask).sum())
    return {"sum": s, "mean": s / float(mask.sum()), "batch_mean": s / per_token.shape[0]}


DIVERGENCES = [
    ("fkl", {"kind": "forward_kl"}),
    ("rkl", {"kind": "reverse_kl"}),
    ("js", {"kind": "jensen_shannon", "beta": 0.5}),
    ("js", {"kind": "jensen_shannon", "beta": 0.3}),
    ("tv", {"kind": "total_variation"}),
    ("sfkl", {"kind": "skewed_forward_kl", "lambda": 0.1}),
    ("sfkl", {"kind": "skewed_forward_kl", "lambda": 0.3}),
    ("srkl", {"kind": "skewed_reverse_kl", "lambda": 0.1}),
    ("srkl", {"kind": "skewed_reverse_kl", "lambda": 0.3}),
    ("akl", {"kind": "adaptive_kl", "head_ratio": 0.5}),
    ("akl", {"kind": "adaptive_kl", "head_ratio": 0.3}),
    ("skew_kl", {"kind": "distillm_skew_kl", "lambda": 0.1}),
    ("skew_kl", {"kind": "distillm_skew_kl", "lambda": 0.3}),
]
TEMPERATURES = [1.0, 2.0]
K = 3


def make_case(name, seed, batch, seq, vocab, mask):
    rng = np.random.default_rng(seed)
    student = rng.normal(0.0, 3.0, (batch, seq, vocab))
    teacher = 0.6 * student + rng.normal(0.0, 3.0, (batch, seq, vocab))
    # A wide range: a very confident teacher position, a very confident student position and
    # strongly negative logits.
    teacher[0, 1, 4] += 18.0
    student[1, 2, 7] += 15.0
    teacher[1, 3, :3] -= 20.0
    student[0, 0, 5:8] -= 25.0
    mask = np.asarray(mask, dtype=np.float64)
    targets = rng.integers(0, vocab, (batch, seq))
    targets[mask == 0] = -100  # ignored positions may hold anything (HF's ignore index)

    case = {
        "name": name,
        "shape": [batch, seq, vocab],
        "student": student.ravel().tolist(),
        "teacher": teacher.ravel().tolist(),
        "mask": mask.ravel().tolist(),
        "targets": targets.ravel().tolist(),
        "k": K,
        "teacher_top_k": [],
        "divergences": [],
        "objective": [],
    }

    for tau in TEMPERATURES:
        p_full = softmax(teacher / tau)
        q_full = softmax(student / tau)
        # The teacher's top-k: descending probability (no ties in random data).
        ids = np.argsort(-p_full, axis=-1, kind="stable")[..., :K]
        p_top = coarsen_exact(teacher / tau, ids)
        q_top = coarsen_exact(student / tau, ids)
        assert np.allclose(p_top, coarsen(p_full, ids)) and np.allclose(q_top, coarsen(q_full, ids))
        case["teacher_top_k"].append({
            "temperature": tau,
            "ids": ids.ravel().tolist(),
            "log_probs": np.log(p_top[..., :K]).ravel().tolist(),
            "tail_log_mass": np.log(p_top[..., K]).ravel().tolist(),
        })
        for mode, (p, q) in [("full", (p_full, q_full)), ("top_k", (p_top, q_top))]:
            for short, div in DIVERGENCES:
                per_token, extra = divergence(div["kind"], div, p, q)
                per_token = per_token * mask
                entry = {
                    "name": short,
                    "divergence": div,
                    "mode": mode,
                    "temperature": tau,
                    "per_token": per_token.ravel().tolist(),
                    **reduce(per_token, mask),
                }
                entry["mean_temperature_squared"] = entry["mean"] * tau * tau
                if extra is not None:
                    entry["fkl_mean"] = reduce(extra["fkl"], mask)["mean"]
                    entry["rkl_mean"] = reduce(extra["rkl"], mask)["mean"]
                    entry["head_weight_mean"] = reduce(extra["head_weight"], mask)["mean"]
                case["divergences"].append(entry)

    # Masked cross-entropy at temperature 1 (targets aligned with the logits).
    logq = np.log(softmax(student))
    safe = np.where(mask > 0, targets, 0)
    ce = -np.take_along_axis(logq, safe[..., None], -1)[..., 0] * mask
    case["cross_entropy"] = {"per_token": ce.ravel().tolist(), **reduce(ce, mask)}

    # Top-1 agreement over counted positions.
    agree = (student.argmax(-1) == teacher.argmax(-1)).astype(np.float64)
    case["top1_agreement"] = float((agree * mask).sum() / mask.sum())

    # The full objective (1 - alpha) CE + alpha KD.
    for short, div in [("fkl", {"kind": "forward_kl"}), ("akl", {"kind": "adaptive_kl", "head_ratio": 0.5})]:
        for mode in ["full", "top_k"]:
            tau, alpha = 2.0, 0.5
            entry = next(e for e in case["divergences"]
                         if e["divergence"] == div and e["mode"] == mode and e["temperature"] == tau)
            kd = entry["mean_temperature_squared"]
            ce_mean = case["cross_entropy"]["mean"]
            case["objective"].append({
                "divergence": div,
                "mode": mode,
                "temperature": tau,
                "temperature_squared": True,
                "alpha": alpha,
                "ce": ce_mean,
                "kd": kd,
                "loss": (1 - alpha) * ce_mean + alpha * kd,
            })
    return case


def main():
    cases = [
        make_case("b2_s4_v11", 7, 2, 4, 11, [[1, 1, 1, 0], [1, 0, 1, 1]]),
        make_case("b2_s4_v9", 11, 2, 4, 9, [[0, 1, 0, 0], [1, 1, 1, 1]]),
    ]
    out = {
        "generator": "crates/distill-objectives/scripts/make_divergence_reference.py",
        "numpy": np.__version__,
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
