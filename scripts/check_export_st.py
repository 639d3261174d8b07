#!/usr/bin/env python3
"""Check that an `mrl train` export loads in sentence-transformers and gives the same vectors.

Usage:
  cargo run --release -p mrl-cli -- encode --model runs/mipic-minilm/model \
      --input sentences.txt --dim 384 --output ours.jsonl
  HF_HUB_OFFLINE=1 "$REF_VENV"/bin/python scripts/check_export_st.py \
      runs/mipic-minilm/model sentences.txt ours.jsonl

Loads the directory with `SentenceTransformer(dir)`, embeds the sentences (one per line),
truncates + L2-normalises to the dim of `ours.jsonl`, and compares with the vectors `mrl encode`
wrote (JSON lines with an "embedding" field). Exits non-zero when a cosine is below 0.9999.
"""
import json
import sys

import numpy as np
from sentence_transformers import SentenceTransformer


def main(model_dir: str, sentences_path: str, ours_path: str) -> None:
    sentences = [l.rstrip("\n") for l in open(sentences_path, encoding="utf-8") if l.strip()]
    ours = []
    for line in open(ours_path, encoding="utf-8"):
        rec = json.loads(line)
        ours.append(rec["embedding"] if isinstance(rec, dict) else rec)
    ours = np.asarray(ours, dtype=np.float64)
    dim = ours.shape[1]
    model = SentenceTransformer(model_dir, device="cpu")
    print(model)
    theirs = model.encode(sentences, convert_to_numpy=True, normalize_embeddings=False)
    theirs = theirs[:, :dim].astype(np.float64)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    cos = (theirs * ours).sum(axis=1)
    print(f"{len(sentences)} sentences at dim {dim}: min cosine {cos.min():.6f}, mean {cos.mean():.6f}")
    if cos.min() < 0.9999:
        sys.exit("MISMATCH: sentence-transformers and mrl disagree")
    print("OK: sentence-transformers loads the export and agrees with mrl")


if __name__ == "__main__":
    main(*sys.argv[1:4])
