#!/usr/bin/env python3
"""Reference values of SRA (Span Representation Alignment, arXiv 2605.01205) for
`distill-objectives`, computed independently in NumPy float64 with explicit loops over examples,
spans and tokens (no batched matrix tricks, so a batching or masking error in the Rust tensor code
cannot be mirrored here).

Writes `crates/distill-objectives/tests/fixtures/sra.json`, which `tests/distill_objectives/sra.rs`
compares against. Run from anywhere:

    python3 crates/distill-objectives/scripts/make_sra_reference.py

Definitions (per example b; spans k shared by the two tokenizations, each model on its own tokens;
per layer pair l with states hT, hS and centre-of-mass weights aT, aS):

    m_k = sum_{j in k} a_j;  c_k = sum_{j in k} a_j h_j / max(m_k, 1e-5)
    beta_k = mT_k / sum_k mT_k
    cos(x, y) = x.y / (max(|x|, 1e-8) max(|y|, 1e-8))
    COM_b = sum_l w_l sum_k beta_k (1 - cos(P_l cS_k, cT_k))          (w_l normalised to sum 1)
    GEO_b = gamma sum_{k != k'} pi_kk' (cos(cS_k, cS_k') - cos(cT_k, cT_k'))^2   (last pair)
            pi_kk' = beta_k beta_k' / sum_{k != k'} beta_k beta_k'; 0 with fewer than 2 spans
    LOGIT_b = sum_k KL(softmax(ET cT_k / tau) || softmax(ES cS_k / tau))          (last pair)
    reduced: mean over b of each; SRA = COM + GEO + LOGIT

Centre-of-mass weights from attention A [H, L, L] of one example with n real tokens:
    q = n - 1;  a_j = sum_h A[h, q, j] / sum_{j' < n} sum_h A[h, q, j']   (j < n; 0 at padding)
"""

import json
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "sra.json")


def cos(x, y):
    return float(np.dot(x, y)) / (max(np.linalg.norm(x), 1e-8) * max(np.linalg.norm(y), 1e-8))


def softmax(z):
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def centre(tokens, a, h):
    mass = sum(a[j] for j in tokens)
    c = sum(a[j] * h[j] for j in tokens) / max(mass, 1e-5)
    return mass, c


def example_terms(case, b):
    spans = case["spans"][b]
    K = len(spans)
    pairs = case["pairs"]
    wsum = sum(p["weight"] for p in pairs)
    com = 0.0
    for p_idx, p in enumerate(pairs):
        hT = np.array(case["teacher_hidden"][p["teacher_layer"]][b])
        hS = np.array(case["student_hidden"][p["student_layer"]][b])
        aT = case["teacher_weights"][p_idx][b]
        aS = case["student_weights"][p_idx][b]
        W = np.array(case["projectors"][p_idx]["weight_out_in"])
        bias = np.array(case["projectors"][p_idx]["bias"])
        masses, cT, cS = [], [], []
        for span in spans:
            m, c = centre(span["teacher"], aT, hT)
            masses.append(m)
            cT.append(c)
            cS.append(centre(span["student"], aS, hS)[1])
        total = sum(masses)
        beta = [m / total for m in masses] if K else []
        term = 0.0
        for k in range(K):
            term += beta[k] * (1.0 - cos(W @ cS[k] + bias, cT[k]))
        com += p["weight"] / wsum * term
    # last pair: geometric and logit terms
    geo = 0.0
    if K >= 2:
        num, den = 0.0, 0.0
        for k in range(K):
            for k2 in range(K):
                if k == k2:
                    continue
                pi = beta[k] * beta[k2]
                den += pi
                num += pi * (cos(cS[k], cS[k2]) - cos(cT[k], cT[k2])) ** 2
        geo = case["geo_weight"] * num / den
    ET = np.array(case["teacher_head"])
    ES = np.array(case["student_head"])
    tau = case["temperature"]
    logit = 0.0
    for k in range(K):
        p = softmax(ET @ cT[k] / tau)
        q = softmax(ES @ cS[k] / tau)
        logit += float(np.sum(p * (np.log(p) - np.log(q))))
    return {"com": com, "geo": geo, "logit": logit, "loss": com + geo + logit, "spans": K}


def com_weights(A, n):
    H, L, _ = A.shape
    q = n - 1
    row = [sum(A[h, q, j] for h in range(H)) if j < n else 0.0 for j in range(L)]
    total = sum(row)
    return [r / total for r in row]


