#!/usr/bin/env python3
"""Reference values of MTA (arXiv 2605.01374) for `distill-objectives`, computed independently in
PyTorch float64 with explicit loops over examples, units and tokens (no batched matrix tricks, so
a batching or masking error in the Rust tensor code cannot be mirrored here).

Writes `crates/distill-objectives/tests/fixtures/mta.json`, which `tests/distill_objectives/mta.rs`
compares against. Run from anywhere:

    python3 crates/distill-objectives/scripts/make_mta_reference.py

Definitions (per example b with n_b real tokens, memberships M_b = pairs (j, u)):

    sigma_i = std(H_i, Bessel) + 1e-5;  Q_i = H_i / sigma_i;  S_ij = Q_i.Q_j / sqrt(D)
    S_ij = -inf for padding keys j and j = i;  A = softmax_j(S);  w_j = (1/n_b) sum_{i real} A_ij
    (entropy switch: teacher w_j = 1 - H(softmax(teacher_logits_j)) / ln V)
    w^_j = w_j / max(sum_{(j,u) in M_b} w_j, 1e-5)
    omega_u = sum_{j in u} w^T_j;  T_u = sum w^T_j hT_j / max(omega_u, 1e-5), L2-normalised (1e-12)
    DSA = sum_b sum_{u != v} omega_u omega_v (GS_uv - GT_uv)^2 / max(sum_b sum_{u != v} omega_u omega_v, 1e-5)
    cos_j = <W hS_j / max(|W hS_j|, 1e-5), hT_j / max(|hT_j|, 1e-5)>
    HRA = sum_b sum_{(j,u) in M_b} w^T_j (1 - cos_j) / max(sum_b sum_{M_b} w^T_j, 1e-5)
    L_pair = dsa_weight DSA + hra_weight HRA;  L_MTA = mean over pairs
Per-example values: the same ratios with the example's own sums.
"""

import json
import math
import os

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "mta.json")
OUT_CROSS = os.path.join(HERE, "..", "tests", "fixtures", "mta_cross.json")
EPS = 1e-5


def token_weights(h, n_real):
    """h: [L, D] of one example (padding rows past n_real are ignored)."""
    L, D = h.shape
    h = h.detach()
    w = torch.zeros(L)
    for i in range(n_real):
        sigma_i = torch.std(h[i], unbiased=True) + 1e-5
        scores = []
        for j in range(n_real):
            if j == i:
                continue
            sigma_j = torch.std(h[j], unbiased=True) + 1e-5
            scores.append((j, float(torch.dot(h[i] / sigma_i, h[j] / sigma_j)) / math.sqrt(D)))
        m = max(s for _, s in scores)
        z = sum(math.exp(s - m) for _, s in scores)
        for j, s in scores:
            w[j] += math.exp(s - m) / z
    return w / n_real


def confidence(logits):
    """1 - H(softmax(logits)) / ln V per row of [L, V]."""
    p = torch.softmax(logits, dim=-1)
    ent = -(p * torch.log(p)).sum(-1)
    return 1.0 - ent / math.log(logits.shape[-1])


def unit_vectors(h, w_hat, units, normalise=True):
    vecs, masses = [], []
    for members in units:
        mass = sum(w_hat[j] for j in members)
        v = sum(w_hat[j] * h[j] for j in members) / max(float(mass), EPS)
        if normalise:
            v = v / torch.clamp(torch.linalg.norm(v), min=1e-12)
        vecs.append(v)
        masses.append(mass)
    return vecs, masses


def cross_pair_sums(hT, hS, wT, wS, units_t, units_s, W, b):
    """Cross-tokenizer sums of one pair for one example: unit u is units_t[u] on the teacher's
    tokens and units_s[u] on the student's."""
    def renorm(w, units):
        members = [j for m in units for j in m]
        total = max(float(sum(w[j] for j in members)), EPS) if members else EPS
        return w / total
    wT_hat = renorm(wT, units_t)
    wS_hat = renorm(wS, units_s)
    T_raw, omega = unit_vectors(hT, wT_hat, units_t, normalise=False)
    S_raw, _ = unit_vectors(hS, wS_hat, units_s, normalise=False)
    T = [v / torch.clamp(torch.linalg.norm(v), min=1e-12) for v in T_raw]
    S = [v / torch.clamp(torch.linalg.norm(v), min=1e-12) for v in S_raw]
    dsa_num = torch.zeros(())
    dsa_den = torch.zeros(())
    U = len(units_t)
    for u in range(U):
        for v in range(U):
            if u == v:
                continue
            weight = omega[u] * omega[v]
            dsa_num = dsa_num + weight * (torch.dot(S[u], S[v]) - torch.dot(T[u], T[v])) ** 2
            dsa_den = dsa_den + weight
    hra_num = torch.zeros(())
    hra_den = torch.zeros(())
    for u in range(U):
        p = W @ S_raw[u] + b
        p = p / torch.clamp(torch.linalg.norm(p), min=EPS)
        t = T_raw[u] / torch.clamp(torch.linalg.norm(T_raw[u]), min=EPS)
        hra_num = hra_num + omega[u] * (1.0 - torch.dot(p, t))
        hra_den = hra_den + omega[u]
    return dsa_num, dsa_den, hra_num, hra_den, U


