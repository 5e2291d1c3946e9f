#!/bin/sh
# Accuracy of the fixed-point MFCC front end against the float one on fsdd_audio:
# trains the quick preset on fsdd_audio (fixed-point features) and on
# fsdd_audio_float (float features) for seeds 0, 1, 2 into RUNS/fixed/seedN and
# RUNS/float/seedN (finished runs are kept, an interrupted one is resumed), then
# writes OUT/frontend_fsdd_audio.md with `ditmos bench frontend`.
#   scripts/frontend_results.sh RUNS [--out DIR]     (DIR: default docs/results)
# One training takes about 12 minutes on one core; TensorFlow uses one thread.
set -e
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: scripts/frontend_results.sh RUNS [--out DIR]" >&2; exit 2; }
RUNS="$1"; shift
OUT="$ROOT/docs/results"
if [ "$1" = "--out" ]; then OUT="$2"; shift 2; fi
[ $# -eq 0 ] || { echo "frontend_results.sh: unknown argument $1" >&2; exit 2; }
DITMOS="${DITMOS:-$ROOT/.venv/bin/ditmos}"
[ -x "$DITMOS" ] || DITMOS=ditmos
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
SEEDS="0 1 2"
for seed in $SEEDS; do
    for kind in fixed float; do
        dataset=fsdd_audio
        [ "$kind" = float ] && dataset=fsdd_audio_float
        run="$RUNS/$kind/seed$seed"
        [ -f "$run/metrics.json" ] && continue
        resume=""
        [ -f "$run/config.json" ] && resume="--resume"
        echo "training $dataset seed $seed -> $run" >&2
        "$DITMOS" train --dataset "$dataset" --preset quick --seed "$seed" --out "$run" --quiet $resume
    done
done
set --
for seed in $SEEDS; do set -- "$@" --fixed "$RUNS/fixed/seed$seed"; done
for seed in $SEEDS; do set -- "$@" --float "$RUNS/float/seed$seed"; done
"$DITMOS" bench frontend "$@" --write "$OUT/frontend_fsdd_audio.md" > /dev/null
