#!/usr/bin/env bash
# Refresh the lock that scripts/bootstrap.sh installs: the newest releases that
# pyproject.toml's ranges (with the `dev` extra) and requirements/lock.in allow,
# resolved by pip-tools' pip-compile with this machine's pip configuration, for
# the Python that runs it (default python3.11: requirements/lock-py311.txt).
#   bash scripts/lock.sh                       # refresh, then run bash scripts/test.sh
#   PYTHON=python3.12 bash scripts/lock.sh     # a lock for another Python
# torch must resolve to a CPU build (torch==2.13.0+cpu): where pip's sources do not
# hold one, add the CPU index first, e.g.
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/lock.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3.11}"
pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
"$py" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q --upgrade pip pip-tools 2>&1 | grep -v "is ignored" >&2 || true
out="$root/requirements/lock-py$pyver.txt"
cd "$root"
CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$tools/venv/bin/pip-compile" --quiet --upgrade --extra dev --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --annotation-style line \
  -o "$out" pyproject.toml requirements/lock.in >"$tools/log" 2>&1 || { tail -n 30 "$tools/log" >&2; exit 1; }
if ! grep -q -E '^torch==[^ ]+\+cpu ' "$out" || grep -q -E '^(nvidia-|triton==)' "$out"; then
  echo "[fmrecon] $out: torch did not resolve to a CPU build ($(grep -E '^torch==' "$out" | cut -d' ' -f1)); add a source of CPU wheels (see the top of scripts/lock.sh)" >&2
  exit 1
fi
echo "[fmrecon] wrote $out; now run: bash scripts/test.sh" >&2
