"""scripts/gpu-check.sh: its CPU dry run (``--device cpu --tiny``) runs every step
of the GPU check (tiny models, the compiled bench through dynamo's eager backend)
and writes the JSON and text reports; CUDA-only checks say ``skip``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fmrecon_bench.gpu_check as gpu_check

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu-check.sh"
# what a CPU can run, and what only a GPU can show
EXPECTED = {
    "environment": "info", "bench": "pass", "bench_compiled": "pass", "memory": "skip",
    "train": "pass", "pinned": "skip", "non_blocking": "skip", "fft_dtypes": "pass",
    "deterministic": "pass", "ddp": "skip",
}  # fmt: skip


@pytest.mark.slow  # ~60 s on 2 cores (measured 58 s)
def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "report"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}  # fmt: skip
    proc = subprocess.run([str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((out / "gpu-check.json").read_text())
    assert result["tiny"] is True and result["device"] == "cpu"
    assert {s["step"]: s["status"] for s in result["steps"]} == EXPECTED
    assert list(gpu_check.STEPS) == list(EXPECTED)  # every step ran, in order
    steps = {s["step"]: s for s in result["steps"]}
    # the training step ran bf16 autocast through Lightning and recorded the TF32 policy
    probe = steps["train"]["detail"]["probe"]
    assert probe["autocast_dtype"] == "torch.bfloat16" and probe["tf32_matmul"] is False
    assert steps["train"]["detail"]["environment_tf32"] is False
    assert steps["train"]["detail"]["summary"]["global_step"] == 4
    # the compiled bench compiled, and reports the time apart
    rows = steps["bench_compiled"]["detail"]["rows"]
    assert rows and all(r["compile_s"] > 0 for r in rows)
    # and measured goal 8 (eager / compiled, FM-VarNet judged, E2E-VarNet reported)
    goals = steps["bench_compiled"]["detail"]["goals"]
    assert set(goals) == {"8", "8e"} and all(g["figure"] > 0 for g in goals.values())
    assert all(v == ["torch.complex64"] for v in steps["fft_dtypes"]["detail"].values())
    assert "\n" not in steps["deterministic"]["detail"]["refusal"]
    assert len(steps["memory"]["detail"]) == 8  # 2 models x 2 precisions x train / infer
    text = (out / "gpu-check.txt").read_text()
    assert all(name in text for name in EXPECTED) and "0 fail" in text
    assert (out / "bench.json").is_file() and (out / "bench_compiled.txt").is_file()


def test_gpu_check_refuses_cuda_without_a_gpu(capsys):
    if gpu_check.torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
