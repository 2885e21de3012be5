"""`fmrecon train`: configs, a real (tiny) run, resume after a kill, DDP on two
CPU processes, checkpoints, and the errors users hit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fmrecon.cli import main
from fmrecon.data.simulate import simulate_cmrxrecon
from fmrecon.errors import ConfigError
from fmrecon.models.io import load_model
from fmrecon.training.config import load_config
from fmrecon.training.data import EpochBatchSampler
from fmrecon.training.run import checkpoint_threads

TINY_VARNET = {"num_cascades": 2, "chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 2}


@pytest.fixture(scope="module")
def cine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cine")
    # 6 subjects: 4 train (x 1 slice x 2 frames = 8 steps an epoch), 1 val, 1 test
    simulate_cmrxrecon(root, 6, seed=1, size=(48, 40), n_slices=1, n_frames=2, n_coils=3, lax=False)
    return root


def _config(tmp_path: Path, data: Path, **model) -> Path:
    cfg = {
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "e2e-varnet", "options": dict(TINY_VARNET), **model},
        "data": {"root": str(data), "num_workers": 0},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "progress_bar": False},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_defaults_overrides_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {root: /data}\ntrainer: {max_epochs: 3}\n")
    cfg = load_config(path, ["optim.lr=2e-4", "model.options.num_cascades=4", "data.batch_size=8"])
    assert cfg["name"] == "c" and cfg["trainer"]["max_epochs"] == 3
    assert cfg["optim"]["lr"] == 2e-4 and cfg["data"]["batch_size"] == 8
    assert cfg["model"]["options"] == {"num_cascades": 4}
    assert cfg["trainer"]["early_stopping_patience"] == 5  # the paper's default
    with pytest.raises(ConfigError, match="did you mean 'trainer.max_epochs'"):
        load_config(path, ["trainer.max_epoch=3"])
    with pytest.raises(ConfigError, match="'optim.lr' must be"):
        load_config(path, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="data.root' is required"):
        load_config(None, [])
    path.write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    "key,in_file,default",
    [
        ("seed", 5, 0),
        ("model.allow_random_encoder", True, False),
        ("data.mask.kind", "equispaced-fraction", "cmrxrecon-uniform"),
        ("data.image_resize", "crop", "kspace"),
        ("optim.name", "adamw", "adam"),
    ],
)
def test_an_override_wins_over_the_config_file_also_at_the_default(
    tmp_path, capsys, key, in_file, default
):
    """`fmrecon train --config C key=value`: the override wins whatever its value,
    also the built-in default (the file's value must not survive because the
    override "looks unset"); checked on the resolved config a dry run prints."""
    from fmrecon.training.config import DEFAULTS

    *parents, last = key.split(".")
    node = DEFAULTS
    for part in parents:
        node = node[part]
    assert node[last] == default != in_file
    nested = in_file
    for part in reversed(key.split(".")):
        nested = {part: nested}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(nested))
    override = f"{key}={yaml.safe_dump(default).splitlines()[0]}"
    for over, want in (([], in_file), ([override], default)):
        assert main(["train", "--config", str(path), *over, "--dry-run"]) == 0
        printed = yaml.safe_load(capsys.readouterr().out.split("\n# ", 1)[0])
        for part in key.split("."):
            printed = printed[part]
        assert printed == want


def _tiny_fm_config(tmp_path) -> Path:
    """An FM-VarNet config with a tiny CLIP encoder whose weights this machine lacks."""
    path = tmp_path / "fm.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"root": str(tmp_path / "not-there")},
                "model": {
                    "name": "fm-varnet-clip",
                    "options": {"num_cascades": 2, "chans": [16, 16, 8, 8, 8]},
                    "encoder_config": {
                        "hidden_size": 32,
                        "num_hidden_layers": 6,
                        "num_attention_heads": 2,
                        "intermediate_size": 64,
                        "image_size": 32,
                        "patch_size": 8,
                    },
                },
            }
        )  # fmt: skip
    )
    return path


def test_dry_run_builds_the_model_without_data(tmp_path, capsys):
    path = _tiny_fm_config(tmp_path)
    assert main(["train", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "name: fm-varnet-clip" in out and "trainable" in out
    assert "RANDOMLY INITIALISED" in out  # no weights on this machine: said loudly
    assert "the real run stops without them" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("over", [[], ["model.allow_random_encoder=true"], ["seed=3"]])
def test_dry_run_prints_the_config_the_run_uses(tmp_path, capsys, over):
    """The YAML a dry run prints is the resolved config of the real run, key for
    key: allow_random_encoder stays false when the config says so (the dry run
    builds its model from a copy that may use random encoder weights)."""
    path = _tiny_fm_config(tmp_path)
    assert main(["train", "--config", str(path), *over, "--dry-run"]) == 0
    out = capsys.readouterr().out
    printed = yaml.safe_load(out.split("\n# ", 1)[0])
    assert printed == load_config(path, over)
    want = over == ["model.allow_random_encoder=true"]
    assert printed["model"]["allow_random_encoder"] is want
    assert ("the real run stops without them" in out) is not want


def _val_ssim(cfg: Path, over: list[str], run: Path, model=None, precision="32") -> float:
    """Mean SSIM over the run's validation slices, computed apart from the
    trainer (skimage, data range = the slice's max_value): of ``model`` (a
    checkpoint's, through an Engine at ``precision``), or of the zero-filled
    RSS when ``model`` is None."""
    from skimage.metrics import structural_similarity

    from fmrecon.inference.engine import Engine
    from fmrecon.training.data import ReconDataModule

    data = ReconDataModule(load_config(cfg, over)["data"], split_path=run / "split.json")
    data.setup()
    scores = []
    for b in data.val_dataloader():
        if model is None:
            k = b.kspace.numpy()
            img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)),
                                               norm="ortho"), axes=(-2, -1))  # fmt: skip
            out = np.sqrt((np.abs(img) ** 2).sum(axis=1))
        else:
            with torch.no_grad():
                out = Engine(model.eval(), precision=precision).predict(b).numpy()
        for t, o, mx in zip(b.target.numpy(), out, b.max_value.numpy(), strict=True):
            scores.append(structural_similarity(t.astype(np.float64), o.astype(np.float64),
                                                data_range=float(mx)))  # fmt: skip
    return float(np.mean(scores))


def test_train_writes_a_complete_run_folder_and_learns(tmp_path, cine, capsys):
    cfg = _config(tmp_path, cine)
    # x8 with 8 ACS lines (the default 24 of 40 columns leave little to learn)
    over = [
        "trainer.max_epochs=3",
        "trainer.early_stopping_patience=0",
        "optim.lr=0.01",
        "optim.lr_step_epochs=0",
        "data.mask.accelerations=[8]",
        "data.mask.num_acs=8",
    ]
    assert main(["train", "--config", str(cfg), *over]) == 0  # fmt: skip
    run = tmp_path / "runs" / "tiny"
    for name in ("config.yaml", "environment.json", "split.json", "train_summary.json"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "tensorboard").glob("version_0/events.out.tfevents.*"))
    rows = (run / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "val_ssim" in rows[0] and len(rows) > 2
    env = json.loads((run / "environment.json").read_text())
    assert env["model"] == "e2e-varnet" and env["torch"] == torch.__version__
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["epochs"] == 3
    col = rows[0].split(",").index("val_ssim")
    ssims = [float(r.split(",")[col]) for r in rows[1:] if r.split(",")[col]]
    assert len(ssims) == 3 and summary["best_val_ssim"] == pytest.approx(max(ssims))
    # the checkpoint rebuilds the model without the config, with the trained weights
    model = load_model(run / "checkpoints" / "best.ckpt")
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["epoch"] == int(np.argmax(ssims))
    w = ckpt["state_dict"]["model.cascades.0.dc_weight"]
    assert torch.equal(model.cascades[0].dc_weight.detach(), w)
    # the logged val_ssim is the SSIM of best.ckpt's images, computed apart from the trainer,
    # and beats zero-filled on the same slices (measured: 0.780 vs 0.726)
    assert _val_ssim(cfg, over, run, model) == pytest.approx(summary["best_val_ssim"], abs=1e-5)
    assert summary["best_val_ssim"] > _val_ssim(cfg, over, run) + 0.02
    assert "best val SSIM" in capsys.readouterr().out
    # a second run into the same folder is refused rather than mixing runs
    assert main(["train", "--config", str(cfg)]) == 2


KILLER = """
import os, signal, sys
import lightning as L
from fmrecon.training.config import load_config
from fmrecon.training.run import train

class KillAt(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

import torch
print("threads", torch.get_num_threads(), flush=True)
train(load_config(sys.argv[1], sys.argv[3:]), extra_callbacks=[KillAt()])
"""


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, cine):
    """Killed in epoch 2 without mid-epoch checkpoints (the quick start's set-up,
    with a worker process, torch's default thread count): resumed from epoch 1's
    last.ckpt by this process (1 thread, conftest), the same weights as an
    uninterrupted run without workers at the default count (mid-epoch
    checkpoints and both directions of a changed count: test_resume.py)."""
    cfg = _config(tmp_path, cine)
    common = ["trainer.max_epochs=2", "trainer.early_stopping_patience=0"]
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    # 8 steps an epoch: step 12 is in the middle of the second epoch
    workers = "data.num_workers=1"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the default
    proc = subprocess.run(
        [sys.executable, str(script), str(cfg), "12", "name=killed", *common, workers],
        capture_output=True,
        text=True,
        env={**env, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    default = int(proc.stdout.split()[1])  # torch's default count in a fresh process
    ckpts = tmp_path / "runs" / "killed" / "checkpoints"
    assert (ckpts / "last.ckpt").is_file()  # from the end of epoch 1, intact
    assert not list(ckpts.glob(".*tmp*"))
    assert checkpoint_threads(ckpts / "last.ckpt") == default
    assert main(["train", "--config", str(cfg), "name=killed", *common, workers, "--resume"]) == 0
    logs = sorted((tmp_path / "runs/killed/csv").glob("version_*/metrics.csv"))
    assert len(logs) == 2  # the first attempt's log is kept
    before = torch.get_num_threads()
    torch.set_num_threads(default)
    try:
        assert main(["train", "--config", str(cfg), "name=straight", *common]) == 0
    finally:
        torch.set_num_threads(before)
    a = torch.load(ckpts / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "runs/straight/checkpoints/last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 16
    for k, v in b["state_dict"].items():
        assert torch.equal(a["state_dict"][k], v), k


def test_resume_without_checkpoint_is_an_error(tmp_path, cine, capsys):
    cfg = _config(tmp_path, cine)
    assert main(["train", "--config", str(cfg), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("compiled", [None, "{backend: eager}"])
def test_ddp_two_cpu_processes_train_in_step(tmp_path, cine, compiled):
    """DDP on two CPU processes (gloo), eager and with trainer.compile (dynamo's
    graphs through its ``eager`` backend: the compiled regions inside the DDP
    wrapper, without inductor's minutes of code generation)."""
    cfg = _config(tmp_path, cine)
    extra = [f"trainer.compile={compiled}"] if compiled else []
    proc = subprocess.run(
        [sys.executable, "-m", "fmrecon.cli", "train", "--config", str(cfg), "name=ddp",
         "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=1", *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = json.loads((tmp_path / "runs/ddp/environment.json").read_text())
    assert (env["compile"] or {}).get("backend") == ("eager" if compiled else None)
    check = env["rank_check"]
    assert check["world_size"] == 2 and check["in_sync"]
    assert len(set(check["weight_checksums"])) == 1
    # each rank saw half the batches: 8 items / 2 ranks = 4 steps
    summary = json.loads((tmp_path / "runs/ddp/train_summary.json").read_text())
    assert summary["global_step"] == 4
    assert (summary["compile_seconds"] or 0) > 0 if compiled else summary["compile_seconds"] is None


def test_fm_model_trains_and_its_run_says_random_encoder(tmp_path, cine):
    cfg = _config(
        tmp_path,
        cine,
        name="fm-varnet-clip",
        options={"num_cascades": 1, "sens_chans": 4, "sens_pools": 2, "chans": [8, 8, 8, 8, 8]},
        encoder_weights="random",
        allow_random_encoder=True,
        encoder_config={"hidden_size": 32, "num_hidden_layers": 6, "num_attention_heads": 2,
                        "intermediate_size": 64, "image_size": 32, "patch_size": 8},
    )  # fmt: skip
    assert main(["train", "--config", str(cfg), "trainer.max_epochs=1",
                 "trainer.limit_train_batches=4"]) == 0  # fmt: skip
    env = json.loads((tmp_path / "runs/tiny/environment.json").read_text())
    assert env["encoder_random_init"] is True and env["encoder_weights"] == "random-init"
    model = load_model(tmp_path / "runs/tiny/checkpoints/last.ckpt")
    assert model.record.encoder_weights == "random-init"
    assert sum(p.numel() for p in model.encoder.parameters() if p.requires_grad) == 0


def test_bad_inputs(tmp_path, cine, capsys):
    cfg = _config(tmp_path, cine)
    assert main(["train", "--config", str(cfg), "model.name=fm-varnet-sam"]) == 2
    assert "unknown model 'fm-varnet-sam'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--config", str(cfg), f"data.root={tmp_path / 'empty'}"]) == 2
    assert "no readable k-space files" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_full_disk_keeps_earlier_checkpoints(tmp_path, cine, monkeypatch):
    import errno

    from fmrecon.training import run as run_mod

    cfg = _config(tmp_path, cine)
    assert main(["train", "--config", str(cfg), "trainer.max_epochs=1"]) == 0
    last = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    before = last.read_bytes()

    def full(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_mod.torch, "save", full)
    code = main(["train", "--config", str(cfg), "trainer.max_epochs=2", "--resume"])
    assert code == 2
    assert last.read_bytes() == before  # untouched, no partial file beside it
    assert not [p for p in last.parent.iterdir() if p.name.startswith(".")]


def test_epoch_batch_sampler_is_reproducible_and_shards_evenly():
    shapes = [(8, 8)] * 7 + [(8, 6)] * 5
    s = EpochBatchSampler(shapes, batch_size=2, shuffle=True, seed=3)
    s.set_epoch(1)
    first = list(s)
    s.set_epoch(1)
    assert list(s) == first
    s.set_epoch(2)
    assert list(s) != first
    n = len(shapes)
    for batch in first:  # one image size per batch, indices encode the epoch
        assert len({shapes[i % n] for i in batch}) == 1 and all(i // n == 1 for i in batch)
    ranks = [EpochBatchSampler(shapes, 2, True, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    a, b = list(ranks[0]), list(ranks[1])
    assert len(a) == len(b) and not set(np.concatenate(a)) & set(np.concatenate(b))


CONFIGS = sorted(
    p
    for p in Path(__file__).parent.parent.joinpath("configs").rglob("*.yaml")
    if p.parent.name != "evaluation"  # evaluation presets, tested with fmrecon evaluate
)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_configs_are_valid(path):
    cfg = load_config(path, ["data.root=/data/MultiCoil"])
    from fmrecon.models.registry import get_spec

    spec = get_spec(cfg["model"]["name"])  # a registered model
    if "paper" in path.parts:
        acc = cfg["data"]["mask"]["accelerations"]
        assert len(acc) == 1 and f"x{acc[0]}" in path.stem  # one model per acceleration
        assert cfg["trainer"]["max_epochs"] == 50 and cfg["trainer"]["early_stopping_patience"] == 5
        if path.parent.name == "arxiv2026":
            assert cfg["optim"] == {
                **cfg["optim"],
                "name": "adam",
                "lr": 1e-3,
                "lr_step_epochs": 40,
            }
            assert cfg["model"]["options"]["num_cascades"] == 12
            assert cfg["data"]["image_size"] is None  # native size
        else:
            assert cfg["optim"]["name"] == "adamw" and cfg["optim"]["weight_decay"] == 0.01
            assert cfg["optim"]["lr"] == 2e-4 and cfg["data"]["batch_size"] == 8
            # the MIDL paper's 224x224 input, made in the data for every model
            assert cfg["data"]["image_size"] == [224, 224]
            assert cfg["data"]["readout_oversampling"] == 2
            assert "resizes internally" not in path.read_text()
        assert spec.family in ("e2e-varnet", "fm-varnet", "fm-unetr", "unet")


def test_paper_config_dry_run_without_data(capsys):
    path = Path(__file__).parent.parent / "configs/paper/arxiv2026/e2e-varnet-x4.yaml"
    assert main(["train", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "29,936,966 parameters" in out and "data.root is not set" in out


@pytest.mark.parametrize("name", ["e2e-varnet", "fm-varnet"])
def test_quickstart_configs_train(name, tmp_path, cine):
    """The quick start's configs run (a few steps on tiny data)."""
    path = Path(__file__).parent.parent / f"configs/quickstart/{name}.yaml"
    over = [f"data.root={cine}", f"output_dir={tmp_path}", f"data.split={tmp_path / 's.json'}",
            "data.num_workers=0", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=2", "trainer.progress_bar=false"]  # fmt: skip
    assert main(["train", "--config", str(path), *over]) == 0
    assert list(tmp_path.glob("*/checkpoints/best.ckpt"))


def test_training_options_fastmri_data_official_masks_bf16_accumulation(tmp_path):
    """fastMRI files (targets cropped to reconstruction_rss), CMRxRecon official
    mask files, bf16 autocast, gradient accumulation and activation checkpointing."""
    from fmrecon.data.simulate import simulate_fastmri_brain

    brain = tmp_path / "brain"
    simulate_fastmri_brain(brain, 3, seed=0, size=(64, 32), n_slices=2, n_coils=3)
    cfg = _config(tmp_path, brain)
    over = ["data.mask.kind=equispaced-fraction", "data.mask.center_fractions=[0.08]",
            "data.split_fractions=[0.34,0.33,0.33]", "trainer.max_epochs=1"]  # fmt: skip
    assert main(["train", "--config", str(cfg), "name=fastmri", *over]) == 0
    cine = tmp_path / "cine"
    simulate_cmrxrecon(cine, 3, seed=0, size=(48, 40), n_slices=1, n_frames=2, n_coils=3, lax=False)
    # two epochs: the sampler's epoch-encoded indices decode with fixed masks too
    over = ["data.mask.official=true", "data.mask.accelerations=[8]",
            "data.split_fractions=[0.34,0.33,0.33]", "trainer.max_epochs=2",
            "trainer.precision=bf16-mixed", "trainer.accumulate_grad_batches=2",
            "model.options.checkpoint_cascades=true"]  # fmt: skip
    assert main(["train", "--config", str(cfg), f"data.root={cine}", "name=official", *over]) == 0
    run = tmp_path / "runs/official"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["global_step"] == 2  # 2 items per epoch, accumulated into one optimiser step
    # validation ran under bf16 autocast on the official mask files: recomputed apart from
    # the trainer it agrees at bf16, and not at float32
    cfg_over = [f"data.root={cine}", *over]
    model = load_model(run / "checkpoints/best.ckpt")
    bf16 = _val_ssim(cfg, cfg_over, run, model, precision="bf16")
    assert bf16 == pytest.approx(summary["best_val_ssim"], abs=1e-5)
    assert abs(_val_ssim(cfg, cfg_over, run, model) - summary["best_val_ssim"]) > 1e-4
    # official masks that are not there: a one-line error
    over[1] = "data.mask.accelerations=[6]"
    assert main(["train", "--config", str(cfg), f"data.root={cine}", "name=nomask", *over]) == 2


def _tiny_clip_dir(path: Path, seed: int = 0) -> Path:
    """A tiny CLIP vision model in the Hugging Face directory format."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from fmrecon.encoders import TINY_OVERRIDES

    torch.manual_seed(seed)
    cfg = {k: v for k, v in TINY_OVERRIDES["clip"].items() if k != "input_size"}
    CLIPVisionModel(CLIPVisionConfig(**cfg)).save_pretrained(path)
    return path


def test_lean_checkpoints_keep_the_encoder_by_reference(tmp_path, cine, capsys):
    """model.checkpoint_encoder=reference: checkpoints leave out the pretrained
    frozen encoder (its source and SHA-256 instead), evaluate/reconstruct load
    them by reloading and checking it, resume works, and changed or random
    encoder weights are refused with one line."""
    from fmrecon.encoders import TINY_OVERRIDES
    from fmrecon.models.io import ENCODER_REFERENCE, read_checkpoint, save_model

    clip = _tiny_clip_dir(tmp_path / "clip")
    model = {
        "name": "fm-unetr-clip",
        "options": {"feature_layers": [2, 3, 4, 6], "feature_size": 4},
        "encoder_weights": str(clip),
        "encoder_config": TINY_OVERRIDES["clip"],
        "checkpoint_encoder": "reference",
    }
    cfg = _config(tmp_path, cine, **model)
    over = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    assert main(["train", "--config", str(cfg), "name=lean", *over]) == 0
    run = tmp_path / "runs/lean"
    ckpt = read_checkpoint(run / "checkpoints/last.ckpt")
    ref = ckpt["fmrecon"][ENCODER_REFERENCE]
    assert ref["weight_source"] == f"dir:{clip}" and len(ref["sha256"]) == 64
    assert not any(".encoder." in k for k in ckpt["state_dict"])
    # resume into a second epoch: the run's encoder fills the gap
    over[0] = "trainer.max_epochs=2"
    # (overrides may follow --resume: the first is not taken for a checkpoint path)
    assert main(["train", "--config", str(cfg), "name=lean", "--resume", *over]) == 0
    assert json.loads((run / "train_summary.json").read_text())["epochs"] == 2
    # the lean checkpoint loads to the same model as a self-contained one
    lean = load_model(run / "checkpoints/last.ckpt")
    full = save_model(lean, tmp_path / "full.ckpt")
    k = torch.randn(1, 3, 48, 40, dtype=torch.complex64)
    mask = torch.zeros(1, 1, 48, 40, dtype=torch.bool)
    mask[..., ::2] = True
    with torch.no_grad():
        assert torch.equal(lean(k * mask, mask), load_model(full)(k * mask, mask))
    lean_file = save_model(lean, tmp_path / "lean.ckpt", encoder="reference")
    with pytest.raises(ConfigError, match="encoder storage must be one of"):
        save_model(lean, tmp_path / "x.ckpt", encoder="none")
    with pytest.raises(ConfigError, match="checkpoint_encoder must be 'weights' or 'reference'"):
        load_config(cfg, ["model.checkpoint_encoder=hash"])
    assert lean_file.stat().st_size < 0.8 * full.stat().st_size
    # other encoder weights at the recorded place: refused, on load and on resume
    _tiny_clip_dir(clip, seed=1)
    with pytest.raises(ConfigError, match="not the ones it was trained with") as err:
        load_model(lean_file)
    assert "\n" not in str(err.value)
    over[0] = "trainer.max_epochs=3"
    capsys.readouterr()
    assert main(["train", "--config", str(cfg), "name=lean", *over, "--resume"]) == 2
    assert "not the one the checkpoint was trained with" in capsys.readouterr().err
    # a random-init encoder has nothing to reload from
    cfg = _config(tmp_path, cine, **dict(model, encoder_weights="random"))
    assert main(["train", "--config", str(cfg), "name=rand", "--dry-run"]) == 2
    assert "random-init encoder cannot be stored by reference" in capsys.readouterr().err


def test_official_masks_of_several_accelerations_are_all_used(tmp_path, cine, monkeypatch):
    """data.mask.official with accelerations [4, 8]: every training item reads
    the mask file of the acceleration drawn for (seed, epoch, i), so both the
    x4 and the x8 files are read; the draw is reproducible; validation keeps a
    fixed acceleration per file (accelerations[i % 2] for its file i)."""
    from fmrecon.data import cmrxrecon
    from fmrecon.training.data import ReconDataModule

    reads: list[Path] = []
    real_read = cmrxrecon.read_mask

    def spy(path):
        reads.append(Path(path))
        return real_read(path)

    monkeypatch.setattr(cmrxrecon, "read_mask", spy)
    cfg = _config(tmp_path, cine)
    over = ["data.mask.official=true", "data.mask.accelerations=[4,8]", "trainer.max_epochs=1"]
    assert main(["train", "--config", str(cfg), "name=two", *over]) == 0
    split = json.loads((tmp_path / "runs/two/split.json").read_text())
    train_subjects = set(split["train"])
    read = {(p.parent.name, p.parent.parent.name) for p in reads}
    assert {s for s, acc in read if acc == "AccFactor04"} & train_subjects
    assert {s for s, acc in read if acc == "AccFactor08"} & train_subjects
    assert not {p.parent.parent.name for p in reads} - {"AccFactor04", "AccFactor08"}

    # the draw is a function of (seed, epoch, item); items say which acceleration they used
    data_cfg = load_config(cfg, over)["data"]
    dm = ReconDataModule(data_cfg, seed=0, split_path=tmp_path / "runs/two/split.json")
    dm.setup()
    loader = dm.train_dataloader()
    ds, n = loader.dataset, len(loader.dataset)

    def accs(epoch):
        return [ds[epoch * n + i].acceleration for i in range(n)]

    assert accs(0) == accs(0) and set(accs(0) + accs(1)) == {4.0, 8.0}
    assert accs(0) != accs(1) or accs(1) != accs(2)
    for i in range(n):  # the mask is the official file of that acceleration
        item = ds[i]
        v = ds.base.volumes[ds.base.index[i][0]]
        path = cmrxrecon.official_mask_path(v.path, int(item.acceleration))
        assert torch.equal(item.mask[0], torch.from_numpy(real_read(path)))
    # validation and evaluation (no seed): a fixed acceleration per file, alternating
    from fmrecon.data.formats import discover
    from fmrecon.data.slices import SliceDataset
    from fmrecon.training.data import MaskChoice, build_masks

    volumes = [v for v in discover(cine)[0] if v.fully_sampled]
    fixed = SliceDataset(volumes, MaskChoice(build_masks(data_cfg["mask"])), official_masks=True)
    got = [fixed[j].acceleration for j in range(len(fixed))]
    assert got == [(4.0, 8.0)[fixed.index[j][0] % 2] for j in range(len(fixed))]
    assert got == [fixed[j].acceleration for j in range(len(fixed))]


def test_training_at_an_image_size(tmp_path, cine, monkeypatch):
    """data.image_size: the model, the loss and validation see that size (the
    48x40 simulated cine becomes 32x32 before masking); bad values are a
    one-line config error naming the key."""
    from fmrecon.inference.engine import Engine

    shapes = []
    real_predict = Engine.predict

    def spy(self, batch):
        out = real_predict(self, batch)
        shapes.append((tuple(batch.kspace.shape), tuple(batch.mask.shape),
                       tuple(batch.target.shape), tuple(out.shape)))  # fmt: skip
        return out

    monkeypatch.setattr(Engine, "predict", spy)
    cfg = _config(tmp_path, cine)
    over = ["data.image_size=[32,32]", "data.batch_size=2", "trainer.max_epochs=1",
            "trainer.limit_train_batches=2"]  # fmt: skip
    assert main(["train", "--config", str(cfg), "name=small", *over]) == 0
    assert len(shapes) >= 4  # training batches and validation batches (sanity check too)
    for k, m, t, o in shapes:
        assert k[-2:] == (32, 32) and m[-2:] == (32, 32) and t[-2:] == (32, 32) and o == t
    assert sum(k[0] == 2 for k, *_ in shapes) == 2  # the two training batches of two
    saved = yaml.safe_load((tmp_path / "runs/small/config.yaml").read_text())
    assert saved["data"]["image_size"] == [32, 32]
    assert load_config(cfg, ["data.image_size=24"])["data"]["image_size"] == [24, 24]
    for bad in ("[224]", "[0,224]", "[224,big]", "true"):
        with pytest.raises(ConfigError, match="'data.image_size' must be"):
            load_config(cfg, [f"data.image_size={bad}"])
    with pytest.raises(ConfigError, match="mask files .* exist at the native size only"):
        load_config(cfg, ["data.image_size=[224,224]", "data.mask.official=true"])
    with pytest.raises(ConfigError, match="'data.image_resize' must be one of kspace, crop"):
        load_config(cfg, ["data.image_size=[224,224]", "data.image_resize=bicubic"])
    with pytest.raises(ConfigError, match="'data.readout_oversampling' must be >= 1"):
        load_config(cfg, ["data.readout_oversampling=0"])
