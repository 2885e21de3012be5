#!/usr/bin/env bash
# Create or reuse the repo's virtual environment (.venv) and install fmrecon
# into it. Sourced by quickstart.sh and test.sh; safe to run again (a stamp of
# what was installed skips the install when nothing changed).
#
# By default every package comes at the exact version of the lock for the
# venv's Python (requirements/lock-py311.txt for CPython 3.11: the versions the
# suite is run on; made by scripts/lock.sh from pyproject.toml). The lock pins
# the CPU wheel torch==2.13.0+cpu, so a CPU machine never pulls a CUDA build.
#
# Settings (environment variables):
#   FMRECON_VENV   where the venv lives (default: .venv in the repository)
#   FMRECON_LOCK   a lock file to install instead of the default one, or `none` to
#                  install pyproject.toml's version ranges at their newest releases
#                  (what `pip install .` gives a library user; scripts/check-latest.sh)
#   FMRECON_TORCH  a torch requirement installed instead of the lock's CPU wheel, e.g.
#                  on a GPU cluster "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
#   PYTHON         the interpreter that creates the venv (default: python3)
set -euo pipefail
FMRECON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FMRECON_VENV:-$FMRECON_ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[fmrecon] creating virtual environment in $VENV" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
fi
pyver="$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
lock="${FMRECON_LOCK:-$FMRECON_ROOT/requirements/lock-py$pyver.txt}"
if [ "$lock" != none ] && [ ! -f "$lock" ]; then
  if [ -n "${FMRECON_LOCK:-}" ]; then
    echo "[fmrecon] FMRECON_LOCK=$lock: no such file" >&2
    exit 1
  fi
  echo "[fmrecon] no lock for Python ${pyver:0:1}.${pyver:1} (locked: $(cd "$FMRECON_ROOT/requirements" && ls lock-py*.txt | tr '\n' ' ')); installing pyproject.toml's version ranges instead" >&2
  lock=none
fi
stamp="$VENV/.fmrecon-installed"
want="$( { cat "$FMRECON_ROOT/pyproject.toml" "$FMRECON_ROOT/scripts/bootstrap.sh"
           [ "$lock" = none ] || cat "$lock"
           echo "lock=$lock torch=${FMRECON_TORCH:-}"; } | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log="$VENV/install.log"
  echo "[fmrecon] installing dependencies into $VENV ($( [ "$lock" = none ] && echo "newest releases in pyproject.toml's ranges" || echo "lock ${lock#"$FMRECON_ROOT"/}"); log: $log)" >&2
  : > "$log"
  pipi() { "$VENV/bin/python" -m pip install "$@" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }; }
  if [ "$lock" = none ]; then
    pipi --upgrade pip
    # torch first: a bare `torch` (the range below) would take a CUDA build; this is the CPU wheel
    # shellcheck disable=SC2086
    pipi ${FMRECON_TORCH:-torch==2.13.0}
    # every other package at its newest allowed release; torch stays the build just installed
    # (an upgrade would replace the CPU wheel with a CUDA build)
    "$VENV/bin/python" -c "import torch; print('torch==' + torch.__version__)" 2>/dev/null > "$VENV/torch-constraint.txt"
    pipi --upgrade --upgrade-strategy eager -c "$VENV/torch-constraint.txt" -e "$FMRECON_ROOT[dev]"
  else
    # the lock's own pip first, so that every fresh venv resolves and installs the same way
    pipi "$(grep -E '^pip==' "$lock" | cut -d' ' -f1)"
    reqs="$lock"
    if [ -n "${FMRECON_TORCH:-}" ]; then
      # shellcheck disable=SC2086
      pipi $FMRECON_TORCH
      reqs="$VENV/lock-without-torch.txt"
      grep -v -E '^torch==' "$lock" > "$reqs"
    fi
    pipi -r "$reqs"
    # fmrecon itself: its dependencies are all in the lock, and its build backend too
    pipi --no-deps --no-build-isolation -e "$FMRECON_ROOT"
  fi
  # the reference fastMRI implementation, a test and benchmark oracle only;
  # --no-deps because its requirements pull torchvision, whose wheels built for
  # another torch break lightning/torchmetrics imports on this CPU torch
  pipi --no-deps fastmri==0.3.0
  if "$VENV/bin/python" -c "import torchvision" >/dev/null 2>&1; then
    echo "[fmrecon] torchvision is installed in $VENV; it breaks lightning/torchmetrics on CPU torch: pip uninstall torchvision" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
