"""Resume is exact: a `fmrecon train` run SIGKILLed in the middle of an epoch,
after a mid-epoch checkpoint, and continued with ``--resume`` ends with the
same weights, bit for bit, as an uninterrupted run, with data-loader worker
processes (Lightning makes the epoch's iterator before ``set_epoch`` on
resume, and does not skip the batches already trained unless the loader is
stateful: see fmrecon.training.data.ResumableLoader)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import Dataset

from fmrecon.cli import main
from fmrecon.data.simulate import simulate_cmrxrecon
from fmrecon.training.data import EpochBatchSampler, ResumableLoader
from fmrecon.training.run import checkpoint_threads, latest_checkpoint

# 8 training items (4 subjects x 2 frames), batch 1: 8 steps an epoch, 3 epochs
STEPS_PER_EPOCH, EPOCHS = 8, 3
CHECKPOINT_EVERY, KILL_AT = 4, 14  # a checkpoint at step 12 (epoch 1, batch 4), killed at 14

# a real `fmrecon train` (the CLI's main) with one callback more: SIGKILL after
# the optimiser step KILL_AT, two steps after the last mid-epoch checkpoint
CHILD = """
import os, signal, sys
import lightning as L
from fmrecon import cli
from fmrecon.training import run

class Kill(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)

