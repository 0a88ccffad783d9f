#!/usr/bin/env bash
# Keep the committed record of long runs current: every $EVERY seconds (default 300), copy each
# run's learning_curve.csv (and results.json once finished; per stage for multi-stage runs) from
# $RUNS/<prefix>_<label> into benchmarks/results/<name>/<label>/, redraw the task's curves with
# benchmarks/learning_curves.py from every run recorded there (run folder present or not; runs that
# start from another run's student are laid after it by <name>/lineage.yaml) and commit exactly
# those files (nothing else in the work tree). A run folder lost between sessions then leaves its
# curve up to its last evaluation in git, and in the task's plot.
#
#   RUNS=../runs [TEACHER=DIR] PY=.venv/bin/python bash benchmarks/sync_curves.sh SST-2 sst2 sst2_students [--once]
#
# Arguments: GLUE task name, run-folder prefix, results folder name; --once: one pass, no loop.
set -uo pipefail
cd "$(dirname "$0")/.."
TASK=$1; PREFIX=$2; NAME=$3; ONCE=${4:-}
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-../runs}
GLUE=${GLUE:-../shared/data/glue}
EVERY=${EVERY:-300}
if ! [[ $NAME =~ ^[A-Za-z0-9_-]+$ && $PREFIX =~ ^[A-Za-z0-9_-]+$ ]]; then
  echo "sync_curves: prefix and results name must be [A-Za-z0-9_-]+, got '$PREFIX' '$NAME'" >&2
  exit 2
fi
export GIT_LITERAL_PATHSPECS=1
DEST="benchmarks/results/$NAME"

sync_once() {
  local args=() teacher_arg=()
  if [ -n "${TEACHER:-}" ]; then # a teacher folder outside the prefix: keep its record too
    mkdir -p "$DEST/teacher"
    for f in results.json trainer_state.json; do
      [ -f "$TEACHER/$f" ] && cp "$TEACHER/$f" "$DEST/teacher/$f"
    done
    teacher_arg=(--teacher "$DEST/teacher")
  fi
  for run in "$RUNS/${PREFIX}"_*; do
    [ -d "$run" ] || continue
    local label=${run##*/${PREFIX}_}
    while IFS= read -r curve; do
      local rel=${curve#"$run"/}
      mkdir -p "$DEST/$label/$(dirname "$rel")"
      cp "$curve" "$DEST/$label/$rel"
      local res="$(dirname "$curve")/results.json"
      [ -f "$res" ] && cp "$res" "$DEST/$label/$(dirname "$rel")/results.json"
    done < <(find "$run" -maxdepth 2 -name learning_curve.csv -not -path "*/checkpoint-*" | sort)
    if [ -f "$run/results.json" ]; then
      mkdir -p "$DEST/$label" && cp "$run/results.json" "$DEST/$label/results.json"
    fi
  done
  # the plot: every run recorded under $DEST, not only those whose folders are here now
  [ -d "$DEST/teacher" ] && teacher_arg=(--teacher "$DEST/teacher")
  for recorded in "$DEST"/*/; do
    [ -d "$recorded" ] || continue # no folder matched: the pattern itself
    local label=${recorded%/}; label=${label##*/}
    [ "$label" = teacher ] && continue
    if [ -n "$(find "$recorded" -maxdepth 2 -name learning_curve.csv -print -quit)" ]; then
      args+=(--run "$label=$DEST/$label")
    fi
  done
  if [ ${#args[@]} -gt 0 ]; then
    [ -f "$DEST/lineage.yaml" ] && args+=(--lineage "$DEST/lineage.yaml")
    "$PY" benchmarks/learning_curves.py --task_name "$TASK" --data_dir "$GLUE/$TASK" "${args[@]}" \
      "${teacher_arg[@]}" --out "$DEST" > /dev/null || echo "sync_curves: plotting failed" >&2
  fi
  [ -d "$DEST" ] || return 0
  git add -- "$DEST" 2> /dev/null
  if ! git diff --cached --quiet -- "$DEST"; then
    local done=0
    for _ in 1 2 3 4 5; do
      git commit -q -m "$NAME: learning curves $(date -u +%H:%M)" -- "$DEST" && done=1 && break
      sleep 7 # another git command holds the index lock
    done
    # never leave the folder staged in the shared index after a failed commit
    [ "$done" = 1 ] || git reset -q -- "$DEST"
  fi
}

while true; do
  sync_once
  [ "$ONCE" = --once ] && break
  sleep "$EVERY"
done
