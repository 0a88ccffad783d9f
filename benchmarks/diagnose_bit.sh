#!/usr/bin/env bash
# The issue-23 diagnostic: does task_distill.py learn a BiT 1-1-1 SST-2 student as fast as the
# 100-line loop of ../shared/diagnostics/bit_minimal_loop.py? Same budget as that loop: the first
# 8,000 training sentences, batch 32, 150 steps, lr 2e-4, dev (all 872 sentences) every 50 steps.
# Variants (one process each, 1 thread; about 8 minutes each on a free core):
#   calib8    the default: learned scales calibrated on 8 random batches, AdamW
#   calib0    the BiT release's first-batch initialisation (under length-grouped batches)
#   bertadam  calib8 with the releases' BertAdam
#
#   TEACHER=../runs/teacher300 PY=.venv/bin/python RUNS=../runs bash benchmarks/diagnose_bit.sh [VARIANT ...]
#
# Curves land in $RUNS/diag_bit_<variant>/learning_curve.csv; copy them to
# benchmarks/results/diagnostics/ to keep them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-../runs}
GLUE=${GLUE:-../shared/data/glue}
TEACHER=${TEACHER:?set TEACHER to a fine-tuned SST-2 teacher folder}
export OMP_NUM_THREADS=${THREADS:-1}
common=(--teacher_path "$TEACHER" --task_name SST-2 --data_dir "$GLUE/SST-2" --max_seq_length 64 --batch_size 32
  --learning_rate 2e-4 --clip_lr 1e-4 --max_train_examples 8000 --max_steps 150 --eval_steps 50
  --logging_steps 25 --method bit --overwrite_output_dir)
for variant in "${@:-calib8 calib0 bertadam}"; do
  for v in $variant; do
    case "$v" in
      calib8) extra=(--optimizer adamw) ;;
      calib0) extra=(--optimizer adamw --calibration_batches 0) ;;
      bertadam) extra=(--optimizer bertadam) ;;
      *) echo "unknown variant $v (calib8, calib0, bertadam)" >&2; exit 2 ;;
    esac
    "$PY" examples/task_distill.py "${common[@]}" "${extra[@]}" --output_dir "$RUNS/diag_bit_$v" \
      > "$RUNS/diag_bit_$v.log" 2>&1
    echo "$v: $(cut -d, -f1,7 "$RUNS/diag_bit_$v/learning_curve.csv" | tr '\n' ' ')"
  done
done
