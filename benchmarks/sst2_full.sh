#!/usr/bin/env bash
# The full-SST-2 measurement of the README: MiniLM-L6 teacher fine-tuned on all 67,349 SST-2
# training sentences (1 epoch), then a BiBERT 1-1-1 student distilled from it for 1 epoch with the
# BiBERT release's flags (max_seq_length 64). Resumable: re-run the script after an interruption.
# Copies both results.json files to benchmarks/results/sst2_full/ at the end.
# TEACHER_ONLY=1 stops after the teacher (benchmarks/length_sst2_bit.sh starts from it).
#   GLUE=../shared/data/glue RUNS=runs bash benchmarks/sst2_full.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GLUE=${GLUE:-../shared/data/glue}
RUNS=${RUNS:-runs}
resume() { [ -d "$1" ] && ls "$1" | grep -q '^checkpoint-' && echo --resume || true; }

if [ ! -f "$RUNS/sst2_teacher/results.json" ]; then
  "$PY" examples/run_glue.py --model_name_or_path minilm --task_name SST-2 --data_dir "$GLUE/SST-2" \
    --max_seq_length 64 --batch_size 32 --learning_rate 5e-5 --num_train_epochs 1 \
    --eval_steps 500 --save_steps 500 --logging_steps 50 --output_dir "$RUNS/sst2_teacher" \
    $(resume "$RUNS/sst2_teacher")
fi
[ "${TEACHER_ONLY:-0}" = 1 ] && exit 0
if [ ! -f "$RUNS/sst2_bibert/results.json" ]; then
  "$PY" examples/task_distill.py --model_type bert --student_model_name_or_path "$RUNS/sst2_teacher" \
    --teacher_model_type bert --teacher_path "$RUNS/sst2_teacher" --task_name SST-2 \
    --data_dir "$GLUE/SST-2" --max_seq_length 64 --batch_size 32 --learning_rate 1e-4 \
    --num_train_epochs 1 --eval_steps 500 --logging_steps 50 --output_dir "$RUNS/sst2_bibert" \
    --bi --pred_distill --query_distill --key_distill --value_distill --intermediate_distill \
    $(resume "$RUNS/sst2_bibert")
fi
mkdir -p benchmarks/results/sst2_full
cp "$RUNS/sst2_teacher/results.json" benchmarks/results/sst2_full/teacher_results.json
cp "$RUNS/sst2_bibert/results.json" benchmarks/results/sst2_full/bibert_results.json
