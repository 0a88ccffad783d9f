#!/usr/bin/env bash
# The mini-SQuAD Dynamic-TinyBERT measurement of the README (benchmarks/results/length_squad/):
#   1. MiniLM-L6 teacher fine-tuned on the first 4,000 mini_train questions (260 steps);
#   2. LengthDrop fine-tuning of the teacher (sandwich rule, inplace distillation; LD_EXAMPLES
#      questions, 1 epoch, --length_drop_ratio_bound LD_RATIO);
#   3. evolutionary length-configuration search on SEARCH_EXAMPLES questions spread over mini_dev;
#   4. the pick scored on all of mini_dev (--evaluate) and timed end to end (--measure).
# Every step is skipped when its output exists and the training steps resume from their last
# checkpoint, so re-run the script after an interruption. Results are copied to
# benchmarks/results/length_squad/$NAME/ at the end.
#   SQUAD=../shared/data/squad RUNS=runs bash benchmarks/length_squad.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SQUAD=${SQUAD:-../shared/data/squad}
RUNS=${RUNS:-runs/squad}
LD_EXAMPLES=${LD_EXAMPLES:-3000}
LD_LR=${LD_LR:-3e-5}
LD_RATIO=${LD_RATIO:-0.2}
SEARCH_EXAMPLES=${SEARCH_EXAMPLES:-600}
NAME=${NAME:-lengthdrop_${LD_EXAMPLES}}
OUT="benchmarks/results/length_squad/$NAME"
TRAIN="$SQUAD/mini_train-v1.1.json"
DEV="$SQUAD/mini_dev-v1.1.json"
resume() { [ -d "$1" ] && ls "$1" | grep -q '^checkpoint-' && echo --resume || true; }

if [ ! -f "$RUNS/teacher/results.json" ]; then
  "$PY" examples/run_squad.py --model_name_or_path minilm --train_file "$TRAIN" --predict_file "$DEV" \
    --batch_size 16 --learning_rate 1e-4 --num_train_epochs 1 --max_train_examples 4000 --max_steps 260 \
    --eval_steps 130 --logging_steps 10 --output_dir "$RUNS/teacher" $(resume "$RUNS/teacher")
fi
LD="$RUNS/$NAME"
if [ ! -f "$LD/results.json" ]; then
  # one evaluation (and checkpoint) per half epoch
  HALF=$(( (LD_EXAMPLES / 16 + 1) / 2 ))
  "$PY" examples/run_squad.py --model_name_or_path "$RUNS/teacher" --train_file "$TRAIN" --predict_file "$DEV" \
    --batch_size 16 --learning_rate "$LD_LR" --num_train_epochs 1 --max_train_examples "$LD_EXAMPLES" \
    --eval_steps "$HALF" --logging_steps 10 --output_dir "$LD" \
    --length_adaptive --num_sandwich 2 --length_drop_ratio_bound "$LD_RATIO" --layer_dropout_prob 0.2 $(resume "$LD")
fi
SEARCH="$RUNS/${NAME}_search"
if [ ! -f "$SEARCH/pick.json" ]; then
  # the cache in $SEARCH makes an interrupted search replay what it already scored
  "$PY" -m paddle_binbert.cli search-length --checkpoint "$LD" --task_name squad --predict_file "$DEV" \
    --max_seq_length 384 --output_dir "$SEARCH" --max_eval_examples "$SEARCH_EXAMPLES" \
    --population_size 12 --evo_iter 2 --mutation_size 5 --crossover_size 5
fi
PICK=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['pick']['config'])" "$SEARCH/pick.json")
CHECK="$RUNS/${NAME}_pick_all"
if [ ! -f "$CHECK/evaluate.json" ]; then
  "$PY" -m paddle_binbert.cli search-length --checkpoint "$LD" --task_name squad --predict_file "$DEV" \
    --max_seq_length 384 --output_dir "$CHECK" --length_config "$PICK" --evaluate
fi
if [ ! -f "$CHECK/speed.md" ]; then
  "$PY" -m paddle_binbert.cli search-length --checkpoint "$LD" --task_name squad --predict_file "$DEV" \
    --max_seq_length 384 --output_dir "$CHECK" --length_config "$PICK" --measure
fi
mkdir -p "$OUT"
cp "$RUNS/teacher/results.json" "$OUT/teacher_results.json"
cp "$LD/results.json" "$OUT/train_results.json"
cp "$SEARCH"/{all_configs.csv,pareto.csv,pareto.md,pick.json} "$OUT/"
[ -f "$SEARCH/pareto.png" ] && cp "$SEARCH/pareto.png" "$OUT/"
cp "$CHECK/evaluate.json" "$OUT/evaluate_pick_all.json"
cp "$CHECK/speed.md" "$OUT/speed.md"
echo "done: $OUT"
