#!/usr/bin/env python3
"""Check that an `mrl train` export is equivalent to its source model in sentence-transformers.

Usage:
  cargo run --release -p training --example export_st -- SOURCE_DIR EXPORT_DIR
  HF_HUB_OFFLINE=1 python3 scripts/check_export_equivalence.py SOURCE_DIR EXPORT_DIR \
      [--sentences FILE] [--trained]

Loads both directories with `SentenceTransformer(dir)` and compares:
- the module list (class names, in order) and `max_seq_length`;
- the underlying transformers model's weight names (so a dropped pooler shows up), and, for an
  untrained export, every weight;
- `encode` of the sentences (one per line in FILE, else a built-in list that includes one
  longer than `max_seq_length`): the norms of both models' vectors and the cosine between the
  source's and the export's vector of each sentence.

An untrained export (the default) must match: cosines 1 within 1e-5, norms equal within 1e-5
(relative), equal weights. With `--trained` the vectors and weights may differ; only the
pipeline (modules, max length, norms equal to 1 when the source normalises) and the weight
names are checked. Exits non-zero, listing the differences, otherwise.
"""
import argparse
import logging
import sys

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "The quick brown fox jumps over the lazy dog.",
    "Two dogs are running through a field of tall grass.",
    "Stocks fell sharply after the central bank raised interest rates.",
    "",
    "a",
    # Longer than 256 word pieces, so the truncation length matters.
    " ".join(["the cat sat on the mat while the dog watched it from the door"] * 30),
]


class LoadWarnings(logging.Handler):
    """Collects the 'missing' / 'unexpected' weight reports of transformers while loading."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        text = record.getMessage()
        if any(w in text.lower() for w in ("missing", "unexpected", "newly initialized")):
            self.messages.append(text)


def load(path):
    handler = LoadWarnings()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        model = SentenceTransformer(path, device="cpu")
    finally:
        logger.removeHandler(handler)
    return model, handler.messages


def modules(model):
    """Class name of each module, in order."""
    paths = {}
    for name, module in model.named_children():
        paths[name] = type(module).__name__
    return list(paths.values())


def transformer_state(model):
    return {k: v.detach().float().cpu() for k, v in model[0].auto_model.state_dict().items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("export")
    parser.add_argument("--sentences", help="one sentence per line")
    parser.add_argument("--trained", action="store_true", help="the export was trained")
    args = parser.parse_args()
    sentences = SENTENCES
    if args.sentences:
        with open(args.sentences, encoding="utf-8") as f:
            sentences = [line.rstrip("\n") for line in f if line.strip()]

    failures = []
    src, src_warn = load(args.source)
    exp, exp_warn = load(args.export)
    print("source:", src)
    print("export:", exp)
    for w in exp_warn:
        failures.append(f"loading the export: {w}")

    src_modules, exp_modules = modules(src), modules(exp)
    print(f"modules: source {src_modules}, export {exp_modules}")
    if src_modules != exp_modules:
        failures.append(f"module list: source {src_modules} vs export {exp_modules}")
    print(f"max_seq_length: source {src.max_seq_length}, export {exp.max_seq_length}")
    if src.max_seq_length != exp.max_seq_length:
        failures.append(
            f"max_seq_length: source {src.max_seq_length} vs export {exp.max_seq_length}"
        )

    src_state, exp_state = transformer_state(src), transformer_state(exp)
    missing = sorted(set(src_state) - set(exp_state))
    extra = sorted(set(exp_state) - set(src_state))
    print(f"weights: source {len(src_state)}, export {len(exp_state)}; "
          f"missing {missing}, extra {extra}")
    if missing or extra:
        failures.append(f"weight names: missing in the export {missing}, extra {extra}")
    if not args.trained:
        worst = max(
            ((k, (src_state[k] - exp_state[k]).abs().max().item())
             for k in set(src_state) & set(exp_state) if src_state[k].shape == exp_state[k].shape),
            key=lambda kv: kv[1],
            default=("-", 0.0),
        )
        shapes = [k for k in set(src_state) & set(exp_state)
                  if src_state[k].shape != exp_state[k].shape]
        print(f"weights: largest |source - export| {worst[1]:.3g} ({worst[0]})")
        if shapes or worst[1] > 0.0:
            failures.append(f"weights differ: largest {worst[1]:.3g} at {worst[0]}; shapes {shapes}")

    with torch.no_grad():
        a = src.encode(sentences, convert_to_numpy=True).astype(np.float64)
        b = exp.encode(sentences, convert_to_numpy=True).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = (a * b).sum(axis=1) / np.maximum(na * nb, 1e-300)
    print(f"{len(sentences)} sentences")
    print(f"norms source: min {na.min():.6f} max {na.max():.6f}")
    print(f"norms export: min {nb.min():.6f} max {nb.max():.6f}")
    print(f"cosine source/export: min {cos.min():.8f} mean {cos.mean():.8f}")
    if args.trained:
        if np.allclose(na, 1.0, atol=1e-4) and not np.allclose(nb, 1.0, atol=1e-4):
            failures.append(f"the source normalises, the export does not: norms {nb.min():.4f}..{nb.max():.4f}")
    else:
        rel = np.abs(na - nb) / np.maximum(na, 1e-12)
        if rel.max() > 1e-5:
            failures.append(f"norms differ: largest relative difference {rel.max():.3g}")
        if (1.0 - cos).max() > 1e-5:
            failures.append(f"cosines: min {cos.min():.8f} (must be 1 within 1e-5)")

    if failures:
        print("\nDIFFERENT:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print("OK: the export is equivalent to the source in sentence-transformers")


if __name__ == "__main__":
    main()
