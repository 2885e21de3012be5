"""What every registered model is (ReconModel with a BuildRecord), how
create_model checks options, and that FM-VarNet checkpoints of the earlier
layout (the VarNet wrapped as ``varnet.``) still load and give the same output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fmrecon.encoders import TINY_OVERRIDES
from fmrecon.errors import ConfigError
from fmrecon.models.base import BuildRecord, ReconModel, build_record
from fmrecon.models.fm_varnet import FMVarNet
from fmrecon.models.io import load_model, read_checkpoint, save_model
from fmrecon.models.registry import MODELS, create_model
from fmrecon.models.varnet import VarNet
from fmrecon.models.zero_filled import ZeroFilled
from test_fm_models import tiny_model

OLD_LAYOUT = Path(__file__).parent / "data" / "fm_varnet_old_layout.ckpt"


def _old_checkpoint() -> dict:
    return read_checkpoint(OLD_LAYOUT)


def _model_of(ckpt: dict) -> FMVarNet:
    spec = ckpt["fmrecon"]["model_spec"]
    return create_model(
        spec["name"],
        encoder_weights="random",
        allow_random_encoder=True,
        encoder_config=spec["encoder_config"],
        **spec["overrides"],
    ).eval()


# The stored output was computed by other code on another machine: it agrees to
# rounding, not bit for bit. Measured against it here (max |out| = 13.9):
# 3.1e-5 on every transformers release supported (4.56.2, 4.57.6, 5.0.0, 5.24.0,
# 5.25.0: bit-identical outputs, also with the code that wrote the file), and
# 3.1e-5 to 1.4e-4 with other kernel paths of torch 2.13 (2 threads 4.1e-5, eager
# attention 3.9e-5, no vectorisation 4.7e-5, oneDNN off 1.1e-4, oneDNN limited to
# SSE4.1 1.4e-4), i.e. up to 1e-5 of the output's scale, ~90 fp32 epsilons. The
# tolerance is 4x that worst path: 4e-5 of the scale (5.6e-4 here). A migration
# error is 500x larger: every one of the 125 tensors that reach the output, freshly
# initialised instead of loaded, moves it by >= 0.27 (swapped cascades: 12);
# even a 1 % change of one attention bias moves it by 2.2e-3. (The other 30
# tensors cannot reach the output: conv biases before InstanceNorm, key biases
# under softmax, the first cascade's dc_weight on measured k-space.)
REFERENCE_RTOL = 4e-5


def _check_output(model: nn.Module, ckpt: dict) -> None:
    io = ckpt["fmrecon"]["reference_io"]
    with torch.no_grad():
        out = model(io["masked_kspace"], io["mask"])
    ref = io["output"]
    atol = REFERENCE_RTOL * ref.abs().max().item()
    torch.testing.assert_close(out, ref, rtol=0, atol=atol)


# ----------------------------------------------------------------------------- old layout


def test_the_stored_old_layout_file_is_old_layout():
    state = _old_checkpoint()["state_dict"]
    assert any(k.startswith("model.varnet.cascades.") for k in state)
    assert not any(k.startswith("model.cascades.") for k in state)


def test_old_layout_checkpoint_loads_with_load_model():
    ckpt = _old_checkpoint()
    model = load_model(OLD_LAYOUT)
    assert isinstance(model, FMVarNet) and isinstance(model, VarNet)
    _check_output(model, ckpt)
    # the stored spec is the record, plus the file it came from
    stored = ckpt["fmrecon"]["model_spec"]
    assert model.record.as_dict() == {**stored, "checkpoint": str(OLD_LAYOUT)}


def test_old_layout_raw_state_dict_loads_strictly():
    ckpt = _old_checkpoint()
    raw = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items()}
    assert any(k.startswith("varnet.") for k in raw)
    model = _model_of(ckpt)
    model.load_state_dict(raw, strict=True)
    _check_output(model, ckpt)
    assert any(k.startswith("varnet.") for k in raw)  # the caller's dict is left as it was


def test_old_layout_loads_through_the_training_module(tmp_path):
    """A Lightning resume loads ``checkpoint["state_dict"]`` (keys
    ``model.varnet.*``) with ``ReconModule.load_state_dict``."""
    from fmrecon.training.module import ReconModule

    ckpt = _old_checkpoint()
    spec = ckpt["fmrecon"]["model_spec"]
    model_cfg = {
        "name": spec["name"],
        "encoder_weights": "random",
        "allow_random_encoder": True,
        "encoder_config": spec["encoder_config"],
        "options": spec["overrides"],
    }
    optim = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999)}
    module = ReconModule(model_cfg, optim).eval()
    # a Lightning checkpoint also holds the module's other state (the loss's buffers)
    other = {k: v for k, v in module.state_dict().items() if not k.startswith("model.")}
    result = module.load_state_dict({**other, **ckpt["state_dict"]}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    _check_output(module.model, ckpt)


def test_new_layout_round_trip(tmp_path):
    ckpt = _old_checkpoint()
    model = load_model(OLD_LAYOUT)
    path = save_model(model, tmp_path / "new.ckpt")
    state = read_checkpoint(path)["state_dict"]
    assert any(k.startswith("model.cascades.") for k in state)
    assert not any(".varnet." in k or k.startswith("model.varnet.") for k in state)
    _check_output(load_model(path), ckpt)


def test_a_key_in_both_layouts_is_not_silently_dropped():
    ckpt = _old_checkpoint()
    raw = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items()}
    raw["cascades.0.dc_weight"] = raw["varnet.cascades.0.dc_weight"]
    with pytest.raises(RuntimeError, match="varnet.cascades.0.dc_weight"):
        _model_of(ckpt).load_state_dict(raw, strict=True)


def test_fm_varnet_is_a_varnet_with_fastmri_style_keys():
    model = tiny_model("fm-varnet-clip")
    keys = list(model.state_dict())
    assert {k.split(".")[0] for k in keys} == {"sens_net", "cascades", "encoder"}
    assert model.cascades[0].model.encoder is model.encoder


# ----------------------------------------------------------------------------- records


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_is_a_recon_model_with_a_record(name):
    model = tiny_model(name)
    assert isinstance(model, ReconModel)
    assert build_record(model) is model.record and model.record.name == name
    assert model.record.random_encoder == (model.record.encoder_weights == "random-init")


def test_recon_model_adds_no_state_and_starts_without_a_record():
    assert ZeroFilled().state_dict() == {} and ZeroFilled().record is None
    net = VarNet(2, chans=4, pools=2, sens_chans=4, sens_pools=2)
    assert net.record is None and not hasattr(net, "fmrecon_spec")
    assert not any("record" in k for k in net.state_dict())
    assert build_record(lambda k, m: k) is None and build_record(nn.Identity()) is None


def test_build_record_dict_is_todays_checkpoint_spec():
    spec = {
        "name": "e2e-varnet",
        "overrides": {"num_cascades": 2},
        "encoder_config": {},
        "encoder_weights": None,
        "encoder_pretrained": None,
    }
    rec = BuildRecord.from_dict(spec)
    assert rec.as_dict() == spec  # no checkpoint / source keys until set
    rec.checkpoint, rec.source = "x.pt", "fastmri"
    assert rec.as_dict() == {**spec, "checkpoint": "x.pt", "source": "fastmri"}
    assert BuildRecord.from_dict(rec.as_dict()) == rec
    with pytest.raises(ConfigError, match="unknown fields colour"):
        BuildRecord.from_dict({**spec, "colour": 1})
    with pytest.raises(ConfigError, match="no model name"):
        BuildRecord.from_dict({"overrides": {}})


def test_a_bad_model_spec_in_a_checkpoint_is_one_line(tmp_path):
    ckpt = _old_checkpoint()
    ckpt["fmrecon"]["model_spec"]["colour"] = "red"
    torch.save(ckpt, tmp_path / "bad.ckpt")
    with pytest.raises(ConfigError, match=r"bad.ckpt: bad model_spec .*colour"):
        load_model(tmp_path / "bad.ckpt")


def test_save_model_needs_a_record(tmp_path):
    with pytest.raises(ConfigError, match="no build record"):
        save_model(VarNet(1, chans=4, pools=2, sens_chans=4, sens_pools=2), tmp_path / "m.ckpt")


# ----------------------------------------------------------------------------- options


def test_unknown_options_are_named_with_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        create_model("e2e-varnet", num_cascadez=3)
    msg = str(err.value)
    assert "bad option num_cascadez" in msg and "num_cascades" in msg and "sens_pools" in msg
    with pytest.raises(ConfigError, match="bad option chans .*valid: none"):
        create_model("zero-filled", chans=3)
    # FM-VarNet passes the denoiser's options on: both sets are valid, others not
    with pytest.raises(ConfigError, match="bad option pools .*fuse_layers"):
        tiny_model("fm-varnet-clip", pools=3)
    with pytest.raises(ConfigError, match="bad option encoder"):
        create_model("unet", encoder=None)


def test_bad_encoder_block_options_are_config_errors():
    for bad in ({"skip_layers": (3, "x", 1)}, {"fuse_layers": 0}, {"skip_layers": ()}):
        with pytest.raises(ConfigError, match="bad option (skip|fuse)_layers"):
            tiny_model("fm-varnet-clip", **bad)
    with pytest.raises(ConfigError, match="feature_layers"):
        tiny_model("fm-unetr-clip", feature_layers=(1, 2, 3))
    with pytest.raises(ConfigError, match="chans needs 5 widths"):
        tiny_model("fm-varnet-clip", chans=(8, 8, 8))


def test_real_errors_of_a_constructor_are_not_turned_into_bad_options():
    with pytest.raises(RuntimeError) as err:  # torch's own error, not a ConfigError
        create_model("e2e-varnet", chans=-1)
    assert not isinstance(err.value, ConfigError)


def test_old_layout_file_uses_the_tiny_clip_encoder():
    assert _old_checkpoint()["fmrecon"]["model_spec"]["encoder_config"] == TINY_OVERRIDES["clip"]
