#!/usr/bin/env bash
# Set up .venv (first run only) and run the checks: ruff, then the test suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$FMRECON_ROOT"
ruff check src tests
ruff format --check src tests
# two workers on two cores, one thread each (subprocesses of tests inherit it)
OMP_NUM_THREADS=1 python -m pytest -q -n 2 "$@"
