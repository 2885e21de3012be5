#!/usr/bin/env bash
# The quick start: set up .venv (first run only), simulate a small cardiac
# (CMRxRecon 2023 layout) and brain (fastMRI) dataset, and evaluate the
# zero-filled baseline on both. Usage: bash scripts/quickstart.sh [OUT_DIR]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
OUT="${1:-quickstart_out}"
rm -rf "$OUT/data"
fmrecon simulate --out "$OUT/data" --seed 0 | tail -n 1
echo
echo "== in-distribution: cardiac cine, CMRxRecon 2023 uniform masks (24 ACS), official ranking =="
fmrecon evaluate --model zero-filled --data "$OUT/data/MultiCoil" \
  --mask cmrxrecon-uniform --accelerations 4 8 10 --convention cmrxrecon \
  --out "$OUT/eval_cardiac" --quiet
echo
echo "== cross-domain: brain, fastMRI equispaced masks, centre fractions 0.04 / 0.08 =="
fmrecon evaluate --model zero-filled --data "$OUT/data/multicoil_val" \
  --mask equispaced-fraction --accelerations 4 8 10 --center-fractions 0.04 0.08 \
  --convention fastmri --out "$OUT/eval_brain" --quiet
