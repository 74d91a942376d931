#!/usr/bin/env bash
# Every owed GPU figure and the CUDA tests in one command, at most ~8 minutes on one GPU:
#
#   benchmarks/gpu_check.sh             # writes benchmarks/results/gpu-<card>.json
#   benchmarks/gpu_check.sh --dry-run   # the same steps on the CPU at tiny sizes
#
# Arguments go to benchmarks/gpu_check.py (its docstring lists the steps and figures).
# Python: $PYTHON if set, else .venv/bin/python when it imports torch, else python3 (the
# lent GPU machines have torch in python3 but not faiss: a faiss-cpu wheel in .whl/ is then
# installed to a temporary folder; gpu_check.py's docstring says how to fetch it).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then
    PY=.venv/bin/python
  else
    PY=python3
  fi
fi
if ! "$PY" -c "import faiss" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    site=$(mktemp -d /tmp/gpu-check-site.XXXXXX)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target "$site" .whl/*.whl || exit 2
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu_check: $PY cannot import faiss (reidlib needs it); carry faiss-cpu in .whl/" >&2
    exit 2
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The script keeps to its --budget (470 s by default); this is the backstop.
timeout --kill-after=10 "${GPU_CHECK_TIMEOUT:-510}" "$PY" benchmarks/gpu_check.py "$@"
