"""Training from existing weights (model.init_from / train --init-from): a
fastMRI VarNet state dict written by the fastmri package, an fmrecon
checkpoint and an exported folder are loaded before step 0 (not a resume),
the run says what it loaded and left initialised, and shape mismatches are
refused in one line. Data: tiny cine written by `fmrecon simulate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from fmrecon.cli import main
from fmrecon.models.io import load_model, read_checkpoint

TINY = {"num_cascades": 2, "chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 2}
FROZEN = "optim.lr=1e-30"  # weights unchanged by training (see the first test)
RUN = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


@pytest.fixture(scope="module")
def cine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    argv = ["simulate", "--out", str(root), "--format", "cmrxrecon", "--subjects", "4"]
    argv += ["--size", "48", "40", "--slices", "1", "--frames", "2", "--coils", "3", "--no-lax"]
    assert main(argv) == 0
    return root / "MultiCoil"


def _fastmri_state_dict(path: Path, seed: int = 0, **size) -> Path:
    from fastmri.models import VarNet

    torch.manual_seed(seed)
    torch.save(VarNet(**{**TINY, **size}).state_dict(), path)
    return path


def _config(tmp_path: Path, data: Path, **model) -> Path:
    cfg = {
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "e2e-varnet", "options": dict(TINY), **model},
        "data": {"root": str(data), "num_workers": 0},
        "trainer": {"accelerator": "cpu", "progress_bar": False},
    }
    path = tmp_path / f"tiny{len(list(tmp_path.glob('tiny*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(cfg: Path, name: str, *extra) -> int:
    return main(["train", "--config", str(cfg), f"name={name}", *RUN, *map(str, extra)])


def _state(run: Path) -> dict:
    return load_model(run / "checkpoints/last.ckpt").state_dict()


def test_fastmri_state_dict_is_loaded_before_step_0(tmp_path, cine, capsys):
    """With a learning rate of 1e-30 the run's weights stay the fastMRI ones
    exactly: Adam's step, lr * m_hat / (sqrt(v_hat) + eps), is at most ~lr in
    magnitude, below half an fp32 ulp of any weight above 1e-22 (ulp = 2^-23
    |w|): so they were loaded before the first step."""
    sd = _fastmri_state_dict(tmp_path / "brain.pt")
    cfg = _config(tmp_path, cine)
    assert _train(cfg, "frozen", "--init-from", sd, FROZEN) == 0
    err = capsys.readouterr().err
    assert f"init_from {sd} (fastMRI VarNet state dict, model 'e2e-varnet'): loaded 44" in err
    assert "left initialised: nothing" in err
    fastmri = torch.load(sd, weights_only=True)
    state = _state(tmp_path / "runs/frozen")
    assert state.keys() == fastmri.keys()
    for k, v in fastmri.items():
        assert torch.equal(state[k], v), k
    # trained with a learning rate: it starts there and moves; a fresh run (epoch 0,
    # step 0 -> 2), not a continuation
    assert _train(cfg, "tuned", "--init-from", sd) == 0
    run = tmp_path / "runs/tuned"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["epochs"] == 1 and summary["global_step"] == 2
    tuned = _state(run)
    assert any(not torch.equal(tuned[k], fastmri[k]) for k in fastmri)
    # the config records it; the exported model's card says so
    assert f"init_from: {sd}" in (run / "config.yaml").read_text()
    out = tmp_path / "export"
    assert main(["export", str(run / "checkpoints/last.ckpt"), str(out)]) == 0
    card = (out / "README.md").read_text()
    assert f"initialised from: {sd}" in card and "cmrxrecon-uniform" in card
    assert f"data: {cine}" in card


def test_an_fmrecon_checkpoint_or_export_starts_a_new_run(tmp_path, cine, capsys):
    """From a finished run's last.ckpt (which holds an optimiser and step 2):
    the new run starts at step 0 with a fresh optimiser; an exported folder
    loads the same; a resume of a run with init_from does not load it again."""
    cfg = _config(tmp_path, cine)
    assert _train(cfg, "first") == 0
    last = tmp_path / "runs/first/checkpoints/last.ckpt"
    assert read_checkpoint(last)["global_step"] == 2
    capsys.readouterr()
    assert _train(cfg, "second", "--init-from", last, FROZEN) == 0
    assert "(fmrecon checkpoint, model 'e2e-varnet'): loaded 44" in capsys.readouterr().err
    second = tmp_path / "runs/second"
    assert json.loads((second / "train_summary.json").read_text())["global_step"] == 2
    ckpt = read_checkpoint(second / "checkpoints/last.ckpt")
    first_state = _state(tmp_path / "runs/first")
    assert all(torch.equal(v, first_state[k]) for k, v in _state(second).items())
    # Adam's moments start from zero again: the new run's are its own two steps'
    first_opt = read_checkpoint(last)["optimizer_states"][0]["state"]
    new_opt = ckpt["optimizer_states"][0]["state"]
    assert int(new_opt[0]["step"]) == 2 and int(first_opt[0]["step"]) == 2
    assert not torch.equal(new_opt[0]["exp_avg"], first_opt[0]["exp_avg"])
    # an exported folder, given in the config (model.init_from)
    out = tmp_path / "exported"
    assert main(["export", str(last), str(out)]) == 0
    cfg_export = _config(tmp_path, cine, init_from=str(out))
    capsys.readouterr()
    assert _train(cfg_export, "third", FROZEN) == 0
    assert f"init_from {out} (exported model, model 'e2e-varnet'): loaded 44" in (
        capsys.readouterr().err
    )
    # resuming: the run's own checkpoint, not init_from
    assert _train(cfg_export, "third", "trainer.max_epochs=2", "--resume") == 0
    assert f"init_from {out}: not applied, resuming from" in capsys.readouterr().err


def test_partial_loads_say_what_they_left_and_mismatches_are_refused(tmp_path, cine, capsys):
    sd = _fastmri_state_dict(tmp_path / "brain.pt")
    # a third cascade: the two of the state dict are loaded, the third left as built
    cfg = _config(tmp_path, cine)
    assert _train(cfg, "more", "--init-from", sd, "model.options.num_cascades=3") == 0
    err = capsys.readouterr().err
    assert "loaded 44 tensors" in err and "left initialised: cascades.2.* (15)" in err
    # FM-VarNet from the fastMRI VarNet: its sensitivity network only
    from fmrecon.encoders import TINY_OVERRIDES

    fm = _config(
        tmp_path,
        cine,
        name="fm-varnet-clip",
        options={**{k: TINY[k] for k in ("num_cascades", "sens_chans", "sens_pools")},
                 "chans": [16, 16, 8, 8, 8]},
        encoder_weights="random",
        allow_random_encoder=True,
        encoder_config=TINY_OVERRIDES["clip"],
    )  # fmt: skip
    assert _train(fm, "fm", "--init-from", sd) == 0
    err = capsys.readouterr().err
    # the sensitivity net (14 tensors) and each cascade's data-consistency weight
    assert "loaded 16 tensors" in err
    assert "left initialised: cascades.0.* (49), cascades.1.* (49)" in err
    assert (
        "not used (the new model has no such tensors): cascades.0.* (14), cascades.1.* (14)" in err
    )
    assert "frozen encoder: the run's own (random-init), not init_from's" in err
    # another size: one line naming the tensor and both shapes, nothing trained
    wide = _fastmri_state_dict(tmp_path / "wide.pt", chans=6)
    assert _train(cfg, "wide", "--init-from", wide) == 2
    # the error line (Lightning's log handlers of earlier runs in this process may
    # write "Logging error" noise to the captured stream: not the CLI's output)
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("fmrecon train")]
    assert len(errors) == 1, errors
    err = errors[0]
    assert (
        f"init_from {wide}: cascades.0.model.unet.down_sample_layers.0.layers.0.weight has "
        "shape (6, 2, 3, 3) there and (4, 2, 3, 3) in the new 'e2e-varnet' model" in err
    )
    assert not (tmp_path / "runs/wide/checkpoints").exists()
    # the command line wins over the config; a missing file is one line
    bad = _config(tmp_path, cine, init_from=str(tmp_path / "absent.pt"))
    assert _train(bad, "absent") == 2
    assert f"checkpoint {tmp_path / 'absent.pt'}: file not found" in capsys.readouterr().err
    assert _train(bad, "wins", "--init-from", sd, FROZEN) == 0
    assert f"init_from {sd} (fastMRI" in capsys.readouterr().err
    # a file that is none of the three: one line
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    assert _train(cfg, "other", "--init-from", tmp_path / "other.pt") == 2
    assert "neither an fmrecon checkpoint, a fastMRI VarNet state dict" in capsys.readouterr().err
