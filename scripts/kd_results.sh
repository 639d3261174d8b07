#!/usr/bin/env bash
# Reproduces the distillation table of docs/results.md: SmolLM2-135M-Instruct → its first 10
# layers on Dolly (configs/kd-smollm2.toml: records 0–1899, 200 steps of batch 8, max length 128,
# α = 0.5, τ = 1, the teacher's top-64 cache), one run per objective under the same budget and
# seed; then ROUGE-L ×100 of sampled answers on the test records 1900–1999 (seeds 10, 20, 30;
# T = 1, top-p 1, top-k off, no-repeat 6, 256 new tokens) for the teacher, the untrained student
# and every trained student.
#
#   MRL_SHARED=../shared scripts/kd_results.sh
#   RUNS="fkl rkl" STEPS=100 MAX_NEW_TOKENS=128 scripts/kd_results.sh   # a subset, another budget
#
# Finished steps are skipped (a run whose student exists, an evaluation whose JSON exists), so
# the script can be resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
export MRL_SHARED="${MRL_SHARED:-../shared}"
RUNS="${RUNS:-sft fkl rkl akl srkl}"
STEPS="${STEPS:-200}"
SEEDS="${SEEDS:-10,20,30}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-256}"
OUT="${OUT:-runs/kd-results}"
CONFIG=configs/kd-smollm2.toml
TEACHER="$MRL_SHARED/models/SmolLM2-135M-Instruct-Q4_1"
DATA="$MRL_SHARED/data/dolly_2k.jsonl"
MRL="${MRL:-}"
if [ -z "$MRL" ]; then
  cargo build --release -q -p mrl-cli
  MRL="${CARGO_TARGET_DIR:-target}/release/mrl"
fi
mkdir -p "$OUT"

objective() {
  case "$1" in
    sft) echo "--set objective.alpha=0" ;;
    fkl) echo "--set objective.divergence.kind=forward_kl" ;;
    rkl) echo "--set objective.divergence.kind=reverse_kl" ;;
    akl) echo "--set objective.divergence.kind=adaptive_kl" ;;
    srkl) echo "--set objective.divergence.kind=skewed_reverse_kl" ;;
    *) echo "unknown run $1" >&2; exit 2 ;;
  esac
}

rouge() { # name model
  local json="$OUT/$1-rouge.json"
  if [ -f "$json" ]; then echo "skip $json (done)"; return; fi
  echo "== ROUGE-L of $1"
  "$MRL" eval --task instruct --model "$2" --data "$DATA" --records 1900..2000 \
    --seeds "$SEEDS" --max-new-tokens "$MAX_NEW_TOKENS" --json "$json" --predictions "$OUT/$1-predictions.jsonl" 2>&1 | tail -n 8
}

"$MRL" distill cache --config "$CONFIG"
for run in $RUNS; do
  dir="$OUT/$run"
  if [ -f "$dir/student/model.safetensors" ]; then echo "skip $dir (done)"; continue; fi
  echo "== $run -> $dir"
  # shellcheck disable=SC2046
  "$MRL" distill --config "$CONFIG" $(objective "$run") --set "training.steps=$STEPS" \
    --set "output_dir=\"$dir\"" 2>&1 | tee "$dir.log" | tail -n 8
done

rouge teacher "$TEACHER"
if [ ! -f "$OUT/untrained/model.safetensors" ]; then
  cargo run --release -q -p models --example export_student -- "$TEACHER" 10 "$OUT/untrained"
fi
rouge untrained "$OUT/untrained"
for run in $RUNS; do
  rouge "$run" "$OUT/$run/student"
done
