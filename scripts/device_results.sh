#!/bin/sh
# Measure every deployable method of a comparison on one board and write
# docs/results/device_<dataset>_<preset>_<board>.md (see
# ditmos/harness/device_results.py). Never edit that file by hand.
#   scripts/device_results.sh RUN [--board mps2_an500] [--work DIR] [--limit N] [--jobs J]
set -e
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m ditmos.harness.device_results \
    --out "$ROOT/docs/results" "$@"
