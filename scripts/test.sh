#!/usr/bin/env bash
# The test suite: notebook tests (nbdev-test), then the notebooks that have `#| slow` cells again with
# those cells on, then the pytest integration tests. TT_SKIP_SLOW=1 leaves out the slow run (local use).
set -euo pipefail
cd "$(dirname "$0")/.."
# the project environment scripts/setup.sh makes on a system whose Python is externally managed (PEP 668)
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nbdev-test --n-workers "${NBDEV_WORKERS:-2}" --timing
# slow cells: only the notebooks holding one are run (again, whole, with `--flags slow`)
slow=$(grep -l '"#| slow' nbs/*.ipynb | xargs -r -n1 basename | sed 's/\./\\./g' | paste -sd'|' -)
if [ -n "$slow" ] && [ "${TT_SKIP_SLOW:-0}" != 1 ]; then
  echo "slow cells: $slow"
  nbdev-test --flags slow --n-workers "${NBDEV_WORKERS:-2}" --timing --file-re "^($slow)\$"
fi
set +e
python -m pytest -q tests "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest: no integration tests collected"; rc=0; fi
exit $rc
