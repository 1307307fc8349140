#!/usr/bin/env bash
# The test suite: notebook tests (nbdev-test) then the pytest integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# the project environment scripts/setup.sh makes on a system whose Python is externally managed (PEP 668)
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nbdev-test --n-workers "${NBDEV_WORKERS:-2}" --timing
set +e
python -m pytest -q tests "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest: no integration tests collected"; rc=0; fi
exit $rc
