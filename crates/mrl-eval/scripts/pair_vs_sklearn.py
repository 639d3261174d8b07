"""scikit-learn's average precision and an explicit threshold sweep on the cosines that
`mrl eval --task pair` scores, from embeddings dumped with `mrl encode`.

The distinct sentences of the kept pairs (SNLI: neutral dropped) are written one per line,
embedded with `mrl encode --dim D`, then for each dim <= D the embeddings are truncated and
L2-normalised, and the cosines scored: sklearn's `average_precision_score`, and the best
accuracy / F1 of `cos >= t` over every distinct cosine (and +inf), x100.

    python3 crates/mrl-eval/scripts/pair_vs_sklearn.py --data $MRL_SHARED/data/nli_pairs.tsv \
        --write-sentences sentences.txt
    mrl encode --model all-MiniLM-L6-v2 --input sentences.txt --dim 384 --output sentences.jsonl
    python3 crates/mrl-eval/scripts/pair_vs_sklearn.py --data $MRL_SHARED/data/nli_pairs.tsv \
        --embeddings sentences.jsonl --dims 384 64 8
"""

import argparse
import json

import numpy as np
from sklearn.metrics import average_precision_score

POSITIVE = {"1": 1, "0": 0, "entailment": 1, "contradiction": 0}


def pairs(path):
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [(a, b, POSITIVE[label.strip()]) for a, b, label in rows if label.strip() in POSITIVE]


def sweep(scores, labels):
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    last = np.r_[s[1:] != s[:-1], True]  # the end of each group of tied scores
    tp, fp = tp[last], fp[last]
    p, n = y.sum(), len(y) - y.sum()
    acc = np.r_[n, tp + (n - fp)] / len(y)
    f1 = 2 * tp / (2 * tp + fp + (p - tp))
    return acc.max(), f1.max()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--write-sentences")
    ap.add_argument("--embeddings")
    ap.add_argument("--dims", type=int, nargs="*", default=[384])
    args = ap.parse_args()
    rows = pairs(args.data)
    index = {}
    for a, b, _ in rows:
        index.setdefault(a, len(index))
        index.setdefault(b, len(index))
    if args.write_sentences:
        with open(args.write_sentences, "w", encoding="utf-8") as f:
            f.write("\n".join(index) + "\n")
        return
    with open(args.embeddings, encoding="utf-8") as f:
        emb = np.array([json.loads(line) for line in f if line.strip()], dtype=np.float64)
    assert len(emb) == len(index), (len(emb), len(index))
    a = np.array([index[r[0]] for r in rows])
    b = np.array([index[r[1]] for r in rows])
    labels = np.array([r[2] for r in rows])
    for d in args.dims:
        e = emb[:, :d] / np.maximum(np.linalg.norm(emb[:, :d], axis=1, keepdims=True), 1e-12)
        cos = (e[a] * e[b]).sum(axis=1)
        acc, f1 = sweep(cos, labels)
        print(f"dim {d}: accuracy {100 * acc:.2f}, F1 {100 * f1:.2f}, "
              f"AP {100 * average_precision_score(labels, cos):.2f}")


if __name__ == "__main__":
    main()
