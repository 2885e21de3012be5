"""The training smoke benchmark (fmrecon_bench.train_smoke) runs configs
through the training code and reports what it promises; the paper-size table
itself is a benchmark run, not a test (an FM-VarNet step takes ~15 s on CPU)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fmrecon_bench import train_smoke


@pytest.fixture(scope="module")
def smoke():
    return train_smoke


def test_smoke_rows_for_a_varnet_and_a_224_protocol_config(smoke, tmp_path, capsys):
    """A small E2E-VarNet and the MIDL U-Net config (paper size, its 224 x 224
    made a reduced square): every field there, losses finite, the norm at
    initialisation the model's own."""
    out = tmp_path / "smoke.json"
    configs = ["configs/quickstart/e2e-varnet.yaml", "configs/paper/midl2025/unet-x4.yaml"]
    argv = ["--configs", *configs, "--steps", "4", "--size", "40", "32", "--subjects", "3"]
    code = smoke.main([*argv, "--json", str(out)])
    rows = json.loads(out.read_text())
    assert code == (0 if all(r["falls"] for r in rows) else 1)
    assert [Path(r["config"]).stem for r in rows] == ["unet-x4", "e2e-varnet"]  # sorted paths
    unet, varnet = rows
    assert varnet["model"] == "e2e-varnet" and unet["model"] == "unet"
    assert unet["trainable_params"] == 31_023_745  # the paper config's size, not a tiny one
    assert unet["batch_size"] == 8 and unet["optimizer"] == "adamw lr 0.0002"
    for r in rows:
        assert r["steps"] == 4 and len(r["losses"]) == 4 and r["finite"]
        assert all(0.0 <= v <= 2.0 for v in r["losses"])  # 1 - SSIM, SSIM in [-1, 1]
        assert math.isfinite(r["norm_at_init"]) and 0.3 < r["norm_at_init"] < 3.0
        q = 1  # a quarter of 4 steps
        assert r["loss_first"] == pytest.approx(sum(r["losses"][:q]) / q)
        assert r["loss_last"] == pytest.approx(sum(r["losses"][-q:]) / q)
        assert r["falls"] == (r["loss_last"] < r["loss_first"])
    table = capsys.readouterr().out
    assert "| quickstart/e2e-varnet | " in table and "| midl2025/unet-x4 | 31.02M | 8 |" in table

    # --resume keeps the rows it has and runs only the missing configs
    out.write_text(json.dumps([unet]))
    smoke.main([*argv, "--json", str(out), "--resume"])
    assert "1 configs already in" in capsys.readouterr().out
    again = json.loads(out.read_text())
    assert [Path(r["config"]).stem for r in again] == ["unet-x4", "e2e-varnet"]
    assert again[0] == unet  # not run again


def test_smoke_without_a_matching_config_is_an_error(smoke, capsys):
    assert smoke.main(["--configs", "configs/nothing-*.yaml"]) == 2
    assert "no config matches" in capsys.readouterr().err