def attention(rng, H, L, n):
    """Causal softmax attention over the n real keys (padding rows arbitrary)."""
    A = np.zeros((H, L, L))
    for h in range(H):
        for i in range(L):
            keys = min(i + 1, n) if i < n else n
            s = rng.normal(0, 1.5, size=keys)
            A[h, i, :keys] = softmax(s)
    return A


def make_case(seed, batch, seq_t, seq_s, d_t, d_s, layers_t, layers_s, pairs, spans, lengths_t,
              lengths_s, vocab, geo_weight=50.0, temperature=2.0, heads=3):
    rng = np.random.default_rng(seed)
    case = {
        "seed": seed, "batch": batch, "seq_t": seq_t, "seq_s": seq_s, "teacher_width": d_t,
        "student_width": d_s, "pairs": pairs, "spans": spans, "geo_weight": geo_weight,
        "temperature": temperature, "lengths_t": lengths_t, "lengths_s": lengths_s, "heads": heads,
    }
    case["teacher_hidden"] = [rng.normal(0, 1, size=(batch, seq_t, d_t)).tolist()
                              for _ in range(layers_t)]
    case["student_hidden"] = [rng.normal(0, 1, size=(batch, seq_s, d_s)).tolist()
                              for _ in range(layers_s)]
    # centre-of-mass weights from attention, one set per pair
    case["teacher_attention"], case["student_attention"] = [], []
    case["teacher_weights"], case["student_weights"] = [], []
    for _ in pairs:
        At = [attention(rng, heads, seq_t, lengths_t[b]) for b in range(batch)]
        As = [attention(rng, heads, seq_s, lengths_s[b]) for b in range(batch)]
        case["teacher_attention"].append([a.tolist() for a in At])
        case["student_attention"].append([a.tolist() for a in As])
        case["teacher_weights"].append([com_weights(At[b], lengths_t[b]) for b in range(batch)])
        case["student_weights"].append([com_weights(As[b], lengths_s[b]) for b in range(batch)])
    case["projectors"] = [
        {"weight_out_in": (rng.normal(0, 1, size=(d_t, d_s)) / math.sqrt(d_s)).tolist(),
         "bias": rng.normal(0, 0.1, size=d_t).tolist()}
        for _ in pairs
    ]
    case["teacher_head"] = rng.normal(0, 1, size=(vocab, d_t)).tolist()
    case["student_head"] = rng.normal(0, 1, size=(vocab, d_s)).tolist()
    per = [example_terms(case, b) for b in range(batch)]
    case["examples"] = per
    case["reduced"] = {k: sum(e[k] for e in per) / batch for k in ("com", "geo", "logit", "loss")}
    case["reduced"]["spans"] = sum(e["spans"] for e in per)
    return case


def main():
    cases = []
    # Case 1: two pairs (weights 1 and 3), equal widths, three examples: 3 spans (one holding two
    # teacher tokens that end at the same character), 1 span (no geometric term), 2 spans;
    # padding on both sides.
    cases.append(make_case(
        seed=1, batch=3, seq_t=7, seq_s=6, d_t=5, d_s=5, layers_t=4, layers_s=3,
        pairs=[{"teacher_layer": 2, "student_layer": 1, "weight": 1.0},
               {"teacher_layer": 3, "student_layer": 2, "weight": 3.0}],
        spans=[
            [{"teacher": [2, 3], "student": [2]}, {"teacher": [4], "student": [3, 4]},
             {"teacher": [5], "student": [5]}],
            [{"teacher": [1, 2, 3], "student": [1, 2]}],
            [{"teacher": [3], "student": [2]}, {"teacher": [4, 5], "student": [3]}],
        ],
        lengths_t=[7, 5, 6], lengths_s=[6, 4, 5], vocab=6))
    # Case 2: one pair, d_S != d_T, gamma 10, tau 1, an example without spans.
    cases.append(make_case(
        seed=2, batch=2, seq_t=6, seq_s=7, d_t=6, d_s=4, layers_t=2, layers_s=2,
        pairs=[{"teacher_layer": 1, "student_layer": 1, "weight": 1.0}],
        spans=[
            [{"teacher": [1], "student": [1, 2]}, {"teacher": [2, 3], "student": [3]},
             {"teacher": [4], "student": [4, 5]}, {"teacher": [5], "student": [6]}],
            [],
        ],
        lengths_t=[6, 3], lengths_s=[7, 3], vocab=5, geo_weight=10.0, temperature=1.0))
    with open(OUT, "w") as f:
        json.dump({"generator": "crates/distill-objectives/scripts/make_sra_reference.py",
                   "cases": cases}, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
