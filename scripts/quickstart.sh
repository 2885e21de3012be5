#!/usr/bin/env bash
# The quick start, end to end on a CPU (about 10 minutes on 2 cores):
#   1. set up .venv (first run only)
#   2. simulate cardiac cine data (CMRxRecon 2023 layout) and brain data (fastMRI format)
#   3. train a small E2E-VarNet and a small FM-VarNet (CLIP layout, tiny encoder:
#      random-initialised, since no CLIP weights can be downloaded here)
#   4. evaluate both against zero-filled in-distribution (the arXiv 2026 Table 1
#      preset: every image, full field of view, volume max) and cross-domain on
#      the brain set (the Tables 2-3 preset: fastMRI metrics), with tables and figures
#   5. check that both trained models beat zero-filled on SSIM and PSNR at every
#      acceleration in-distribution
# Usage: bash scripts/quickstart.sh        (outputs in quickstart_out/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$FMRECON_ROOT"
OUT=quickstart_out
rm -rf "$OUT"
start=$(date +%s)

echo "== 1/4 simulate =="
fmrecon simulate --out "$OUT/data" --format cmrxrecon --subjects 10 --seed 0 | tail -n 1
fmrecon simulate --out "$OUT/data" --format fastmri --subjects 3 --seed 0 | tail -n 1

echo "== 2/4 train (CPU; progress bars on stderr) =="
for cfg in e2e-varnet fm-varnet; do
  fmrecon train --config "configs/quickstart/$cfg.yaml"
done
ckpts="$OUT/runs/qs-e2e-varnet/checkpoints/best.ckpt $OUT/runs/qs-fm-varnet-clip/checkpoints/best.ckpt"

echo "== 3/4 evaluate =="
echo "-- in-distribution: cardiac test subjects, CMRxRecon uniform masks (24 ACS), every image --"
# shellcheck disable=SC2086
fmrecon evaluate --model zero-filled --checkpoint $ckpts --data "$OUT/data/MultiCoil" \
  --preset configs/paper/evaluation/arxiv2026-in-distribution.yaml \
  --split "$OUT/split.json" --out "$OUT/eval_cardiac" --quiet
echo "-- cross-domain: brain (never seen in training), fastMRI equispaced masks, fastMRI metrics --"
# shellcheck disable=SC2086
fmrecon evaluate --model zero-filled --checkpoint $ckpts --data "$OUT/data/multicoil_val" \
  --preset configs/paper/evaluation/arxiv2026-crossdomain.yaml \
  --out "$OUT/eval_brain" --quiet

echo "== 4/4 check =="
python - "$OUT/eval_cardiac/summary.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
zf = {r["acceleration"]: r for r in rows if r["model"] == "zero-filled"}
ok = True
for r in rows:
    if r["model"] == "zero-filled":
        continue
    z = zf[r["acceleration"]]
    good = r["ssim"] > z["ssim"] and r["psnr"] > z["psnr"]
    ok &= good
    print(f"{'PASS' if good else 'FAIL'}  x{r['acceleration']:<3} {r['model']:<40} "
          f"SSIM {r['ssim']:.4f} vs {z['ssim']:.4f}   PSNR {r['psnr']:.2f} vs {z['psnr']:.2f}")
sys.exit(0 if ok else 1)
PY
echo "quick start done in $(( $(date +%s) - start )) s: tables in $OUT/eval_*/summary.md, figures in $OUT/eval_*/figures/"
