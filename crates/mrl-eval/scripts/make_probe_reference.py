"""Reference values for crates/mrl-eval/src/classification.rs and pair.rs, from scikit-learn.

Writes crates/mrl-eval/tests/fixtures/probe_reference.json with

* `classification`: cases of a Gaussian mixture (fixed seed) fitted with scikit-learn's
  `LogisticRegression()` — lbfgs, L2, C = 1, intercept not penalised — with only `tol`
  tightened to 1e-10 and `max_iter` raised, so that the optimum, not the stopping point, is
  compared. For each case: the train/test features and labels, the coefficients and
  intercepts (intercepts centred to sum 0 across classes for the multinomial case; the
  multinomial optimum has them summing to 0 anyway), the objective at the optimum
  (1/2 ||W||^2 + C * sum_i log-loss_i, computed here in NumPy from sklearn's coefficients),
  the test predictions, accuracy and macro-F1 (x100, `sklearn.metrics`).
  Case `mixture5`: 200 x 16, 5 classes (multinomial); case `mixture2`: 120 x 8, 2 classes
  (sklearn fits a single binary logistic vector there).
* `pair`: cases of cosine-like scores with 0/1 labels, one with many exact ties: the average
  precision (`sklearn.metrics.average_precision_score`), and the best accuracy and best F1 of
  an explicit threshold sweep (predict positive iff score >= t, t over every distinct score
  and +inf), brute force over all thresholds.

Run from the repository root:
    pip install scikit-learn
    python3 crates/mrl-eval/scripts/make_probe_reference.py
"""

import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "probe_reference.json")


def mixture(rng, n, d, k):
    centres = rng.normal(scale=0.45, size=(k, d))
    y = rng.integers(0, k, size=n)
    x = centres[y] + rng.normal(size=(n, d))
    return x, y


def objective(coef, intercept, x, y, c):
    if coef.shape[0] == 1:  # binary: one vector, P(y=1) = sigmoid(x.w + b)
        z = x @ coef[0] + intercept[0]
        loss = np.logaddexp(0.0, z) - y * z
    else:
        z = x @ coef.T + intercept
        zmax = z.max(axis=1, keepdims=True)
        lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
        loss = lse - z[np.arange(len(y)), y]
    return 0.5 * float((coef**2).sum()) + c * float(loss.sum())


def classification_case(name, seed, n_train, n_test, d, k):
    rng = np.random.default_rng(seed)
    x, y = mixture(rng, n_train + n_test, d, k)
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    clf = LogisticRegression(tol=1e-10, max_iter=100_000).fit(xtr, ytr)
    coef, intercept = clf.coef_.copy(), clf.intercept_.copy()
    if k > 2:
        intercept -= intercept.mean()
    pred = clf.predict(xte)
    return {
        "name": name,
        "n_classes": k,
        "n_iter": int(clf.n_iter_[0]),
        "train_x": xtr.tolist(),
        "train_y": ytr.tolist(),
        "test_x": xte.tolist(),
        "test_y": yte.tolist(),
        "coef": coef.tolist(),
        "intercept": intercept.tolist(),
        "objective": objective(clf.coef_, clf.intercept_, xtr, ytr, 1.0),
        "predictions": pred.tolist(),
        "accuracy": 100.0 * accuracy_score(yte, pred),
        "macro_f1": 100.0 * f1_score(yte, pred, average="macro"),
    }


def sweep(scores, labels):
    best_acc, best_f1 = 0.0, 0.0
    for t in sorted(set(scores.tolist())) + [np.inf]:
        pred = scores >= t
        tp = int((pred & (labels == 1)).sum())
        fp = int((pred & (labels == 0)).sum())
        fn = int((~pred & (labels == 1)).sum())
        best_acc = max(best_acc, float((pred == (labels == 1)).mean()))
        best_f1 = max(best_f1, 2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return best_acc, best_f1


def pair_case(name, scores, labels):
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    acc, f1 = sweep(scores, labels)
    return {
        "name": name,
        "scores": scores.tolist(),
        "labels": labels.tolist(),
        "accuracy": 100.0 * acc,
        "f1": 100.0 * f1,
        "ap": 100.0 * float(average_precision_score(labels, scores)),
    }


def main():
    rng = np.random.default_rng(16)
    n = 300
    labels = rng.integers(0, 2, size=n)
    scores = np.tanh(0.8 * labels + rng.normal(scale=0.7, size=n))
    # Coarse scores: many exact ties, across labels.
    tied = np.round(scores, 1)
    tied_labels = labels
    small = ([0.9, 0.8, 0.8, 0.8, 0.3, 0.3, -0.1], [1, 1, 0, 1, 0, 1, 0])
    out = {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "classification": [
            classification_case("mixture5", 7, 200, 100, 16, 5),
            classification_case("mixture2", 8, 120, 60, 8, 2),
        ],
        "pair": [
            pair_case("continuous", scores, labels),
            pair_case("tied", tied, tied_labels),
            pair_case("small_tied", *small),
        ],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for case in out["classification"]:
        print(case["name"], "n_iter", case["n_iter"], "acc", case["accuracy"],
              "macro-F1", case["macro_f1"], "objective", case["objective"])
    for case in out["pair"]:
        print(case["name"], "acc", case["accuracy"], "f1", case["f1"], "ap", case["ap"])


if __name__ == "__main__":
    main()
