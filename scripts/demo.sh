#!/usr/bin/env bash
# The demo: install, convert MiniLM-L6, fine-tune a teacher on the bundled SST-2 sample, distil a
# BiBERT 1-1-1 student, print both dev accuracies and the student's size. ~10 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
VENV=${VENV:-.venv}
"$VENV/bin/python" examples/demo.py "$@"
