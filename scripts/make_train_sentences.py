#!/usr/bin/env python3
"""Distinct sentences of an STS TSV (score, sentence1, sentence2; one header line), one per line.

Usage: python3 scripts/make_train_sentences.py ../shared/data/stsb_train.tsv data/stsb_train_sentences.txt
"""
import sys


def main(src: str, dst: str) -> None:
    seen, out = set(), []
    with open(src, encoding="utf-8") as f:
        next(f)
        for line in f:
            for s in line.rstrip("\n").split("\t")[1:3]:
                s = s.strip()
                if s and s not in seen:
                    seen.add(s)
                    out.append(s)
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"{len(out)} sentences -> {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
