#!/bin/sh
# Regenerate docs/results/ from comparisons written by `ditmos train --compare`.
#   scripts/results.sh COMPARE_DIR [COMPARE_DIR ...] [--out DIR]
# The output folder (default: docs/results of this checkout) is rewritten;
# see docs/results/README.md. Never edit that folder by hand.
set -e
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m ditmos.training.results \
    --out "$ROOT/docs/results" "$@"
