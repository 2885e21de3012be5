"""trainer.logger: the CSV log always, TensorBoard, Weights & Biases and MLflow
on request (optional packages: one line when missing). The W&B and MLflow
runs are real (offline W&B, MLflow's SQLite store) where the packages are
installed, and skipped with the reason where they are not."""

from __future__ import annotations

import csv
import importlib.util
import sqlite3
from pathlib import Path

import pytest
import yaml

from fmrecon.cli import main
from fmrecon.data.simulate import simulate_cmrxrecon
from fmrecon.training.config import load_config

TINY = {"num_cascades": 2, "chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 2}
RUN = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loggers")
    simulate_cmrxrecon(
        root / "data", 4, size=(48, 40), n_slices=1, n_frames=2, n_coils=3, lax=False
    )
    cfg = {
        "output_dir": str(root / "runs"),
        "model": {"name": "e2e-varnet", "options": TINY},
        "data": {"root": str(root / "data"), "num_workers": 0},
        "trainer": {"accelerator": "cpu", "progress_bar": False},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _val_ssim(run: Path) -> float:
    with open(run / "csv/version_0/metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["val_ssim"]]
    return float(rows[-1]["val_ssim"])


def _needs(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"the {package} package is not installed (pip install 'fmrecon[{package}]')")


def test_bad_or_missing_loggers_are_one_line(config, monkeypatch):
    with pytest.raises(Exception, match="unknown logger 'neptune' .choose from tensorboard"):
        load_config(config, ["trainer.logger=[tensorboard,neptune]"])
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(Exception) as err:
        load_config(config, ["trainer.logger=wandb"])
    msg = str(err.value)
    assert msg == (
        "trainer.logger wandb: the wandb package is not installed (pip install 'fmrecon[wandb]')"
    )
    assert load_config(config, ["trainer.logger=[]"])["trainer"]["logger"] == []


def test_csv_only_and_tensorboard(config, capsys):
    runs = config.parent / "runs"
    assert main(["train", "--config", str(config), "name=csv-only", "trainer.logger=[]", *RUN]) == 0
    assert not (runs / "csv-only/tensorboard").exists() and _val_ssim(runs / "csv-only") > 0
    assert main(["train", "--config", str(config), "name=tb", *RUN]) == 0  # the default
    assert list((runs / "tb/tensorboard").rglob("events.out.tfevents.*"))


def test_wandb_offline_run_holds_the_validation_metrics(config, monkeypatch):
    _needs("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # two runs in one process (a notebook, a sweep): each its own finished W&B run
    for name in ("wb", "wb2"):
        argv = ["train", "--config", str(config), f"name={name}", "trainer.logger=wandb", *RUN]
        assert main([*argv, f"seed={len(name)}"]) == 0
    for name in ("wb", "wb2"):
        run = config.parent / "runs" / name
        (log,) = run.glob("wandb/offline-run-*/run-*.wandb")
        data = log.read_bytes()
        # W&B's history records keep each value as its JSON text: the CSV's val_ssim
        assert b"val_ssim" in data and repr(_val_ssim(run)).encode() in data


def test_mlflow_run_holds_the_validation_metrics(config, monkeypatch):
    _needs("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = ["train", "--config", str(config), "name=mlf", "trainer.logger=[mlflow]", *RUN]
    assert main(argv) == 0
    run = config.parent / "runs/mlf"
    with sqlite3.connect(run / "mlflow.db") as db:  # MLflow's default store, in the run
        metrics = dict(db.execute("select key, value from metrics").fetchall())
        assert db.execute("select name from runs").fetchall() == [("mlf",)]
    assert metrics["val_ssim"] == _val_ssim(run)