def pair_sums(hT, hS, wT, wS, units, W, b):
    """Per-example sums of one pair for one example: units = list of member-token lists."""
    pairs = [(j, u) for u, members in enumerate(units) for j in members]
    totT = max(float(sum(wT[j] for j, _ in pairs)), EPS) if pairs else EPS
    totS = max(float(sum(wS[j] for j, _ in pairs)), EPS) if pairs else EPS
    wT_hat = wT / totT
    wS_hat = wS / totS
    T, omega = unit_vectors(hT, wT_hat, units)
    S, _ = unit_vectors(hS, wS_hat, units)
    dsa_num = torch.zeros(())
    dsa_den = torch.zeros(())
    for u in range(len(units)):
        for v in range(len(units)):
            if u == v:
                continue
            weight = omega[u] * omega[v]
            g_s = torch.dot(S[u], S[v])
            g_t = torch.dot(T[u], T[v])
            dsa_num = dsa_num + weight * (g_s - g_t) ** 2
            dsa_den = dsa_den + weight
    hra_num = torch.zeros(())
    hra_den = torch.zeros(())
    for j, _ in pairs:
        p = W @ hS[j] + b
        p = p / torch.clamp(torch.linalg.norm(p), min=EPS)
        t = hT[j] / torch.clamp(torch.linalg.norm(hT[j]), min=EPS)
        hra_num = hra_num + wT_hat[j] * (1.0 - torch.dot(p, t))
        hra_den = hra_den + wT_hat[j]
    return dsa_num, dsa_den, hra_num, hra_den, len(units)


def mta(case, student, projectors, reduction="mean"):
    """Returns (loss, per-pair dict list, per-example losses)."""
    B = len(case["lengths"])
    pairs_out = []
    per_example_pairs = []
    for k, pair in enumerate(case["pairs"]):
        W, bias = projectors[k]
        sums = []
        for e in range(B):
            n = case["lengths"][e]
            hT = case["teacher"][pair["teacher_layer"]][e]
            hS = student[pair["student_layer"]][e]
            if case["entropy"]:
                wT = confidence(case["teacher_logits"][e])
                wT = torch.where(torch.arange(len(wT)) < n, wT, torch.zeros_like(wT))
            else:
                wT = token_weights(hT, n)
            wS = token_weights(hS, n)
            units = [m for m in case[pair["granularity"]][e] if m]
            sums.append(pair_sums(hT, hS, wT.detach(), wS.detach(), units, W, bias))
        dsa = sum(s[0] for s in sums) / max(float(sum(s[1] for s in sums)), EPS)
        hra = sum(s[2] for s in sums) / max(float(sum(s[3] for s in sums)), EPS)
        ex_dsa = [s[0] / max(float(s[1]), EPS) for s in sums]
        ex_hra = [s[2] / max(float(s[3]), EPS) for s in sums]
        if reduction == "sum":
            dsa, hra = sum(ex_dsa), sum(ex_hra)
        loss = case["dsa_weight"] * dsa + case["hra_weight"] * hra
        pairs_out.append({"dsa": dsa, "hra": hra, "loss": loss,
                          "units": sum(s[4] for s in sums)})
        per_example_pairs.append({
            "dsa": ex_dsa, "hra": ex_hra,
            "loss": [case["dsa_weight"] * d + case["hra_weight"] * h for d, h in zip(ex_dsa, ex_hra)],
            "units": [s[4] for s in sums]})
    total = sum(p["loss"] for p in pairs_out) / len(pairs_out)
    per_example = [sum(p["loss"][e] for p in per_example_pairs) / len(per_example_pairs)
                   for e in range(B)]
    return total, pairs_out, per_example_pairs, per_example


def rand(*shape, scale=1.0, shift=0.0):
    return torch.randn(*shape) * scale + shift


