#!/usr/bin/env bash
# Set up tinytribe for development on a fresh Linux machine (Python >= 3.10, x86_64):
# Debian packages, the verified pinned Python set, the package itself (editable), a Jupyter kernel.
#
# Works on a stock Debian/Ubuntu too, where there is no `python` command and the system Python refuses
# `pip install` (PEP 668, EXTERNALLY-MANAGED): unless it already runs inside a virtual environment (or
# conda), it creates the project environment `.venv/` and installs into it. It then puts a `tinytribe`
# command on PATH (a link to .venv/bin/tinytribe in ~/.local/bin or /usr/local/bin) and prints its path,
# so `bash scripts/setup.sh && tinytribe demo` works as written; scripts/test.sh uses .venv when present.
#   TINYTRIBE_VENV=DIR   put the environment there instead of .venv
#   TINYTRIBE_NO_VENV=1  install into the current Python even outside a virtual environment
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# Debian packages: media tools, rclone (Drive sync), and what a bare system Python lacks (venv, pip)
need=()
for p in ffmpeg espeak-ng rclone sox chromium npm; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
PY=""
for c in python3 python; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then PY=$(command -v "$c"); break; fi
done
[ -n "$PY" ] || need+=(python3)
in_env() { "$1" -c 'import sys, os; sys.exit(not (sys.prefix != sys.base_prefix or os.environ.get("CONDA_PREFIX")))'; }
use_venv=0
if [ -z "${TINYTRIBE_NO_VENV:-}" ] && { [ -z "$PY" ] || ! in_env "$PY"; }; then use_venv=1; fi
if [ $use_venv = 1 ] && { [ -z "$PY" ] || ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; }; then
  need+=(python3-venv python3-pip)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -n "$PY" ] || PY=$(command -v python3)

if [ $use_venv = 1 ]; then
  VENV=${TINYTRIBE_VENV:-$ROOT/.venv}
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating the project environment $VENV (system Python: $PY)"
    # --system-site-packages: what the interpreter already has is reused (instant where the pinned set is
    # installed already, e.g. CI); on a stock Debian/Ubuntu pip below installs everything into the venv
    "$PY" -m venv --system-site-packages "$VENV"
  fi
  PY="$VENV/bin/python"
fi

"$PY" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
"$PY" -m pip install -q --disable-pip-version-check --no-deps -e .
"$PY" -m ipykernel install --sys-prefix --name python3 >/dev/null

BIN=$(dirname "$PY")
if [ $use_venv = 1 ] && [ "$(command -v tinytribe || true)" != "$BIN/tinytribe" ]; then
  # make `tinytribe` reachable without activating the environment: a link in a folder already on PATH
  linked=""
  for d in "$HOME/.local/bin" /usr/local/bin; do
    case ":$PATH:" in *":$d:"*) ;; *) continue ;; esac
    s=""; [ -w "$d" ] || [ "$d" = "$HOME/.local/bin" ] || s=$SUDO
    if $s mkdir -p "$d" 2>/dev/null && $s ln -sf "$BIN/tinytribe" "$d/tinytribe" 2>/dev/null; then linked="$d/tinytribe"; break; fi
  done
  if [ -n "$linked" ]; then echo "setup: linked $linked -> $BIN/tinytribe"
  else
    # no folder on PATH we may write to: ~/.local/bin is on PATH from the next login (Debian/Ubuntu ~/.profile)
    mkdir -p "$HOME/.local/bin" && ln -sf "$BIN/tinytribe" "$HOME/.local/bin/tinytribe" || true
    echo "setup: NOTE: 'tinytribe' is not on this shell's PATH; run:  export PATH=\"$BIN:\$PATH\"  (or log in again)"
  fi
fi
npm ci --prefix web --no-audit --no-fund >/dev/null   # onnxruntime-web, three, playwright-core: web/ and tests/test_web.py
echo "setup: the tinytribe command is $BIN/tinytribe (activate the environment with: source $BIN/activate)"
echo "tinytribe set up: $("$PY" -c 'import tinytribe; print(tinytribe.__version__)')"
