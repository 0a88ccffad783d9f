#!/usr/bin/env bash
# Dynamic-TinyBERT on a binarized student (README "Measured: a LengthDrop-trained BiT 1-1-1
# student on SST-2", benchmarks/results/length_sst2_bit/):
#   1. the full-SST-2 MiniLM-L6 teacher of benchmarks/sst2_full.sh (1 epoch, 88.53 in the README);
#   2. two BiT 1-1-1 students distilled from it with the compact-GLUE cell's budget (first 4,000
#      training sentences, 1 epoch, lr 2e-4, batch 32, length 64): without LengthDrop (the table's
#      cell) and with it (--length_adaptive --num_sandwich 2 --length_drop_ratio_bound 0.2
#      --layer_dropout_prob 0.2);
#   3. the length-configuration search on the LengthDrop student (whole dev set, MACs);
#   4. the pick scored on the student trained without LengthDrop (--evaluate).
# Every step is skipped when its output exists, training resumes from its last checkpoint: re-run
# the script after an interruption. Results are copied to benchmarks/results/length_sst2_bit/.
#   GLUE=../shared/data/glue RUNS=runs bash benchmarks/length_sst2_bit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GLUE=${GLUE:-../shared/data/glue}
RUNS=${RUNS:-runs}
OUT=benchmarks/results/length_sst2_bit
TEACHER="$RUNS/sst2_teacher"
resume() { [ -d "$1" ] && ls "$1" | grep -q '^checkpoint-' && echo --resume || true; }

GLUE="$GLUE" RUNS="$RUNS" PY="$PY" TEACHER_ONLY=1 bash benchmarks/sst2_full.sh
student() {  # student <output_dir> [extra task_distill flags...]
  local out=$1; shift
  [ -f "$out/results.json" ] && return 0
  "$PY" examples/task_distill.py --model_type bert --student_model_name_or_path "$TEACHER" \
    --teacher_model_type bert --teacher_path "$TEACHER" --task_name SST-2 --data_dir "$GLUE/SST-2" \
    --max_seq_length 64 --batch_size 32 --learning_rate 2e-4 --num_train_epochs 1 \
    --max_train_examples 4000 --eval_steps 40 --logging_steps 10 --output_dir "$out" \
    --method bit "$@" $(resume "$out")
}
student "$RUNS/sst2_bit"
student "$RUNS/sst2_bit_lengthdrop" --length_adaptive --num_sandwich 2 --length_drop_ratio_bound 0.2 \
  --layer_dropout_prob 0.2
SEARCH="$RUNS/sst2_bit_lengthdrop_search"
if [ ! -f "$SEARCH/pick.json" ]; then
  # the cache in $SEARCH makes an interrupted search replay what it already scored
  "$PY" -m paddle_binbert.cli search-length --checkpoint "$RUNS/sst2_bit_lengthdrop" --task_name SST-2 \
    --data_dir "$GLUE/SST-2" --max_seq_length 64 --output_dir "$SEARCH" --population_size 16 --evo_iter 6 \
    --mutation_size 6 --crossover_size 6
fi
PICK=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['pick']['config'])" "$SEARCH/pick.json")
PLAIN="$RUNS/sst2_bit_pick"
if [ ! -f "$PLAIN/evaluate.json" ]; then
  "$PY" -m paddle_binbert.cli search-length --checkpoint "$RUNS/sst2_bit" --task_name SST-2 \
    --data_dir "$GLUE/SST-2" --max_seq_length 64 --output_dir "$PLAIN" --length_config "$PICK" --evaluate
fi
mkdir -p "$OUT"
cp "$TEACHER/results.json" "$OUT/teacher_results.json"
cp "$RUNS/sst2_bit/results.json" "$OUT/bit_results.json"
cp "$RUNS/sst2_bit_lengthdrop/results.json" "$OUT/bit_lengthdrop_results.json"
cp "$SEARCH"/{all_configs.csv,pareto.csv,pareto.md,pick.json} "$OUT/"
[ -f "$SEARCH/pareto.png" ] && cp "$SEARCH/pareto.png" "$OUT/"
cp "$PLAIN/evaluate.json" "$OUT/evaluate_pick_on_bit.json"
echo "done: $OUT"