def make_case(seed, entropy, dsa_weight=1.0, hra_weight=0.1):
    g = torch.manual_seed(seed)
    B, L, DT, DS, V = 3, 9, 6, 4, 11
    lengths = [9, 7, 5]
    n_teacher, n_student = 4, 3
    # States with a non-zero mean per token, as real hidden states have.
    teacher = [rand(B, L, DT, scale=1.0 + 0.3 * l, shift=0.2 * l) for l in range(n_teacher)]
    student = [rand(B, L, DS, scale=1.0 + 0.2 * l, shift=-0.1 * l) for l in range(n_student)]
    # Padding positions hold garbage that must not matter.
    for hs in teacher + student:
        for e, n in enumerate(lengths):
            hs[e, n:] = 100.0 * torch.randn(L - n, hs.shape[-1])
    teacher_logits = rand(B, L, V, scale=2.0)
    # Units: member-token lists per example (tokens within the real length). Example 0 has a
    # token (4) in two units; example 1 has one word unit only (DSA 0 there) and an empty
    # phrase list; example 2 has a unit with a member at its last real token.
    words = [
        [[1], [2, 3], [4], [4, 5], [7, 8]],
        [[3, 4]],
        [[0], [2], [3, 4]],
    ]
    phrases = [
        [[1, 2, 3], [4, 5, 6, 7, 8]],
        [],
        [[0, 1, 2], [4]],
    ]
    projectors = [(rand(DT, DS, scale=0.5), rand(DT, scale=0.1)) for _ in range(2)]
    pairs = [
        {"teacher_layer": 2, "student_layer": 1, "granularity": "words"},
        {"teacher_layer": 3, "student_layer": 2, "granularity": "phrases"},
    ]
    case = {
        "seed": seed, "batch": B, "seq": L, "teacher_width": DT, "student_width": DS,
        "vocab": V, "lengths": lengths, "pairs": pairs, "words": words, "phrases": phrases,
        "entropy": entropy, "dsa_weight": dsa_weight, "hra_weight": hra_weight,
        "teacher": teacher, "teacher_logits": teacher_logits,
    }
    student = [s.clone().requires_grad_(True) for s in student]
    projectors = [(W.clone().requires_grad_(True), b.clone().requires_grad_(True))
                  for W, b in projectors]
    total, pairs_out, ex_pairs, per_example = mta(case, student, projectors)
    total.backward()
    _, sum_pairs, _, _ = mta(case, student, projectors, reduction="sum")
    weights_t = [token_weights(teacher[2][e], lengths[e]).tolist() for e in range(B)]
    conf = [confidence(teacher_logits[e]).tolist() for e in range(B)]

    def flat(t):
        return t.detach().reshape(-1).tolist()

    return {
        "seed": seed, "batch": B, "seq": L, "teacher_width": DT, "student_width": DS,
        "vocab": V, "lengths": lengths, "pairs": pairs, "words": words, "phrases": phrases,
        "entropy_weighting": entropy, "dsa_weight": dsa_weight, "hra_weight": hra_weight,
        "teacher_hidden": [flat(t) for t in teacher],
        "student_hidden": [flat(s) for s in student],
        "teacher_logits": flat(teacher_logits),
        "projectors": [{"weight_out_in": flat(W), "bias": flat(b)} for W, b in projectors],
        "expected": {
            "mta": float(total.detach()),
            "pairs": [{k: float(v) for k, v in p.items()} for p in pairs_out],
            "pairs_sum": [{k: float(v) for k, v in p.items()} for p in sum_pairs],
            "per_example": [float(x) for x in per_example],
            "per_example_pairs": [{k: [float(x) for x in v] for k, v in p.items()}
                                  for p in ex_pairs],
            "teacher_weights_layer2": weights_t,
            "teacher_confidence": conf,
            "grad_student": [flat(s.grad) if s.grad is not None else [0.0] * s.numel()
                             for s in student],
            "grad_projector_weight_out_in": [flat(W.grad) for W, _ in projectors],
            "grad_projector_bias": [flat(b.grad) for _, b in projectors],
        },
    }


