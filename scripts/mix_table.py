#!/usr/bin/env python3
"""Markdown tables of scripts/mix_results.sh: one per task family, a row per objective (mean ±
population std over seeds; the untrained model first), a column per dim; then MIPIC minus each
other objective (difference of the seed means, and in brackets the larger of the two seed
spreads, max − min).

Usage: python3 scripts/mix_table.py runs/mix-results
       python3 scripts/mix_table.py --baseline mrl runs/mipic-ablation   # every row minus mrl
"""
import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

# (title, file, section of the JSON or None, metric)
TABLES = [
    ("STS-B test, Spearman ×100", "all.json", "sts", "spearman"),
    ("SICK-R test, Spearman ×100", "sickr.json", None, "spearman"),
    ("Banking77, probe accuracy ×100", "all.json", "classification", "accuracy"),
    ("Banking77, probe macro-F1 ×100", "all.json", "classification", "macro_f1"),
    ("SNLI pairs, best-threshold accuracy ×100", "all.json", "pair", "accuracy"),
    ("SNLI pairs, average precision ×100", "all.json", "pair", "ap"),
]


def scores(path: Path, section, metric):
    data = json.loads(path.read_text())
    if section is not None:
        data = data[section]
    return {int(d): v[metric] for d, v in data["dims"].items()}


def main(out: str, baseline=None) -> None:
    root = Path(out)
    runs = defaultdict(list)  # objective -> [scores dir]
    if (root / "untrained").is_dir():
        runs["untrained"].append(root / "untrained")
    for run in sorted(root.glob("*-s*")):
        if run.is_dir() and (run / "scores").is_dir():
            runs[run.name.rsplit("-s", 1)[0]].append(run / "scores")
    if baseline in runs:  # the baseline right after the untrained model
        runs = {k: runs[k] for k in ["untrained", baseline] + sorted(runs) if k in runs}
    if not runs:
        raise SystemExit(f"mix_table.py: no scored runs under {root} (expected untrained/ or <name>-s<seed>/scores/)")
    for title, file, section, metric in TABLES:
        rows = {}
        for objective, dirs in runs.items():
            per_seed = [scores(d / file, section, metric) for d in dirs if (d / file).exists()]
            if per_seed:
                rows[objective] = per_seed
        if not rows:
            continue
        dims = sorted({d for per_seed in rows.values() for s in per_seed for d in s}, reverse=True)
        print(f"\n{title}\n")
        print("| model | seeds | " + " | ".join(str(d) for d in dims) + " |")
        print("|---|---:|" + "---:|" * len(dims))
        for objective, per_seed in rows.items():
            cells = []
            for d in dims:
                values = [s[d] for s in per_seed if d in s]
                if len(values) > 1:
                    cells.append(f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}")
                else:
                    cells.append(f"{values[0]:.2f}")
            print(f"| {objective} | {len(per_seed)} | " + " | ".join(cells) + " |")
        # MIPIC against each other objective (or, with a baseline, each row against it): the
        # difference of the means, and the largest per-seed spread (max − min) of the two.
        if baseline is None:
            pairs = [("mipic", o) for o in rows if o not in ("mipic", "untrained")]
        else:
            pairs = [(o, baseline) for o in rows if o not in (baseline, "untrained")]
        for one, other in pairs:
            if one not in rows or other not in rows:
                continue
            cells = []
            for d in dims:
                a = [s[d] for s in rows[one] if d in s]
                b = [s[d] for s in rows[other] if d in s]
                spread = max(max(a) - min(a), max(b) - min(b))
                cells.append(f"{statistics.mean(a) - statistics.mean(b):+.2f} ({spread:.2f})")
            print(f"| {one} − {other} (spread) | | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="runs/mix-results", help="the runs directory")
    parser.add_argument("--baseline", help="compare every row with this one instead of MIPIC with the rest")
    args = parser.parse_args()
    main(args.out, args.baseline)
