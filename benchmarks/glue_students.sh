#!/usr/bin/env bash
# Long runs of issue 23 on one GLUE task: the MiniLM-L6 teacher on all of the task's training data,
# then 1-1-1 students distilled from it, each resumable (re-run this script after an interruption:
# finished runs are skipped, unfinished ones continue from their last checkpoint). Run folders live
# in $RUNS/<prefix>_<label> (default ../runs, outside the checkout; prefix sst2 / stsb); after
# every evaluation `benchmarks/sync_curves.sh` (started alongside) copies the curves into
# benchmarks/results/<prefix>_students/ and commits them.
#
#   TASK=SST-2 PY=.venv/bin/python GLUE=../shared/data/glue RUNS=../runs bash benchmarks/glue_students.sh [LABEL ...]
#
# TASK: SST-2 (default) or STS-B. LABEL: teacher or a student below (default: the teacher, then
# every student of the task, in order). Each run takes ${THREADS:-1} math threads; to use two
# cores with THREADS=1, start a second copy for other students only after the teacher exists (two
# copies would both train the teacher). TEACHER=DIR distils from that folder instead (it is not
# trained here then). EPOCHS overrides the students' epochs (per stage for multi-step runs).
set -euo pipefail
cd "${REPO:-$(dirname "$0")/..}"  # REPO: the checkout, when running a copy of this script
PY=${PY:-.venv/bin/python}
GLUE=${GLUE:-../shared/data/glue}
RUNS=${RUNS:-../runs}
TASK=${TASK:-SST-2}
export OMP_NUM_THREADS=${THREADS:-1}
# training only: Paddle's MKL on its AVX2 kernels on AMD CPUs (paddle_binbert/cpu_tuning.py; docs/training.md)
export PADDLE_BINBERT_MKL_AVX2=${PADDLE_BINBERT_MKL_AVX2:-1}
DATA="$GLUE/$TASK"
case "$TASK" in
  # SST-2: 67,349 short sentences; the release's max length 64. One epoch per student (2,105 steps
  # at batch 32, 4,210 at batch 16).
  # CHAIN: the optimisation flags of the task's multi-step chains (bit_multistep, bit_multistep_a[2]).
  SST-2) PREFIX=sst2; LEN=64; TEACHER_EPOCHS=1; TEACHER_EVAL=300; STUDENT_EVAL=500; DEFAULT_EPOCHS=1
         STUDENTS="bit bibert bwn bit_multistep bit_epoch2 bit_stage4 bit_multistep_a bit_multistep_a2"
         CHAIN="--optimizer bertadam --batch_size 32 --learning_rate 2e-4 --eval_steps 300" ;;
  # STS-B: 5,749 sentence pairs (regression, Pearson/Spearman); max length 128 as the releases. The
  # releases train 20 epochs per stage; 2 CPU cores afford a few (EPOCHS, default 3).
  STS-B) PREFIX=stsb; LEN=128; TEACHER_EPOCHS=3; TEACHER_EVAL=100; STUDENT_EVAL=120; DEFAULT_EPOCHS=3
         STUDENTS="bit_multistep bibert bit_multistep_a"
         CHAIN="--optimizer bertadam --batch_size 16 --learning_rate 5e-4" ;;
  *) echo "glue_students: TASK must be SST-2 or STS-B, got '$TASK'" >&2; exit 2 ;;
esac
EPOCHS=${EPOCHS:-$DEFAULT_EPOCHS}
TEACHER=${TEACHER:-$RUNS/${PREFIX}_teacher}
mkdir -p "$RUNS"

resume_flag() { # --resume whenever the run folder exists (a run without a checkpoint yet starts over;
  # multi-stage runs keep theirs in stage*/)
  if [ -d "$1" ]; then echo --resume; fi
}

teacher() {
  [ "$TEACHER" != "$RUNS/${PREFIX}_teacher" ] && return 0
  [ -f "$TEACHER/results.json" ] && return 0
  "$PY" examples/run_glue.py --model_name_or_path minilm --task_name "$TASK" --data_dir "$DATA" \
    --max_seq_length "$LEN" --batch_size 32 --learning_rate 5e-5 --num_train_epochs "$TEACHER_EPOCHS" \
    --eval_steps "$TEACHER_EVAL" --logging_steps 50 --output_dir "$TEACHER" $(resume_flag "$TEACHER")
}

student() { # student LABEL task_distill-flags...
  local label=$1; shift
  local out="$RUNS/${PREFIX}_$label"
  [ -f "$out/results.json" ] && return 0
  "$PY" examples/task_distill.py --teacher_path "$TEACHER" --student_model_name_or_path "$TEACHER" \
    --task_name "$TASK" --data_dir "$DATA" --max_seq_length "$LEN" --logging_steps 50 \
    --num_train_epochs "$EPOCHS" --eval_steps "$STUDENT_EVAL" --output_dir "$out" $(resume_flag "$out") "$@"
}

