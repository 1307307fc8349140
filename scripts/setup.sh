#!/usr/bin/env bash
# Set up tinytribe for development on a fresh Linux machine (Python >= 3.10, x86_64), in two parts:
#   1. the Python part, which decides success: Debian packages (ffmpeg, espeak-ng, rclone, sox), the verified
#      pinned Python set, the package itself (editable), a Jupyter kernel, a `tinytribe` command on PATH;
#   2. the browser page's packages (npm ci in web/: onnxruntime-web, three, playwright-core for
#      tests/test_web.py; Debian's npm and chromium), which may fail: one warning says how to retry.
#
#   bash scripts/setup.sh            both parts (exit status: the Python part's)
#   bash scripts/setup.sh --web      the browser page's packages only (exit status: theirs)
#   bash scripts/setup.sh --no-web   the Python part only
#
# Works on a stock Debian/Ubuntu too, where there is no `python` command and the system Python refuses
# `pip install` (PEP 668, EXTERNALLY-MANAGED): unless it already runs inside a virtual environment (or
# conda), it creates the project environment `.venv/` and installs into it. It then links `tinytribe` in
# ~/.local/bin (per user; /usr/local/bin only when ~/.local/bin is not on PATH and it is writable without
# sudo), never over another installation's `tinytribe`: it says how to use this checkout's instead.
# scripts/test.sh uses .venv when present.
#   TINYTRIBE_VENV=DIR   put the environment there instead of .venv
#   TINYTRIBE_NO_VENV=1  install into the current Python even outside a virtual environment
#   TINYTRIBE_NO_LINK=1  put no `tinytribe` link anywhere
#   TINYTRIBE_TORCH=cpu  the CPU-only torch build (PyTorch's CPU wheel index): no CUDA libraries (3.2 GB less disk)
#   TINYTRIBE_PIP=always run pip on requirements-dev.txt even when every pin is installed already
set -euo pipefail
mode=all
for a in "$@"; do
  case "$a" in
    --web) mode=web ;;
    --no-web) mode=python ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option $a (try --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
T0=$SECONDS

apt_install() {   # apt_install PKG...: Debian packages; non-zero when they could not be installed
  echo "setup: installing Debian packages: $*"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

web_part() {   # the browser page's packages; prints what happened, non-zero on failure
  local need=() log
  for p in npm chromium; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
  if [ ${#need[@]} -gt 0 ] && ! apt_install "${need[@]}"; then
    command -v npm >/dev/null 2>&1 || { WEB_WHY="Debian's npm could not be installed"; return 1; }
  fi
  log=$(mktemp)
  if npm ci --prefix web --no-audit --no-fund >"$log" 2>&1; then
    rm -f "$log"; echo "setup: the browser page's packages are installed (web/node_modules)"; return 0
  fi
  WEB_WHY="npm ci in web/ failed: $(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-200)"
  rm -f "$log"; return 1
}

web_warning() {
  echo "setup: WARNING: the browser page's packages (web/node_modules) are not installed ($WEB_WHY);" \
       "everything else is set up. Retry with: bash scripts/setup.sh --web" >&2
}

if [ $mode = web ]; then
  if web_part; then exit 0; fi
  echo "setup: FAILED: $WEB_WHY" >&2; exit 1
fi

# ---- 1. the Python part: any failure here fails the set-up ------------------------------------------------
need=()
for p in ffmpeg espeak-ng rclone sox; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
PY=""
for c in python3 python; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then PY=$(command -v "$c"); break; fi
done
[ -n "$PY" ] || need+=(python3)
in_env() { "$1" -c 'import sys, os; sys.exit(not (sys.prefix != sys.base_prefix or os.environ.get("CONDA_PREFIX")))'; }
use_venv=0
if [ -z "${TINYTRIBE_NO_VENV:-}" ] && { [ -z "$PY" ] || ! in_env "$PY"; }; then use_venv=1; fi
VENV=${TINYTRIBE_VENV:-$ROOT/.venv}
if [ $use_venv = 1 ] && [ ! -x "$VENV/bin/python" ] && { [ -z "$PY" ] || ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; }; then
  need+=(python3-venv python3-pip)
fi
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
[ -n "$PY" ] || PY=$(command -v python3)

if [ $use_venv = 1 ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating the project environment $VENV (system Python: $PY)"
    # --system-site-packages: what the interpreter already has is reused (instant where the pinned set is
    # installed already, e.g. CI); on a stock Debian/Ubuntu pip below installs everything into the venv
    "$PY" -m venv --system-site-packages "$VENV"
  fi
  PY="$VENV/bin/python"
fi

# pip runs unless every pin of requirements-dev.txt is installed at its version already (a re-run, or an environment
# that holds the set, e.g. CI: then only the package itself is installed); TINYTRIBE_PIP=always runs it anyway
pins_met() {
  "$PY" - <<'EOF'
import re, sys
from importlib.metadata import version, PackageNotFoundError
for line in open('requirements-dev.txt'):
    line = line.split('#')[0].strip()
    if not line: continue
    m = re.fullmatch(r'([A-Za-z0-9_.\-]+)==([^\s;]+)', line)
    try: ok = bool(m) and version(m[1]) == m[2]
    except PackageNotFoundError: ok = False
    if not ok: sys.exit(1)
EOF
}
if [ "${TINYTRIBE_TORCH:-}" = cpu ] && ! "$PY" -c 'import importlib.metadata as m, sys; sys.exit(not m.version("torch").endswith("+cpu"))' 2>/dev/null; then
  # the CPU-only build of the pinned torch from PyTorch's CPU wheel index (Linux x86_64 and Windows offer one):
  # no CUDA libraries (3.2 GB of the 7.1 GB .venv); pip below then finds torch==X satisfied by X+cpu. A torch
  # installed already (a CUDA build) is replaced, its dependencies kept.
  tv=$(grep -E '^(torch|torchvision)==' requirements-dev.txt | tr '\n' ' ')
  re=""; "$PY" -c 'import importlib.metadata as m; m.version("torch")' 2>/dev/null && re="--force-reinstall --no-deps"
  echo "setup: installing the CPU-only $tv from https://download.pytorch.org/whl/cpu"
  "$PY" -m pip install -q --disable-pip-version-check $re --index-url https://download.pytorch.org/whl/cpu $tv
fi
if [ "${TINYTRIBE_PIP:-}" != always ] && pins_met; then
  echo "setup: the pinned Python set (requirements-dev.txt) is installed already"
else
  echo "setup: installing the pinned Python set (requirements-dev.txt) into $("$PY" -c 'import sys; print(sys.prefix)')"
  "$PY" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
fi
# the package itself, editable; without pip's build isolation where setuptools is at hand (no download)
iso=""; "$PY" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' 2>/dev/null && iso="--no-build-isolation"
"$PY" -m pip install -q --disable-pip-version-check --no-deps $iso -e .
"$PY" -m ipykernel install --sys-prefix --name python3 >/dev/null
BIN=$(dirname "$PY")
"$BIN/tinytribe" --help >/dev/null   # the command runs (an import error fails the set-up here)

# a `tinytribe` on PATH without activating the environment: a per-user link, never over another installation's
link_note=""
on_path() { case ":$PATH:" in *":$1:"*) return 0 ;; esac; return 1; }
place_link() {   # place_link DIR: link DIR/tinytribe -> ours unless DIR holds another installation's
  local l="$1/tinytribe"
  if [ -L "$l" ] && [ "$(readlink "$l")" = "$BIN/tinytribe" ]; then echo "setup: $l already points to this checkout"; return 0; fi
  if [ -e "$l" ]; then
    link_note="$l is another installation's tinytribe (-> $(readlink -f "$l")), left as it is; use this checkout's with  $BIN/tinytribe  or  source $BIN/activate"
    return 0
  fi
  mkdir -p "$1" 2>/dev/null && ln -sfn "$BIN/tinytribe" "$l" 2>/dev/null || return 1   # new, or a dangling link replaced
  echo "setup: linked $l -> $BIN/tinytribe"
}
if [ $use_venv = 1 ] && [ -z "${TINYTRIBE_NO_LINK:-}" ]; then
  user_bin="$HOME/.local/bin"
  if on_path "$user_bin" || [ -e "$user_bin/tinytribe" ] || ! on_path /usr/local/bin || [ ! -w /usr/local/bin ]; then
    place_link "$user_bin" || link_note="could not write $user_bin/tinytribe"
    if [ -z "$link_note" ] && ! on_path "$user_bin"; then
      link_note="$user_bin is not on this shell's PATH (it is from the next login on Debian/Ubuntu); now run:  export PATH=\"$user_bin:\$PATH\""
    fi
  else
    place_link /usr/local/bin || link_note="could not write /usr/local/bin/tinytribe"   # root, no ~/.local/bin on PATH
  fi
  cur=$(command -v tinytribe || true)
  if [ -z "$link_note" ] && [ -n "$cur" ] && [ "$(readlink -f "$cur")" != "$(readlink -f "$BIN/tinytribe")" ]; then
    link_note="'tinytribe' on this PATH is $cur (-> $(readlink -f "$cur")), not this checkout's; use  $BIN/tinytribe  or  source $BIN/activate"
  fi
fi
[ -z "$link_note" ] || echo "setup: NOTE: $link_note"
echo "setup: the Python part is set up in $((SECONDS - T0)) s: the tinytribe command is $BIN/tinytribe (activate the environment with: source $BIN/activate)"
echo "tinytribe set up: $("$PY" -c 'import tinytribe; print(tinytribe.__version__)')"

# ---- 2. the browser page's packages: their failure is a warning ----------------------------------------------
if [ $mode = all ]; then
  web_part || web_warning
fi
exit 0
