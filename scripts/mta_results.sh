#!/usr/bin/env bash
# Reproduces the MTA table of docs/results.md: SmolLM2-135M-Instruct → its first 10 layers on
# Dolly under the KD table's budget (60 steps of batch 8, lr 1e-4 with 10 % warm-up, α = 0.5,
# τ = 1, seed 42), with reverse KL — the best KD baseline — as the KD term and a live teacher:
#
#   rkl-live     RKL alone (configs/kd-smollm2.toml without the cache)
#   mta-rkl      RKL + 2·L_MTA, the default schedule (configs/mta-smollm2.toml)
#   dsa-only     … with HRA off (objective.mta.hra_weight = 0)
#   hra-only     … with DSA off (objective.mta.dsa_weight = 0)
#   words-only   … the three layer pairs on word units
#   phrases-only … the three layer pairs on phrase units
#
# then ROUGE-L ×100 of sampled answers on the test records 1900–1999 (seeds 10, 20, 30; T = 1,
# no-repeat 6, 128 new tokens), two evaluations at a time (generation uses about one core).
#
#   MRL_SHARED=../shared scripts/mta_results.sh
#   RUNS="dsa-only hra-only" STEPS=200 scripts/mta_results.sh    # a subset, another budget
#
# Finished steps are skipped (a run whose student exists, an evaluation whose JSON exists), so
# the script can be resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
export MRL_SHARED="${MRL_SHARED:-../shared}"
RUNS="${RUNS:-rkl-live mta-rkl dsa-only hra-only words-only phrases-only}"
STEPS="${STEPS:-60}"
SEEDS="${SEEDS:-10,20,30}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-128}"
OUT="${OUT:-runs/kd-results}"
DATA="$MRL_SHARED/data/dolly_2k.jsonl"
MRL="${MRL:-}"
if [ -z "$MRL" ]; then
  cargo build --release -q -p mrl-cli
  MRL="${CARGO_TARGET_DIR:-target}/release/mrl"
fi
mkdir -p "$OUT"

pairs() { # granularity of the three pairs
  echo "objective.mta.pairs=[{teacher_layer=15,student_layer=5,granularity=\"$1\"},{teacher_layer=24,student_layer=8,granularity=\"$2\"},{teacher_layer=30,student_layer=10,granularity=\"$3\"}]"
}

train() { # name config settings...
  local name="$1" config="$2"
  shift 2
  local dir="$OUT/$name"
  if [ -f "$dir/student/model.safetensors" ]; then echo "skip $dir (done)"; return; fi
  echo "== $name -> $dir"
  "$MRL" distill --config "$config" --set objective.divergence.kind=reverse_kl \
    --set "training.steps=$STEPS" --set "output_dir=\"$dir\"" "$@" 2>&1 | tee "$dir.log" | tail -n 8
}

rouge() { # name
  local json="$OUT/$1-rouge.json"
  if [ -f "$json" ]; then echo "skip $json (done)"; return; fi
  echo "== ROUGE-L of $1"
  "$MRL" eval --task instruct --model "$OUT/$1/student" --data "$DATA" --records 1900..2000 \
    --seeds "$SEEDS" --max-new-tokens "$MAX_NEW_TOKENS" --json "$json" \
    --predictions "$OUT/$1-predictions.jsonl" > "$OUT/$1-rouge.log" 2>&1
  tail -n 4 "$OUT/$1-rouge.log"
}

for run in $RUNS; do
  case "$run" in
    rkl-live) train "$run" configs/kd-smollm2.toml --set cache= ;;
    mta-rkl) train "$run" configs/mta-smollm2.toml ;;
    dsa-only) train "$run" configs/mta-smollm2.toml --set objective.mta.hra_weight=0 ;;
    hra-only) train "$run" configs/mta-smollm2.toml --set objective.mta.dsa_weight=0 ;;
    words-only) train "$run" configs/mta-smollm2.toml --set "$(pairs words words words)" ;;
    phrases-only) train "$run" configs/mta-smollm2.toml --set "$(pairs phrases phrases phrases)" ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
done

set -- $RUNS
while [ $# -gt 0 ]; do
  rouge "$1" &
  if [ $# -gt 1 ]; then rouge "$2" & fi
  wait
  shift $(( $# > 1 ? 2 : 1 ))
done
