#!/usr/bin/env python3
"""Reference values of DSKD with cross-model attention (DSKD-CMA, arXiv 2406.17328) for
`distill-objectives`, computed independently in NumPy float64 with explicit loops over
examples and positions (DSKD's `dual_space_kd_with_cross_model_attention.py`, with the standard
deviations taken over the counted positions only, this crate's documented choice).

Writes `crates/distill-objectives/tests/fixtures/dskd_cma.json`, which
`tests/distill_objectives/dskd_cma.rs` compares against. Run from anywhere:

    python3 crates/distill-objectives/scripts/make_dskd_cma_reference.py

Definitions (m_S, m_T counted positions; E / W input / output embeddings; ids zeroed off the mask):

    q_i = Pq([E_S x_i; E_S y_i]);  k_j = [E_T x_j; E_T y_j] / std(counted entries of it)
    vT_j = Pt2s(hT_j / std(hT) + E_T y_j / std(E_T y));  vS_i = Ps2t(hS_i)
    A_ij = q_i.k_j / sqrt(2 d_T) + (1 - m_S,i m_T,j) (-1e5)
    t2s_i = W_S sum_j softmax_j(A)_ij vT_j;  s2t_j = W_T sum_i softmax_i(A)_ij vS_i
    t2s_ce = sum_{i in m_S} -log softmax(t2s_i)[y_i]
    t2s_kd = sum_{i in m_S, argmax t2s_i = y_i} KL(softmax(t2s_i/tau) || softmax(z_S,i/tau))   (forward KL)
    s2t_kd = sum_{j in m_T} KL(softmax(z_T,j/tau) || softmax(s2t_j/tau))
    loss = (t2s_ce + t2s_kd + s2t_kd) / sum m_S
"""

import json
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "dskd_cma.json")


def log_softmax(z):
    z = z - z.max()
    return z - math.log(np.exp(z).sum())


def std_counted(rows):
    """Bessel std of the entries of the listed vectors."""
    x = np.concatenate(rows)
    return float(np.std(x, ddof=1))


def kl(logp, logq):
    return float(np.sum(np.exp(logp) * (logp - logq)))


