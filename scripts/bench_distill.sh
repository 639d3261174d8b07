#!/usr/bin/env bash
# The distillation benchmark of docs/benchmarks.md: `mrl distill` against the equivalent PyTorch
# loop (scripts/bench_distill_torch.py) on SmolLM2-135M-Instruct → its first 10 layers, the first
# 64 Dolly records, batch 4, max length 128, 0.5·CE + 0.5·FKL (τ = 1), AdamW lr 5e-5
# (eps 1e-8, weight decay 0.01), 2 threads — with the teacher live and from a top-64 cache;
# ROUNDS rounds of STEPS steps, alternating ours and theirs in one session. Prints one JSON line
# per round (ours: steps/s and tokens/s of the timed steps, peak RSS of the process; theirs:
# the script's own line). Then (MTA=1, the default) ROUNDS more rounds alternating our KD step
# and our MTA step (configs/mta-smollm2.toml, same data and optimizer, live teacher), and
# (SRA=1, the default) ROUNDS rounds alternating our KD step and our SRA step across tokenizers
# (configs/sra-smollm2-gpt2.toml: the GPT-2-vocabulary student, live teacher), our SRA step
# from the span cache, and (with TORCH=1) PyTorch's SRA step live and from its own span cache
# (scripts/bench_sra_torch.py, on the same exported untrained student).
#
#   MRL_SHARED=../shared scripts/bench_distill.sh            # needs python3 with torch, transformers, gguf, accelerate
#   ROUNDS=5 STEPS=8 scripts/bench_distill.sh
#   TORCH=0 MTA=0 scripts/bench_distill.sh                   # only our KD vs SRA rounds
#   KD=0 MTA=0 scripts/bench_distill.sh                      # only the SRA rounds, ours and PyTorch's
set -euo pipefail
cd "$(dirname "$0")/.."
export MRL_SHARED="${MRL_SHARED:-../shared}"
ROUNDS="${ROUNDS:-3}"
STEPS="${STEPS:-6}"
OUT="${OUT:-bench-out/distill}"
MRL="${MRL:-}"
if [ -z "$MRL" ]; then
  cargo build --release -q -p mrl-cli
  MRL="${CARGO_TARGET_DIR:-target}/release/mrl"
fi
mkdir -p "$OUT"
export OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2
COMMON=(--set data.records=0..64 --set eval= --set checkpoint.every=0 --set training.batch_size=4
  --set optimizer.lr=5e-5 --set optimizer.eps=1e-8 --set optimizer.weight_decay=0.01
  --set optimizer.warmup_steps=0 --set optimizer.grad_clip=0 --set "training.steps=$STEPS"
  --set "cache.dir=\"$OUT/cache\"")

ours() { # live|cache|mta|sra|sra-cache round
  local config=configs/kd-smollm2.toml
  local args=("${COMMON[@]}")
  case "$1" in
    live) args+=(--set cache=) ;;
    # MTA (live teacher with hidden states): the same run, no cache.
    mta) config=configs/mta-smollm2.toml; args=("${COMMON[@]:0:${#COMMON[@]}-2}") ;;
    # SRA across tokenizers (live teacher with hidden states and attentions), no cache.
    sra) config=configs/sra-smollm2-gpt2.toml; args=("${COMMON[@]:0:${#COMMON[@]}-2}") ;;
    # SRA from the span cache (the student only).
    sra-cache) config=configs/sra-smollm2-gpt2.toml
      args=("${COMMON[@]:0:${#COMMON[@]}-2}" --set "cache.dir=\"$OUT/sra-cache\"") ;;
  esac
  rm -rf "$OUT/run"
  local log="$OUT/ours-$1-$2.log"
  /usr/bin/time -f "peak_rss_kb %M" "$MRL" distill --config "$config" "${args[@]}" \
    --set "output_dir=\"$OUT/run\"" --no-export >"$log" 2>&1
  python3 - "$log" "$1" "$2" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
m = re.search(r"(\d+) steps in ([\d.]+) s of training \(([\d.]+) steps/s, ([\d.]+) tokens/s\)", text)
rss = re.search(r"peak_rss_kb (\d+)", text)
print(json.dumps({"impl": "burn-mrl", "teacher": sys.argv[2], "round": int(sys.argv[3]),
                  "steps": int(m[1]), "seconds": float(m[2]), "steps_per_s": float(m[3]),
                  "tokens_per_s": float(m[4]), "peak_rss_mb": round(int(rss[1]) / 1024, 1)}),
      flush=True)
PY
}

if [ "${TORCH:-1}" = 1 ] && [ "${KD:-1}" = 1 ]; then
  "$MRL" distill cache --config configs/kd-smollm2.toml "${COMMON[@]}" >&2
  for mode in live cache; do
    for round in $(seq 0 $((ROUNDS - 1))); do
      ours "$mode" "$round"
      python3 scripts/bench_distill_torch.py --teacher "$mode" --rounds 1 --steps "$STEPS" \
        --warmup 1 --batch-size 4 --cache-dir "$OUT" 2>/dev/null | sed "s/\"round\": 0/\"round\": $round/"
    done
  done
fi
# The cost of an MTA step against a KD step (both ours, live teacher), alternating.
if [ "${MTA:-1}" = 1 ]; then
  for round in $(seq 0 $((ROUNDS - 1))); do
    ours live "$round"
    ours mta "$round"
  done
fi
# The cost of an SRA step across tokenizers against a KD step (both ours, live teacher), SRA
# from the span cache, and PyTorch's SRA step live and cached.
if [ "${SRA:-1}" = 1 ]; then
  SRA_ARGS=("${COMMON[@]:0:${#COMMON[@]}-2}" --set "cache.dir=\"$OUT/sra-cache\"")
  "$MRL" distill cache --config configs/sra-smollm2-gpt2.toml "${SRA_ARGS[@]}" >&2
  STUDENT="$OUT/sra-student"
  if [ "${TORCH:-1}" = 1 ] && [ ! -f "$STUDENT/model.safetensors" ]; then
    cargo run --release -q -p models --example export_student -- \
      "$MRL_SHARED/models/SmolLM2-135M-Instruct-Q4_1" 10 "$STUDENT" \
      --vocab "$MRL_SHARED/models/gpt2-tokenizer/tokenizer.json" >&2
  fi
  for round in $(seq 0 $((ROUNDS - 1))); do
    if [ "${KD:-1}" = 1 ]; then ours live "$round"; fi
    ours sra "$round"
    ours sra-cache "$round"
    if [ "${TORCH:-1}" = 1 ]; then
      for mode in live cache; do
        python3 scripts/bench_sra_torch.py --student "$STUDENT" --teacher "$mode" --rounds 1 \
          --steps "$STEPS" --warmup 1 --batch-size 4 --cache-dir "$OUT" 2>/dev/null \
          | sed "s/\"round\": 0/\"round\": $round/"
      done
    fi
  done
fi
