#!/usr/bin/env bash
# Reproduces the cross-tokenizer table of docs/results.md: teacher SmolLM2-135M-Instruct (its
# 49,152-token tokenizer), student = its first 10 layers with a GPT-2-vocabulary embedding made by
# vocabulary transplant (configs/sra-smollm2-gpt2.toml), on Dolly records 0–1899 under the KD
# table's budget (60 steps of batch 8, max length 128, lr 1e-4 with 10 % warm-up, projectors at
# 5e-4, α = 0.5, seed 42, live teacher):
#
#   untrained   the transplanted student, no training
#   sft         cross-entropy only (kind = "kd", alpha = 0, over the student's tokenizer)
#   uld         ULD (sorted-probability L1)
#   mined       MinED (edit-distance token alignment, forward KL)
#   dskd-cma    DSKD's cross-model attention (τ = 2, as the DSKD scripts)
#   mta-cross   MTA across tokenizers (λ = 2, the default three-pair schedule)
#   sra         SRA (CoM + geometric + span logit terms)
#
# then ROUGE-L ×100 of sampled answers on the test records 1900–1999 (seeds 10, 20, 30; T = 1,
# no-repeat 6, 128 new tokens), two evaluations at a time (generation uses about one core).
#
#   MRL_SHARED=../shared scripts/xtok_results.sh
#   RUNS="sra uld" STEPS=200 scripts/xtok_results.sh    # a subset, another budget
#
# Finished steps are skipped (a run whose student exists, an evaluation whose JSON exists), so
# the script can be resumed; a finished run's checkpoints are removed (the student is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
export MRL_SHARED="${MRL_SHARED:-../shared}"
RUNS="${RUNS:-sra sft uld mined dskd-cma mta-cross}"
STEPS="${STEPS:-60}"
SEEDS="${SEEDS:-10,20,30}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-128}"
OUT="${OUT:-runs/xtok-results}"
CONFIG=configs/sra-smollm2-gpt2.toml
TEACHER="$MRL_SHARED/models/SmolLM2-135M-Instruct-Q4_1"
VOCAB="$MRL_SHARED/models/gpt2-tokenizer/tokenizer.json"
DATA="$MRL_SHARED/data/dolly_2k.jsonl"
MRL="${MRL:-}"
if [ -z "$MRL" ]; then
  cargo build --release -q -p mrl-cli
  MRL="${CARGO_TARGET_DIR:-target}/release/mrl"
fi
mkdir -p "$OUT"

objective() { # the --set flags of a run over configs/sra-smollm2-gpt2.toml
  case "$1" in
    sra) ;;
    sft) echo "--set objective.kind=\"kd\" --set objective.alpha=0 --set objective.sra= --set objective.divergence.kind=forward_kl" ;;
    uld | mined | mta-cross) echo "--set objective.kind=\"$1\" --set objective.sra=" ;;
    dskd-cma) echo "--set objective.kind=\"dskd-cma\" --set objective.sra= --set objective.temperature=2" ;;
    *) echo "unknown run $1" >&2; exit 2 ;;
  esac
}

rouge() { # name model
  local json="$OUT/$1-rouge.json"
  if [ -f "$json" ]; then echo "skip $json (done)"; return; fi
  echo "== ROUGE-L of $1"
  "$MRL" eval --task instruct --model "$2" --data "$DATA" --records 1900..2000 \
    --seeds "$SEEDS" --max-new-tokens "$MAX_NEW_TOKENS" --json "$json" \
    --predictions "$OUT/$1-predictions.jsonl" > "$OUT/$1-rouge.log" 2>&1
  tail -n 4 "$OUT/$1-rouge.log"
}

if [ ! -f "$OUT/untrained/model.safetensors" ]; then
  cargo run --release -q -p models --example export_student -- "$TEACHER" 10 "$OUT/untrained" \
    --vocab "$VOCAB"
fi
for run in $RUNS; do
  dir="$OUT/$run"
  objective "$run" > /dev/null
  if [ -f "$dir/student/model.safetensors" ]; then echo "skip $dir (done)"; continue; fi
  echo "== $run -> $dir"
  # shellcheck disable=SC2046
  "$MRL" distill --config "$CONFIG" $(objective "$run") --set "training.steps=$STEPS" \
    --set "output_dir=\"$dir\"" 2>&1 | tee "$dir.log" | tail -n 8
  rm -rf "$dir/checkpoints"
done

set -- untrained $RUNS
while [ $# -gt 0 ]; do
  model() { if [ "$1" = untrained ]; then echo "$OUT/untrained"; else echo "$OUT/$1/student"; fi; }
  rouge "$1" "$(model "$1")" &
  if [ $# -gt 1 ]; then rouge "$2" "$(model "$2")" & fi
  wait
  shift $(( $# > 1 ? 2 : 1 ))
done