def make_case(seed, B, S, T, dS, dT, VS, VT, lengths_s, lengths_t, tau):
    rng = np.random.default_rng(seed)
    # masks: a prompt (first 2 positions not counted) then counted positions up to the length
    mS = [[1.0 if 2 <= i < lengths_s[b] else 0.0 for i in range(S)] for b in range(B)]
    mT = [[1.0 if 1 <= j < lengths_t[b] else 0.0 for j in range(T)] for b in range(B)]
    xS = rng.integers(0, VS, size=(B, S))
    yS = rng.integers(0, VS, size=(B, S))
    xT = rng.integers(0, VT, size=(B, T))
    yT = rng.integers(0, VT, size=(B, T))
    hS = rng.normal(0, 1, size=(B, S, dS))
    hT = rng.normal(0.3, 2.0, size=(B, T, dT))
    zS = rng.normal(0, 2, size=(B, S, VS))
    zT = rng.normal(0, 2, size=(B, T, VT))
    ES = rng.normal(0, 1, size=(VS, dS))
    WS = rng.normal(0, 1, size=(VS, dS))
    ET = rng.normal(0, 0.5, size=(VT, dT))
    WT = rng.normal(0, 1, size=(VT, dT))
    Pq_w = rng.normal(0, 1, size=(2 * dT, 2 * dS)) / math.sqrt(2 * dS)
    Pq_b = rng.normal(0, 0.1, size=2 * dT)
    Ps2t_w = rng.normal(0, 1, size=(dT, dS)) / math.sqrt(dS)
    Ps2t_b = rng.normal(0, 0.1, size=dT)
    Pt2s_w = rng.normal(0, 1, size=(dS, dT)) / math.sqrt(dT)
    Pt2s_b = rng.normal(0, 0.1, size=dS)
    # A padding position's logits and states are garbage that must not matter.
    for b in range(B):
        hS[b, lengths_s[b]:] = 50.0
        hT[b, lengths_t[b]:] = -50.0

    def formal(ids, m, b, i):
        return ids[b, i] if m[b][i] else 0

    t_index_rows, t_target_rows, t_hidden_rows = [], [], []
    for b in range(B):
        for j in range(T):
            if mT[b][j]:
                t_index_rows.append(np.concatenate([ET[xT[b, j]], ET[yT[b, j]]]))
                t_target_rows.append(ET[yT[b, j]])
                t_hidden_rows.append(hT[b, j])
    s_index = std_counted(t_index_rows)
    s_target = std_counted(t_target_rows)
    s_hidden = std_counted(t_hidden_rows)

    t2s_ce = t2s_kd = s2t_kd = 0.0
    correct = 0
    for b in range(B):
        q = [Pq_w @ np.concatenate([ES[formal(xS, mS, b, i)], ES[formal(yS, mS, b, i)]]) + Pq_b
             for i in range(S)]
        k = [np.concatenate([ET[formal(xT, mT, b, j)], ET[formal(yT, mT, b, j)]]) / s_index
             for j in range(T)]
        vT = [Pt2s_w @ (hT[b, j] / s_hidden + ET[formal(yT, mT, b, j)] / s_target) + Pt2s_b
              for j in range(T)]
        vS = [Ps2t_w @ hS[b, i] + Ps2t_b for i in range(S)]
        A = np.zeros((S, T))
        for i in range(S):
            for j in range(T):
                A[i, j] = float(q[i] @ k[j]) / math.sqrt(2 * dT) + (1 - mS[b][i] * mT[b][j]) * -1e5
        for i in range(S):
            if not mS[b][i]:
                continue
            w = np.exp(A[i] - A[i].max())
            w = w / w.sum()
            h = sum(w[j] * vT[j] for j in range(T))
            logits = WS @ h
            lp = log_softmax(logits)
            t2s_ce += -lp[yS[b, i]]
            if int(np.argmax(logits)) == yS[b, i]:
                correct += 1
                t2s_kd += kl(log_softmax(logits / tau), log_softmax(zS[b, i] / tau))
        for j in range(T):
            if not mT[b][j]:
                continue
            col = A[:, j]
            w = np.exp(col - col.max())
            w = w / w.sum()
            h = sum(w[i] * vS[i] for i in range(S))
            logits = WT @ h
            s2t_kd += kl(log_softmax(zT[b, j] / tau), log_softmax(logits / tau))
    n = sum(sum(r) for r in mS)
    return {
        "seed": seed, "batch": B, "seq_s": S, "seq_t": T, "student_width": dS,
        "teacher_width": dT, "vocab_s": VS, "vocab_t": VT, "temperature": tau,
        "student_mask": mS, "teacher_mask": mT,
        "student_inputs": xS.tolist(), "student_targets": yS.tolist(),
        "teacher_inputs": xT.tolist(), "teacher_targets": yT.tolist(),
        "student_hidden": hS.tolist(), "teacher_hidden": hT.tolist(),
        "student_logits": zS.tolist(), "teacher_logits": zT.tolist(),
        "student_embedding": ES.tolist(), "student_head": WS.tolist(),
        "teacher_embedding": ET.tolist(), "teacher_head": WT.tolist(),
        "query": {"weight_out_in": Pq_w.tolist(), "bias": Pq_b.tolist()},
        "s2t": {"weight_out_in": Ps2t_w.tolist(), "bias": Ps2t_b.tolist()},
        "t2s": {"weight_out_in": Pt2s_w.tolist(), "bias": Pt2s_b.tolist()},
        "expected": {
            "t2s_ce": t2s_ce / n, "t2s_kd": t2s_kd / n, "s2t_kd": s2t_kd / n,
            "loss": (t2s_ce + t2s_kd + s2t_kd) / n, "t2s_acc": correct / n, "counted": n,
        },
    }


def main():
    # Two seeds where the projection predicts some targets (so t2s_kd is not empty); the first
    # with d_S != d_T and tau = 2, the second tau = 1.
    cases = [
        make_case(7, B=2, S=6, T=7, dS=4, dT=5, VS=5, VT=6, lengths_s=[6, 5], lengths_t=[7, 5],
                  tau=2.0),
        make_case(4, B=3, S=5, T=4, dS=3, dT=3, VS=3, VT=4, lengths_s=[5, 4, 5],
                  lengths_t=[4, 4, 3], tau=1.0),
    ]
    with open(OUT, "w") as f:
        json.dump({"generator": "crates/distill-objectives/scripts/make_dskd_cma_reference.py",
                   "cases": cases}, f)
    for c in cases:
        e = c["expected"]
        print(f"seed {c['seed']}: loss {e['loss']:.6f} t2s_ce {e['t2s_ce']:.6f} "
              f"t2s_kd {e['t2s_kd']:.6f} s2t_kd {e['s2t_kd']:.6f} acc {e['t2s_acc']:.3f}")


if __name__ == "__main__":
    main()
