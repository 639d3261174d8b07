"""Reference values for the correlation unit tests in crates/mrl-eval/src/correlation.rs.

Run: python3 scripts/make_correlation_reference.py   (needs scipy)
"""
from scipy.stats import pearsonr, spearmanr

CASES = {
    "pearson  x=[1,2,3,4,5] y=[2,4,5,4,5]": pearsonr([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])[0],
    "spearman x=[1,2,2,3,4,5] y=[2,1,4,3,3,6]": spearmanr([1, 2, 2, 3, 4, 5], [2, 1, 4, 3, 3, 6])[0],
    # STS-like: gold scores with many ties, cosine similarities without.
    "spearman gold=[0,0.5,0.5,1.2,2,2,2,3.8,4,5] cos=[.10,.32,.25,.40,.38,.55,.51,.80,.79,.93]": spearmanr(
        [0, 0.5, 0.5, 1.2, 2, 2, 2, 3.8, 4, 5],
        [0.10, 0.32, 0.25, 0.40, 0.38, 0.55, 0.51, 0.80, 0.79, 0.93],
    )[0],
    "pearson  gold=[0,0.5,0.5,1.2,2,2,2,3.8,4,5] cos=[.10,.32,.25,.40,.38,.55,.51,.80,.79,.93]": pearsonr(
        [0, 0.5, 0.5, 1.2, 2, 2, 2, 3.8, 4, 5],
        [0.10, 0.32, 0.25, 0.40, 0.38, 0.55, 0.51, 0.80, 0.79, 0.93],
    )[0],
}

for name, value in CASES.items():
    print(f"{name}: {float(value)!r}")
