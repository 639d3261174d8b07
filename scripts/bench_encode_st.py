"""Encode throughput: sentence-transformers vs burn-mrl (flex, ndarray), alternating in one session.

Protocol: the distinct sentences of STS-B test (both columns, first-seen order), batch 32,
max length 64, all-MiniLM-L6-v2, CPU. Model loading is not timed; tokenisation is.
Rounds alternate: [burn flex, burn ndarray, sentence-transformers] x ROUNDS, so that machine load
affects all three alike. Reports the median sentences/s and the ratios to sentence-transformers.

Set-up (once):
    python3 -m venv /tmp/ref-venv && /tmp/ref-venv/bin/pip install torch sentence-transformers scipy
    CARGO_TARGET_DIR=/work/target-issue4 cargo build --release -p models --example bench_encode
Run from the workspace root:
    HF_HUB_OFFLINE=1 /tmp/ref-venv/bin/python scripts/bench_encode_st.py \
        --rust-bin /work/target-issue4/release/examples/bench_encode --rounds 5
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import time

import torch
from sentence_transformers import SentenceTransformer

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("MRL_SHARED", ROOT.parent / "shared"))
if not SHARED.is_absolute():
    SHARED = (ROOT / SHARED).resolve()


def sts_sentences(path):
    seen, out = set(), []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            for s in line.rstrip("\n").split("\t")[1:]:
                if s not in seen:
                    seen.add(s)
                    out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--data", default=str(SHARED / "data" / "stsb_test.tsv"))
    ap.add_argument("--rust-bin", help="path to the bench_encode example binary (release)")
    ap.add_argument("--devices", default="flex,ndarray")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    sentences = sts_sentences(args.data)
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = args.max_length
    model.encode(sentences[: 4 * args.batch_size], batch_size=args.batch_size)  # warm-up

    results = {"sentence-transformers": []}
    devices = [d for d in args.devices.split(",") if d] if args.rust_bin else []
    for d in devices:
        results[f"burn-mrl {d}"] = []
    for r in range(args.rounds):
        for d in devices:
            out = subprocess.run(
                [args.rust_bin, "--model", args.model, "--data", args.data, "--device", d,
                 "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                 "--rounds", "1", "--warmup", "1"],
                check=True, capture_output=True, text=True,
            ).stdout
            rate = json.loads(out.strip().splitlines()[-1])["sentences_per_s"]
            results[f"burn-mrl {d}"].append(rate)
            print(f"round {r} burn-mrl {d}: {rate:.1f} sentences/s", flush=True)
        start = time.perf_counter()
        emb = model.encode(sentences, batch_size=args.batch_size, convert_to_numpy=True)
        seconds = time.perf_counter() - start
        assert emb.shape[0] == len(sentences)
        rate = len(sentences) / seconds
        results["sentence-transformers"].append(rate)
        print(f"round {r} sentence-transformers: {rate:.1f} sentences/s", flush=True)

    st = statistics.median(results["sentence-transformers"])
    print(f"\n{len(sentences)} sentences, batch {args.batch_size}, max length {args.max_length}, "
          f"torch {torch.__version__} with {args.threads} threads, {args.rounds} alternating rounds")
    print("| encoder | median sentences/s | min | max | ratio to sentence-transformers |")
    print("|---|---|---|---|---|")
    for name, rates in results.items():
        med = statistics.median(rates)
        print(f"| {name} | {med:.1f} | {min(rates):.1f} | {max(rates):.1f} | {med / st:.2f} |")


if __name__ == "__main__":
    main()
