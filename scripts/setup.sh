#!/usr/bin/env bash
# Set up tinytribe for development on a fresh Linux machine (Python 3.11, x86_64):
# Debian packages, the verified pinned Python set, the package itself (editable), a Jupyter kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in ffmpeg espeak-ng rclone sox chromium npm; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
python -m pip install -q --disable-pip-version-check --no-deps -e .
python -m ipykernel install --sys-prefix --name python3 >/dev/null
npm ci --prefix web --no-audit --no-fund >/dev/null   # onnxruntime-web, three, playwright-core for web/ and tests/test_web.py
echo "tinytribe set up: $(python -c 'import tinytribe; print(tinytribe.__version__)')"
