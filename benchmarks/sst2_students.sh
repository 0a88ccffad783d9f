#!/usr/bin/env bash
# Long SST-2 runs of issue 23: the MiniLM-L6 teacher on all of SST-2, then 1-1-1 students on all of
# SST-2, each resumable (re-run this script after an interruption: finished runs are skipped,
# unfinished ones continue from their last checkpoint). Run folders live in $RUNS (default ../runs,
# outside the checkout); after every evaluation `benchmarks/sync_curves.sh` (started alongside)
# copies the curves into benchmarks/results/sst2_students/ and commits them.
#
#   PY=.venv/bin/python GLUE=../shared/data/glue RUNS=../runs bash benchmarks/sst2_students.sh [STUDENT ...]
#
# STUDENT: any of the labels below (default: all, in this order). Each takes ${THREADS:-1} math
# threads; to use two cores with THREADS=1, start a second copy for other students only after the
# teacher exists (two copies would both train the teacher).
set -euo pipefail
cd "${REPO:-$(dirname "$0")/..}"  # REPO: the checkout, when running a copy of this script
PY=${PY:-.venv/bin/python}
GLUE=${GLUE:-../shared/data/glue}
RUNS=${RUNS:-../runs}
export OMP_NUM_THREADS=${THREADS:-1}
DATA="$GLUE/SST-2"
# TEACHER=DIR: distil from that folder instead (it is not trained here then)
TEACHER=${TEACHER:-$RUNS/sst2_teacher}
mkdir -p "$RUNS"

resume_flag() { # --resume whenever the run folder exists (a run without a checkpoint yet starts over;
  # multi-stage runs keep theirs in stage*/)
  if [ -d "$1" ]; then echo --resume; fi
}

teacher() {
  [ "$TEACHER" != "$RUNS/sst2_teacher" ] && return 0
  [ -f "$TEACHER/results.json" ] && return 0
  "$PY" examples/run_glue.py --model_name_or_path minilm --task_name SST-2 --data_dir "$DATA" \
    --max_seq_length 64 --batch_size 32 --learning_rate 5e-5 --num_train_epochs 1 \
    --eval_steps 300 --logging_steps 50 --output_dir "$TEACHER" $(resume_flag "$TEACHER")
}

student() { # student LABEL task_distill-flags...
  local label=$1; shift
  local out="$RUNS/sst2_$label"
  [ -f "$out/results.json" ] && return 0
  "$PY" examples/task_distill.py --teacher_path "$TEACHER" --student_model_name_or_path "$TEACHER" \
    --task_name SST-2 --data_dir "$DATA" --max_seq_length 64 --logging_steps 50 \
    --output_dir "$out" $(resume_flag "$out") "$@"
}

run_one() {
  case "$1" in
    # BiT one-step, one epoch at batch 32 and lr 2e-4: the setting benchmarks/diagnose_bit.sh measured
    # (batch 32 trains faster per example on CPU than the release's 16).
    bit) student bit --method bit --optimizer bertadam --batch_size 32 --learning_rate 2e-4 --num_train_epochs 1 \
           --eval_steps 300 ;;
    # BiBERT with the release's flags, batch 16, lr 1e-4 (its SST-2 value), one epoch.
    bibert) student bibert --bi --pred_distill --query_distill --key_distill --value_distill \
              --intermediate_distill --optimizer bertadam --batch_size 16 --learning_rate 1e-4 --num_train_epochs 1 --eval_steps 500 ;;
    # BWN 1-1-1 (BinaryBERT's baseline) at BiBERT's budget, for the BiBERT-vs-BWN comparison.
    bwn) student bwn --method bwn --optimizer bertadam --batch_size 16 --learning_rate 1e-4 --num_train_epochs 1 --eval_steps 500 ;;
    # BiT multi-step: FP(ReLU) -> 1-1-2 -> 1-1-1, one epoch per stage.
    bit_multistep) student bit_multistep --method bit --distill_chain 32-32-32,1-1-2,1-1-1 --optimizer bertadam --batch_size 16 \
                     --learning_rate 1e-4 --num_train_epochs 1 --eval_steps 500 ;;
    *) echo "unknown student $1 (bit, bibert, bwn, bit_multistep)" >&2; return 2 ;;
  esac
}

teacher
for s in "${@:-bit bibert bwn bit_multistep}"; do
  for one in $s; do run_one "$one"; done
done
