#!/usr/bin/env bash
# Create or reuse the repo's virtual environment (.venv) and install fmrecon
# into it. Sourced by quickstart.sh and test.sh; safe to run again (a stamp
# of pyproject.toml skips the install when nothing changed).
#
# torch is installed first and pinned: on a CPU machine `torch==2.13.0` from
# PyPI is the CPU wheel that this project is tested with; a bare `torch` would
# pull a multi-GB CUDA build. Override with FMRECON_TORCH (e.g. on a GPU cluster:
# FMRECON_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126").
set -euo pipefail
FMRECON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FMRECON_VENV:-$FMRECON_ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[fmrecon] creating virtual environment in $VENV" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
fi
stamp="$VENV/.fmrecon-installed"
want="$(cat "$FMRECON_ROOT/pyproject.toml" "$FMRECON_ROOT/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[fmrecon] installing dependencies into $VENV (log: $VENV/install.log)" >&2
  log="$VENV/install.log"
  : > "$log"
  pipi() { "$VENV/bin/python" -m pip install "$@" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }; }
  pipi --upgrade pip
  if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    pipi ${FMRECON_TORCH:-torch==2.13.0}
  fi
  pipi -e "$FMRECON_ROOT[dev]"
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
