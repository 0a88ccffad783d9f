#!/usr/bin/env bash
# The demo: install, then run the shipped packed 1-bit SST-2 student (examples/models/sst2-1bit):
# Taskflow predictions, accuracy on all 872 dev sentences, engine vs Paddle float32 latency (about 2
# minutes). --train: also fine-tune a MiniLM-L6 teacher on the bundled SST-2 sample and distil a BiT
# 1-1-1 student here (about 13 more minutes on 2 CPU cores). Flags: see `python examples/demo.py -h`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
VENV=${VENV:-.venv}
"$VENV/bin/python" examples/demo.py "$@"