def make_cross_case(seed, dsa_weight=1.0, hra_weight=0.1):
    torch.manual_seed(seed)
    B, LT, LS, DT, DS = 3, 9, 7, 6, 4
    lengths_t, lengths_s = [9, 7, 5], [7, 6, 4]
    teacher = [rand(B, LT, DT, scale=1.0 + 0.3 * l, shift=0.2 * l) for l in range(4)]
    student = [rand(B, LS, DS, scale=1.0 + 0.2 * l, shift=-0.1 * l) for l in range(3)]
    for hs, lengths in [(h, lengths_t) for h in teacher] + [(h, lengths_s) for h in student]:
        for e, n in enumerate(lengths):
            hs[e, n:] = 100.0 * torch.randn(hs.shape[1] - n, hs.shape[-1])
    # Unit u on each side (same count per example and granularity).
    words_t = [[[1], [2, 3], [4, 5], [7, 8]], [[3, 4]], [[0], [2], [3, 4]]]
    words_s = [[[1], [2], [3, 4], [5, 6]], [[2, 3, 4]], [[0], [1, 2], [3]]]
    phrases_t = [[[1, 2, 3], [4, 5, 6, 7, 8]], [], [[0, 1, 2], [4]]]
    phrases_s = [[[1, 2], [3, 4, 5, 6]], [], [[0, 1], [3]]]
    projectors = [(rand(DT, DS, scale=0.5), rand(DT, scale=0.1)) for _ in range(2)]
    pairs = [
        {"teacher_layer": 2, "student_layer": 1, "granularity": "words"},
        {"teacher_layer": 3, "student_layer": 2, "granularity": "phrases"},
    ]
    units = {"words": (words_t, words_s), "phrases": (phrases_t, phrases_s)}
    student = [s.clone().requires_grad_(True) for s in student]
    projectors = [(W.clone().requires_grad_(True), b.clone().requires_grad_(True))
                  for W, b in projectors]
    pairs_out, ex_pairs = [], []
    for k, pair in enumerate(pairs):
        W, bias = projectors[k]
        sums = []
        for e in range(B):
            hT = teacher[pair["teacher_layer"]][e]
            hS = student[pair["student_layer"]][e]
            wT = token_weights(hT, lengths_t[e])
            wS = token_weights(hS, lengths_s[e])
            ut, us = units[pair["granularity"]]
            sums.append(cross_pair_sums(hT, hS, wT, wS, ut[e], us[e], W, bias))
        dsa = sum(s[0] for s in sums) / max(float(sum(s[1] for s in sums)), EPS)
        hra = sum(s[2] for s in sums) / max(float(sum(s[3] for s in sums)), EPS)
        ex_dsa = [s[0] / max(float(s[1]), EPS) for s in sums]
        ex_hra = [s[2] / max(float(s[3]), EPS) for s in sums]
        pairs_out.append({"dsa": dsa, "hra": hra, "loss": dsa_weight * dsa + hra_weight * hra,
                          "units": sum(s[4] for s in sums)})
        ex_pairs.append({"dsa": ex_dsa, "hra": ex_hra,
                         "loss": [dsa_weight * d + hra_weight * h for d, h in zip(ex_dsa, ex_hra)]})
    total = sum(p["loss"] for p in pairs_out) / len(pairs_out)
    total.backward()

    def flat(t):
        return t.detach().reshape(-1).tolist()

    return {
        "seed": seed, "batch": B, "seq_t": LT, "seq_s": LS, "teacher_width": DT,
        "student_width": DS, "lengths_t": lengths_t, "lengths_s": lengths_s, "pairs": pairs,
        "words_t": words_t, "words_s": words_s, "phrases_t": phrases_t, "phrases_s": phrases_s,
        "dsa_weight": dsa_weight, "hra_weight": hra_weight,
        "teacher_hidden": [flat(t) for t in teacher],
        "student_hidden": [flat(s) for s in student],
        "projectors": [{"weight_out_in": flat(W), "bias": flat(b)} for W, b in projectors],
        "expected": {
            "mta": float(total.detach()),
            "pairs": [{k: float(torch.as_tensor(v).detach()) for k, v in p.items()} for p in pairs_out],
            "per_example_pairs": [{k: [float(torch.as_tensor(x).detach()) for x in v] for k, v in p.items()}
                                  for p in ex_pairs],
            "grad_student": [flat(s.grad) if s.grad is not None else [0.0] * s.numel()
                             for s in student],
        },
    }


def main():
    cases = [make_case(7, entropy=False), make_case(8, entropy=True),
             make_case(9, entropy=False, dsa_weight=0.0, hra_weight=1.0)]
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/make_mta_reference.py", "cases": cases}, f)
        f.write("\n")
    cross = [make_cross_case(17)]
    with open(OUT_CROSS, "w") as f:
        json.dump({"generator": "scripts/make_mta_reference.py", "cases": cross}, f)
        f.write("\n")
    print(f"cross seed 17: mta = {cross[0]['expected']['mta']:.10f}")
    for c in cases:
        print(f"seed {c['seed']}: mta = {c['expected']['mta']:.10f}, pairs = "
              + ", ".join(f"dsa {p['dsa']:.6f} hra {p['hra']:.6f}" for p in c["expected"]["pairs"]))


if __name__ == "__main__":
    main()
