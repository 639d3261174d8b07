#!/usr/bin/env python3
"""Markdown tables of the same-budget comparison from the runs of scripts/results.sh.

Reads <runs>/<objective>-s<seed>/report/{stsb_dev,stsb_test,sickr_test}.json (written by
`mrl train`) and prints, per dataset, Spearman x 100 at every dim: the un-fine-tuned model
("before", identical in every run), then each objective as the mean over its seeds, with the
per-seed values when there is more than one seed, and MIPIC - MRL.

    python3 scripts/results_table.py runs/results
"""
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ORDER = ["mrl", "ese", "2d", "mipic"]
LABEL = {"mrl": "MRL", "ese": "ESE", "2d": "2D", "mipic": "MIPIC (notebook)"}
DATASETS = [("stsb_dev", "STS-B dev"), ("stsb_test", "STS-B test"), ("sickr_test", "SICK-R test")]


def load(path):
    report = json.loads(path.read_text())
    series = report["series"]
    before = next((s["report"] for s in series if s["label"] == "before"), None)
    after = next(s["report"] for s in series if s["label"].startswith("after"))
    spear = lambda r: {int(d): v["spearman"] for d, v in r["dims"].items()}
    return (spear(before) if before else None), spear(after)


def main(root):
    root = Path(root)
    runs = defaultdict(dict)  # objective -> seed -> dir
    for d in sorted(root.iterdir()):
        m = re.fullmatch(r"(.+)-s(\d+)", d.name)
        if m and d.is_dir():
            runs[m.group(1)][int(m.group(2))] = d
    if not runs:
        sys.exit(f"no runs under {root}")
    for stem, title in DATASETS:
        before = None
        after = {}  # objective -> seed -> {dim: spearman}
        for obj, seeds in runs.items():
            for seed, d in seeds.items():
                path = d / "report" / f"{stem}.json"
                if not path.is_file():
                    continue
                b, a = load(path)
                before = before or b
                after.setdefault(obj, {})[seed] = a
        if not after:
            continue
        objs = [o for o in ORDER if o in after] + sorted(set(after) - set(ORDER))
        dims = sorted(next(iter(next(iter(after.values())).values())), reverse=True)
        mean = {o: {dim: sum(s[dim] for s in after[o].values()) / len(after[o]) for dim in dims} for o in objs}
        n_pairs = json.loads((next(iter(runs[objs[0]].values())) / "report" / f"{stem}.json").read_text())
        n_pairs = n_pairs["series"][-1]["report"]["n_pairs"]
        print(f"\n### {title} ({n_pairs} pairs)\n")
        head = ["dim", "before"]
        for o in objs:
            seeds = sorted(after[o])
            head.append(f"{LABEL.get(o, o)}" + (f" (mean of seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else f" (seed {seeds[0]})"))
        diff = "mrl" in mean and "mipic" in mean
        if diff:
            head.append("MIPIC − MRL")
        print("| " + " | ".join(head) + " |")
        print("|" + "---:|" * len(head))
        for dim in dims:
            row = [str(dim), f"{before[dim]:.2f}" if before else "–"]
            for o in objs:
                cell = f"{mean[o][dim]:.2f}"
                if len(after[o]) > 1:
                    cell += " (" + " / ".join(f"{after[o][s][dim]:.2f}" for s in sorted(after[o])) + ")"
                row.append(cell)
            if diff:
                row.append(f"{mean['mipic'][dim] - mean['mrl'][dim]:+.2f}")
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/results")
