"""scikit-learn's LogisticRegression on the same embeddings `mrl eval --task classification` probes.

Dump the embeddings at one dim with `mrl encode` (truncated and L2-normalised, as the probe sees
them), then fit scikit-learn's default `LogisticRegression()` (and, with --tol, a tighter one)
and print test accuracy and macro-F1 x100, to set beside `mrl eval`'s numbers.

    cut -f2 $MRL_SHARED/data/banking77_train.tsv | tail -n +2 > train.txt
    cut -f2 $MRL_SHARED/data/banking77_test.tsv | tail -n +2 > test.txt
    mrl encode --model all-MiniLM-L6-v2 --input train.txt --dim 384 --output train.jsonl
    mrl encode --model all-MiniLM-L6-v2 --input test.txt --dim 384 --output test.jsonl
    python3 crates/mrl-eval/scripts/probe_vs_sklearn.py \
        --train $MRL_SHARED/data/banking77_train.tsv --train-emb train.jsonl \
        --test $MRL_SHARED/data/banking77_test.tsv --test-emb test.jsonl
"""

import argparse
import json
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def labels(path):
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [r[0].strip() for r in rows if r and r[0].strip()]


def embeddings(path):
    with open(path, encoding="utf-8") as f:
        return np.array([json.loads(line) for line in f if line.strip()], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--train-emb", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--test-emb", required=True)
    ap.add_argument("--tol", type=float, nargs="*", default=[1e-4, 1e-5])
    args = ap.parse_args()
    ytr, yte = labels(args.train), labels(args.test)
    xtr, xte = embeddings(args.train_emb), embeddings(args.test_emb)
    assert len(ytr) == len(xtr) and len(yte) == len(xte), (len(ytr), len(xtr), len(yte), len(xte))
    for tol in args.tol:
        for max_iter in (100, 10_000):
            start = time.time()
            clf = LogisticRegression(tol=tol, max_iter=max_iter).fit(xtr, ytr)
            pred = clf.predict(xte)
            print(
                f"tol {tol:g} max_iter {max_iter}: {int(clf.n_iter_[0])} iterations, "
                f"{time.time() - start:.1f} s, accuracy {100 * accuracy_score(yte, pred):.2f}, "
                f"macro-F1 {100 * f1_score(yte, pred, average='macro'):.2f}"
            )


if __name__ == "__main__":
    main()