run_one() {
  case "$TASK:$1" in
    *:teacher) teacher ;;
    # BiT one-step at batch 32 and lr 2e-4: the setting benchmarks/diagnose_bit.sh measured (batch
    # 32 trains faster per example on CPU than the release's 16); SST-2 evaluates it every 300 steps.
    SST-2:bit) student bit --method bit --optimizer bertadam --batch_size 32 --learning_rate 2e-4 --eval_steps 300 ;;
    # BiBERT with the release's flags, batch 16, lr 1e-4 (its SST-2 and STS-B value).
    *:bibert) student bibert --bi --pred_distill --query_distill --key_distill --value_distill \
                --intermediate_distill --optimizer bertadam --batch_size 16 --learning_rate 1e-4 ;;
    # BWN 1-1-1 (BinaryBERT's baseline) at BiBERT's budget, for the BiBERT-vs-BWN comparison.
    SST-2:bwn) student bwn --method bwn --optimizer bertadam --batch_size 16 --learning_rate 1e-4 ;;
    # BiT multi-step: FP(ReLU) -> 1-1-2 -> 1-1-1, EPOCHS per stage, with the task's CHAIN flags: SST-2
    # at the one-step run's setting (batch 32, lr 2e-4, dev every 300 steps) so that the two differ
    # only in the chain; STS-B at batch 16 and the BiT release's 5e-4 on the small tasks
    # (configs/methods/bit.yaml).
    *:bit_multistep) student bit_multistep --method bit --distill_chain 32-32-32,1-1-2,1-1-1 $CHAIN ;;
    # A second epoch for the one-step BiT student: its best checkpoint ($RUNS/sst2_bit, step 900) is
    # the initial student (latent weights and quantizer parameters), with a fresh warmup + decay at
    # half the learning rate (a one-stage chain: initialised from the folder, not re-quantized).
    SST-2:bit_epoch2) student bit_epoch2 --student_model_name_or_path "$RUNS/sst2_bit" --method bit \
                        --distill_chain 1-1-1 --optimizer bertadam --batch_size 32 --learning_rate 1e-4 \
                        --eval_steps 300 ;;
    # A fourth stage for the multi-step chain: its 1-1-1 student (80.05, level with its 1-1-2 teacher,
    # 79.47, so nothing is left to learn from that teacher) distilled one more epoch from the chain's
    # FP-ReLU stage (87.50) at a quarter of the learning rate (a one-stage chain: initialised from
    # the folder, not re-quantized).
    SST-2:bit_stage4) student bit_stage4 --teacher_path "$RUNS/sst2_bit_multistep/stage1_32-32-32" \
                        --student_model_name_or_path "$RUNS/sst2_bit_multistep/stage3_1-1-1" --method bit \
                        --distill_chain 1-1-1 --optimizer bertadam --batch_size 32 --learning_rate 5e-5 \
                        --eval_steps 300 ;;
    # STS-B diagnostics (240 steps from the FP-ReLU stage, lr 5e-4): 1-32-32 0.479, 1-1-32 0.432,
    # 1-1-2 0.112 (stsb_students/diagnostics/): the 2-bit activations, not the 1-bit weights and
    # embeddings, lose STS-B. So this chain binarizes weights and embeddings first with FP
    # activations, then goes through 4-bit activations (the spec's other intermediate) to 1-1-1,
    # starting from the task's bit_multistep run's FP-ReLU stage (on SST-2 too: its 1-1-2 stage is
    # where it loses its 8 points).
    *:bit_multistep_a) student bit_multistep_a \
                         --teacher_path "$RUNS/${PREFIX}_bit_multistep/stage1_32-32-32" \
                         --student_model_name_or_path "$RUNS/${PREFIX}_bit_multistep/stage1_32-32-32" \
                         --method bit --distill_chain 1-1-32,1-1-4,1-1-1 $CHAIN ;;
    # The activation-last chain's 1-1-1 stage ends 3.7 points below its 1-1-4 teacher (80.05 against
    # 83.72), where the first chain's 1-1-1 stage lost nothing against its 1-1-2 teacher: this chain goes
    # from the 1-1-4 stage's best student through 2-bit activations (1-1-4 -> 1-1-2 -> 1-1-1; the
    # 1-1-4 student is its first teacher and, re-quantized, its first student).
    SST-2:bit_multistep_a2) student bit_multistep_a2 \
                              --teacher_path "$RUNS/sst2_bit_multistep_a/stage2_1-1-4" \
                              --student_model_name_or_path "$RUNS/sst2_bit_multistep_a/stage2_1-1-4" \
                              --method bit --distill_chain 1-1-2,1-1-1 $CHAIN ;;
    *) echo "glue_students: unknown label '$1' for $TASK (teacher, $STUDENTS)" >&2; return 2 ;;
  esac
}

teacher
for s in "${@:-$STUDENTS}"; do
  for one in $s; do run_one "$one"; done
done
