"""The CMRxRecon 2025 task-R1 preset pair (configs/cmrxrecon2025): E2E-VarNet and
FM-VarNet trained on some centers, scored on an unseen one, run for a few steps
on simulated 2025 data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fmrecon.cli import main
from fmrecon.data.simulate.multicenter import simulate_cmrxrecon2025
from fmrecon.training.config import load_config

PRESETS = Path(__file__).parent.parent / "configs/cmrxrecon2025"
TINY = {
    "r1-e2e-varnet": [
        "model.options.num_cascades=1",
        "model.options.chans=4",
        "model.options.sens_chans=4",
    ],
    "r1-fm-varnet": [
        "model.options.num_cascades=1",
        "model.options.sens_chans=4",
        "model.encoder_weights=random",
        "model.allow_random_encoder=true",
        "model.encoder_config={hidden_size: 32, num_hidden_layers: 6, "
        "num_attention_heads: 2, intermediate_size: 64, image_size: 28, "
        "patch_size: 14}",
    ],
}


def test_the_pair_differs_only_in_the_model():
    a = load_config(PRESETS / "r1-e2e-varnet.yaml", ["data.root=/x"])
    b = load_config(PRESETS / "r1-fm-varnet.yaml", ["data.root=/x"])
    assert a["data"] == b["data"] and a["optim"] == b["optim"] and a["trainer"] == b["trainer"]
    assert a["data"]["holdout"] == {"by": "center", "test": ["Center005"]}
    assert a["data"]["mask"]["kind"].startswith("cmrxrecon25-")
    assert (a["model"]["name"], b["model"]["name"]) == ("e2e-varnet", "fm-varnet-dinov2")
    assert a["model"]["options"]["num_cascades"] == b["model"]["options"]["num_cascades"] == 12


def test_presets_train_and_score_unseen_center(tmp_path):
    data = tmp_path / "data"
    simulate_cmrxrecon2025(
        data,
        n_subjects=2,
        modalities=["Cine"],
        lax=False,
        size=(40, 40),
        n_slices=1,
        n_frames=2,
        n_coils=2,
    )
    split = tmp_path / "r1-split.json"
    for name, tiny in TINY.items():
        over = [
            f"data.root={data / 'MultiCoil'}",
            f"output_dir={tmp_path}",
            f"data.split={split}",
            "data.num_workers=0",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.progress_bar=false",
            "trainer.accelerator=cpu",
            *tiny,
        ]
        assert main(["train", "--config", str(PRESETS / f"{name}.yaml"), *over]) == 0
    parts = json.loads(split.read_text())
    assert parts["holdout"]["test"] == ["Center005"]
    assert not any(g.startswith("Center005/") for g in parts["train"] + parts["val"])
    assert {g for g in parts["test"] if g.startswith("Center005/")} == {
        "Center005/P001",
        "Center005/P002",
    }
    out = tmp_path / "eval"
    ckpts = [str(tmp_path / n / "checkpoints/best.ckpt") for n in TINY]
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            *ckpts,
            "--data",
            str(data),
            "--split",
            str(split),
            "--split-name",
            "test",
            "--mask",
            "cmrxrecon25-kt-gaussian",
            "--accelerations",
            "8",
            "--convention",
            "cmrxrecon2025",
            "--out",
            str(out),
            "--no-figures",
            "--quiet",
            "--workers",
            "0",
        ]
    )
    assert rc == 0
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["model"] for r in rows} == {"e2e-varnet", "fm-varnet-dinov2"}
    assert "Center005" in {r["center"] for r in rows}
    text = (out / "summary.md").read_text()
    for model in ("e2e-varnet", "fm-varnet-dinov2"):
        assert f"| {model} | x8 | Center005 |" in text


@pytest.mark.parametrize("name", sorted(TINY))
def test_presets_dry_run(name, capsys):
    assert main(["train", "--config", str(PRESETS / f"{name}.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "  holdout:\n    by: center\n    test: [Center005]\n" in out