make_trainer = run.make_trainer
run.make_trainer = lambda cfg, out, extra=(): make_trainer(cfg, out, (*extra, Kill()))
sys.exit(cli.main(["train", *sys.argv[2:]]))
"""

MODELS = {
    "e2e-varnet": {"num_cascades": 2, "chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 2},
    # dropout: random draws in the model itself
    "unet": {"chans": 4, "num_pools": 2, "drop_prob": 0.2},
}


@pytest.fixture(scope="module")
def cine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cine")
    simulate_cmrxrecon(root, 6, seed=1, size=(48, 40), n_slices=1, n_frames=2, n_coils=3, lax=False)
    return root


def _config(tmp_path: Path, data: Path, model: str) -> Path:
    cfg = {
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": model, "options": MODELS[model]},
        "data": {"root": str(data), "split": str(tmp_path / "split.json"), "num_workers": 0,
                 "mask": {"kind": "cmrxrecon-uniform", "accelerations": [4, 8]}},
        # the schedule changes the lr every epoch: its state must survive the kill
        "optim": {"name": "adamw", "weight_decay": 0.01, "lr_step_epochs": 1, "lr_gamma": 0.5},
        "trainer": {"max_epochs": EPOCHS, "accelerator": "cpu", "progress_bar": False,
                    "early_stopping_patience": 0, "checkpoint_every_n_steps": CHECKPOINT_EVERY,
                    "log_every_n_steps": 1},
    }  # fmt: skip
    path = tmp_path / f"{model}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _state(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


@contextmanager
def threads(n: int):
    """This process's intra-op thread count set to ``n`` for a while."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "workers", "run_threads", "resume_threads", "compiled"),
    # CPU kernels round differently with 1 and 2 intra-op threads (an E2E-VarNet's
    # 1x1 convolution by 2e-7): resumed by a process with another count, the run
    # must go on with its own (fmrecon.training.run.checkpoint_threads)
    # trainer.compile (dynamo's graphs without inductor's code generation, which
    # takes minutes on 2 cores): compiled in place, the same checkpoints and resume
    [("e2e-varnet", 1, 2, 1, None), ("unet", 2, 1, 2, None),
     ("e2e-varnet", 0, 1, 2, "{backend: eager}")],
)  # fmt: skip
def test_killed_mid_epoch_and_resumed_with_workers_is_bit_exact(
    model, workers, run_threads, resume_threads, compiled, tmp_path, cine, capsys
):
    cfg = _config(tmp_path, cine, model)
    extra = [f"trainer.compile={compiled}"] if compiled else []
    if compiled:  # nothing compiled yet in this process: the first run compiles
        torch._dynamo.reset()
    # the uninterrupted run, without workers (the result must not depend on them)
    with threads(run_threads):
        assert main(["train", "--config", str(cfg), "name=straight", *extra]) == 0
    over = [f"data.num_workers={workers}", *extra]
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(run_threads)}
    proc = subprocess.run(
        [sys.executable, str(child), str(KILL_AT), "--config", str(cfg), "name=killed", *over],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-3000:]
    run = tmp_path / "runs/killed"
    # --resume takes the newest checkpoint: the mid-epoch one, not last.ckpt of epoch 0
    newest = latest_checkpoint(run)
    assert newest is not None and newest.name == "last-step.ckpt"
    step = _state(newest)["global_step"]
    assert step == KILL_AT - KILL_AT % CHECKPOINT_EVERY and step % STEPS_PER_EPOCH != 0
    assert _state(run / "checkpoints/last.ckpt")["global_step"] == STEPS_PER_EPOCH
    assert checkpoint_threads(newest) == run_threads
    capsys.readouterr()
    with threads(resume_threads):
        assert main(["train", "--config", str(cfg), "name=killed", "--resume", *over]) == 0
        assert torch.get_num_threads() == resume_threads  # the process's count is back
    said = capsys.readouterr().err
    # the second attempt trained only the steps after the checkpoint (one train_loss row each)
    rows = (run / "csv/version_1/metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("train_loss")
    assert sum(bool(r.split(",")[col]) for r in rows[1:]) == EPOCHS * STEPS_PER_EPOCH - step

    a = _state(run / "checkpoints/last.ckpt")
    b = _state(tmp_path / "runs/straight/checkpoints/last.ckpt")
    assert a["global_step"] == b["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert not any("_orig_mod" in k for k in a["state_dict"])  # compiled in place
    if compiled:  # the first run compiled and says how long it took (the resumed one in
        # this process found the graphs dynamo had compiled for the first)
        straight = json.loads((tmp_path / "runs/straight/train_summary.json").read_text())
        assert straight["compile_seconds"] > 0
        env = json.loads((run / "environment.json").read_text())
        assert env["compile"]["backend"] == "eager" and env["compile_cache_dir"]
    for k, v in b["state_dict"].items():
        assert torch.equal(a["state_dict"][k], v), k
    # the optimiser's moments and the schedule too (lr halved after each of 3 epochs)
    lr = [g["lr"] for g in a["optimizer_states"][0]["param_groups"]]
    assert lr == [g["lr"] for g in b["optimizer_states"][0]["param_groups"]] == [1e-3 / 8]
    for k, v in b["optimizer_states"][0]["state"].items():
        for name, t in v.items():
            assert torch.equal(a["optimizer_states"][0]["state"][k][name], t), (k, name)
    # the run says it kept its count, and records it
    line = f"resume: {run_threads} intra-op threads, as the run so far (this process has "
    assert f"{line}{resume_threads})" in said
    assert json.loads((run / "environment.json").read_text())["torch_threads"] == run_threads


class _Index(Dataset):
    """Item = its (encoded) index: shows the order a loader hands out."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i):
        return torch.tensor(i)


def _loader(workers: int) -> ResumableLoader:
    sampler = EpochBatchSampler([(4, 4)] * 10, batch_size=2, shuffle=True, seed=5)
    return ResumableLoader(_Index(), batch_sampler=sampler, num_workers=workers,
                           generator=torch.Generator())  # fmt: skip


def _epoch(loader: ResumableLoader, epoch: int) -> list[list[int]]:
    loader.batch_sampler.set_epoch(epoch)
    return [b.tolist() for b in loader]


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_resumes_the_epoch_it_was_in(workers):
    """The order of an epoch is the sampler's for that epoch even when
    ``iter()`` comes before ``set_epoch`` (Lightning on resume); after
    ``load_state_dict`` the epoch continues after the batches handed out."""
    full = _epoch(_loader(0), 1)
    assert full != _epoch(_loader(0), 0)
    loader = _loader(workers)
    it = iter(loader)  # before set_epoch, as Lightning does on resume
    loader.batch_sampler.set_epoch(1)
    assert [b.tolist() for b in it] == full
    # a checkpoint after 2 batches of epoch 1
    loader = _loader(workers)
    loader.batch_sampler.set_epoch(1)
    it = iter(loader)
    seen = [next(it).tolist() for _ in range(2)]
    state = loader.state_dict()
    assert state == {"epoch": 1, "batches": 2} and seen == full[:2]
    resumed = _loader(workers)  # a new process: the sampler does not know its epoch
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state  # a checkpoint before the first batch keeps it
    it = iter(resumed)
    resumed.batch_sampler.set_epoch(1)
    assert [b.tolist() for b in it] == full[2:]
    assert resumed.state_dict() == {"epoch": 1, "batches": len(full)}
    assert len(resumed) == len(full)  # Lightning counts the whole epoch
    # a checkpoint of an epoch that ended: the next epoch starts at its first batch
    resumed.load_state_dict({"epoch": 1, "batches": len(full)})
    assert _epoch(resumed, 2) == _epoch(_loader(0), 2)


def test_training_items_draw_nothing_from_global_random_state(cine, tmp_path):
    """Masks (and the acceleration drawn among several) are a pure function of
    (seed, epoch, item): worker processes, whose random state Lightning seeds
    from the main process's, cannot change them."""
    import random

    import numpy as np

    from fmrecon.training.config import load_config
    from fmrecon.training.data import ReconDataModule

    data = load_config(_config(tmp_path, cine, "unet"))["data"]
    dm = ReconDataModule(data, seed=3, split_path=tmp_path / "split.json")
    dm.setup()
    ds = dm.train_dataloader().dataset
    n = len(ds)

    def draw(state: int) -> list:
        torch.manual_seed(state)
        np.random.seed(state)  # noqa: NPY002 (the legacy global state is the point)
        random.seed(state)
        return [ds[e * n + i] for e in (0, 1) for i in range(n)]

    a, b = draw(1), draw(2)
    assert {x.acceleration for x in a} == {4.0, 8.0}  # the draw happens
    for x, y in zip(a, b, strict=True):
        assert x.acceleration == y.acceleration
        assert torch.equal(x.mask, y.mask) and torch.equal(x.kspace, y.kspace)
    assert any(not torch.equal(x.mask, y.mask) for x, y in zip(a[:n], a[n:], strict=True))  # epochs
