"""Training-step speed and peak memory: `mrl train` (MRL, MIPIC) vs sentence-transformers'
MatryoshkaLoss, same data, batch, length and dims, alternating in one session.

Protocol: all-MiniLM-L6-v2, the bundled STS-B train sentences (data/stsb_train_sentences.txt),
unsupervised SimCSE (each sentence paired with itself; dropout makes the two views differ),
batch 16, max length 32, Matryoshka dims 384, 256, 128, 64, 32, 16, 8 with uniform weights,
temperature 0.05 (MultipleNegativesRankingLoss scale 20), AdamW lr 2e-5, CPU, 2 threads.
One "step" = both views forward, backward, optimizer step. The first `--warmup` steps are not
timed. Peak memory = the process's maximum resident set size.

- sentence-transformers: `MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), dims)` in a
  plain PyTorch loop (no Trainer, no data loader workers).
- ours: `mrl train --config configs/{mrl,mipic}-minilm.toml --set training.steps=N --no-export`,
  steps/s from its "steps in ... s of training" line (training only; the before/after dev
  evaluation of the config is excluded from the time but included in the peak memory).

Set-up (once):
    python3 -m venv /tmp/ref-venv && /tmp/ref-venv/bin/pip install torch sentence-transformers scipy
    cargo build --release -p mrl-cli
Run from the workspace root:
    MRL_SHARED=../shared HF_HUB_OFFLINE=1 /tmp/ref-venv/bin/python scripts/bench_train_st.py \
        --mrl-bin target/release/mrl --steps 30 --rounds 2
    # an older build in the same rounds (before/after a change):
    ... --mrl-bin target/release/mrl --baseline-bin /path/to/older/mrl
"""
import argparse
import os
import pathlib
import re
import resource
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("MRL_SHARED", ROOT.parent / "shared"))
if not SHARED.is_absolute():
    SHARED = (ROOT / SHARED).resolve()
DIMS = [384, 256, 128, 64, 32, 16, 8]


def st_child(steps, warmup, batch, max_length, threads):
    """Runs in a fresh process: returns (steps/s, peak RSS in MiB)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    torch.set_num_threads(threads)
    torch.manual_seed(42)
    model = SentenceTransformer(str(SHARED / "models/all-MiniLM-L6-v2"), device="cpu")
    model.max_seq_length = max_length
    model.train()
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model, scale=20.0), DIMS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    sentences = (ROOT / "data/stsb_train_sentences.txt").read_text().splitlines()
    times = []
    for step in range(warmup + steps):
        batch_text = sentences[step * batch:(step + 1) * batch]
        start = time.perf_counter()
        features = model.tokenize(batch_text)
        views = [dict(features), dict(features)]
        value = loss(views, labels=None)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return steps / sum(times), peak


def run_st(args):
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--steps", str(args.steps), "--warmup",
         str(args.warmup), "--threads", str(args.threads)],
        capture_output=True, text=True, check=True,
    )
    sps, peak = map(float, out.stdout.split())
    return sps, peak


def run_ours(args, objective, binary=None):
    cmd = ["/usr/bin/time", "-f", "PEAK_KB %M", binary or args.mrl_bin, "train", "--config",
           f"configs/{objective}-minilm.toml", "--set", f"training.steps={args.steps}",
           "--set", f'output_dir="bench-out/train-{objective}"', "--no-export"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "MRL_SHARED": str(SHARED)})
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    sps = float(re.search(r"\(([\d.]+) steps/s\)", out.stderr).group(1))
    peak = int(re.search(r"PEAK_KB (\d+)", out.stderr).group(1)) / 1024
    return sps, peak


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mrl-bin", default=str(ROOT / "target/release/mrl"))
    p.add_argument("--baseline-bin", default=None,
                   help="a second mrl binary (e.g. an older build) run in the same rounds")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", action="store_true")
    args = p.parse_args()
    if args.child:
        sps, peak = st_child(args.steps, args.warmup, 16, 32, args.threads)
        print(sps, peak)
        return
    runs = [("mrl train, MRL", lambda: run_ours(args, "mrl")),
            ("mrl train, MIPIC", lambda: run_ours(args, "mipic"))]
    if args.baseline_bin:
        runs += [("baseline mrl train, MRL", lambda: run_ours(args, "mrl", args.baseline_bin)),
                 ("baseline mrl train, MIPIC",
                  lambda: run_ours(args, "mipic", args.baseline_bin))]
    runs.append(("sentence-transformers MatryoshkaLoss", lambda: run_st(args)))
    results = {name: [] for name, _ in runs}
    for r in range(args.rounds):
        for name, fn in runs:
            sps, peak = fn()
            results[name].append((sps, peak))
            print(f"round {r}: {name}: {sps:.3f} steps/s, peak RSS {peak:.0f} MiB", flush=True)
    base = statistics.median(s for s, _ in results["sentence-transformers MatryoshkaLoss"])
    print("\n| trainer | steps/s (median) | s/step | peak RSS MiB (max) | speed vs ST |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        sps = statistics.median(s for s, _ in rows)
        peak = max(m for _, m in rows)
        print(f"| {name} | {sps:.3f} | {1 / sps:.2f} | {peak:.0f} | {sps / base:.2f}x |")


if __name__ == "__main__":
    main()
