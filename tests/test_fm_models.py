"""The model registry, FM-VarNet and FM-UNETR (tiny encoders on CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from fmrecon.cli import main
from fmrecon.encoders import TINY_OVERRIDES
from fmrecon.errors import ConfigError
from fmrecon.models.registry import MODELS, create_model, describe
from fmrecon.physics.masks import create_mask
from fmrecon.utils import count_parameters

TINY_CLIP = TINY_OVERRIDES["clip"]
# per family: constructor overrides that make a model small enough for CPU tests
TINY = {
    "zero-filled": {},
    "sense": {"max_iter": 3},
    "cs-wavelet": {"max_iter": 3},
    "unet": {"chans": 4, "num_pools": 2},
    "e2e-varnet": {"num_cascades": 2, "chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 2},
    "fm-varnet": {
        "num_cascades": 2,
        "sens_chans": 4,
        "sens_pools": 2,
        "chans": (16, 16, 8, 8, 8),
    },
    "fm-unetr": {"feature_layers": (2, 3, 4, 6), "feature_size": 4},
}


def tiny_model(name: str, **extra):
    spec = MODELS[name]
    kw = dict(TINY[spec.family], **extra)
    if spec.encoder is not None:
        family = {"clip-vit-b16": "clip", "dinov2-vit-b14": "dinov2"}.get(spec.encoder, "vit")
        kw.update(
            encoder_weights="random",
            allow_random_encoder=True,
            encoder_config=TINY_OVERRIDES[family],
        )
    return create_model(name, **kw)


def _inputs(b=2, c=3, h=40, w=36, acc=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(b, c, h, w, 2, generator=g)
    # 6 and 8 ACS lines at W = 27 and 36: ESPIRiT (sense, cs-wavelet) needs 6
    mask = torch.from_numpy(create_mask("equispaced-fraction", acc, center_fraction=0.22)((h, w)))
    mask = mask[None, None].expand(b, 1, h, w)
    return torch.view_as_complex(k) * mask, mask


def test_models_json_lists_every_model_with_counts(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    expected = {
        "zero-filled", "unet", "e2e-varnet", "fm-varnet-clip", "fm-varnet-dinov2",
        "fm-varnet-biomedclip", "fm-unetr-clip", "fm-unetr-dinov2", "fm-unetr-biomedclip",
    }  # fmt: skip
    assert expected <= set(rows)
    assert all({"name", "total_params", "trainable_params"} <= set(r) for r in rows.values())
    assert rows["e2e-varnet"]["total_params"] == 29_936_966
    assert rows["unet"]["trainable_params"] == pytest.approx(31.04e6, rel=0.03)
    for enc in ("clip", "dinov2", "biomedclip"):
        fv = rows[f"fm-varnet-{enc}"]
        assert fv["trainable_params"] == pytest.approx(56e6, rel=0.10)
        # frozen encoder: six ViT-B blocks (+ embeddings) are counted, not trained
        assert fv["total_params"] - fv["trainable_params"] == pytest.approx(43.3e6, rel=0.03)
        fu = rows[f"fm-unetr-{enc}"]
        paper = 20.92e6 if enc == "dinov2" else 20.87e6
        assert fu["trainable_params"] == pytest.approx(paper, rel=0.05)
    # DINOv2's 16x16 tokens at 224 px add 60 x 768 token positions
    diff = rows["fm-unetr-dinov2"]["trainable_params"] - rows["fm-unetr-clip"]["trainable_params"]
    assert diff == 60 * 768


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fm-varnet-clip" in out and "56.06M" in out and "29.94M" in out


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_has_the_one_interface(name):
    torch.manual_seed(0)
    model = tiny_model(name)
    for c, (h, w) in ((3, (40, 36)), (1, (33, 27))):  # any coil count, odd sizes
        k, m = _inputs(c=c, h=h, w=w)
        out = model(k, m)
        assert out.shape == (2, h, w) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
    assert model.record.name == name


@pytest.mark.parametrize("name", ["fm-varnet-clip", "fm-unetr-biomedclip", "fm-varnet-dinov2"])
def test_fm_models_train_decoder_not_encoder(name):
    torch.manual_seed(0)
    # a non-zero head, as after the first step (a zero head passes gradients
    # to itself only: tests/test_init_scale.py)
    model = tiny_model(name, zero_init_head=False)
    model.train()
    assert not model.encoder.training  # frozen encoder stays in eval mode
    k, m = _inputs()
    model(k, m).mean().backward()
    enc_params = {id(p) for p in model.encoder.parameters()}
    assert all(not p.requires_grad and p.grad is None for p in model.encoder.parameters())
    trainable = [p for p in model.parameters() if id(p) not in enc_params]
    assert trainable and all(p.requires_grad for p in trainable)
    assert sum(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in trainable) > 0.9 * len(
        trainable
    )
    assert count_parameters(model, trainable_only=True) == sum(p.numel() for p in trainable)
    assert model.record.encoder_weights == "random-init"
    assert model.record.encoder_pretrained is False


def test_fm_varnet_cascades_share_one_encoder():
    model = tiny_model("fm-varnet-clip", num_cascades=3)
    denoisers = [c.model for c in model.cascades]
    assert all(d.encoder is model.encoder for d in denoisers)
    keys = list(model.state_dict())
    enc_keys = [k for k in keys if "encoder" in k.split(".")[:2] or ".encoder." in k]
    assert enc_keys and all(k.startswith("encoder.") for k in enc_keys)
    # twelve cascades hold one copy: the parameter count grows by a decoder, not an encoder
    more = tiny_model("fm-varnet-clip", num_cascades=4)
    per_cascade = count_parameters(model.cascades[0])
    assert count_parameters(more) - count_parameters(model) == per_cascade
    # moving the model moves the shared encoder the cascades use
    model.double()
    assert denoisers[0].encoder.blocks[0].mlp.fc1.weight.dtype == torch.float64


def test_gradient_flows_through_the_frozen_encoder_to_its_input():
    """Earlier cascades learn through later cascades' encoders: the denoiser's
    output depends on its input through the encoder path alone."""
    torch.manual_seed(0)
    model = tiny_model("fm-varnet-clip", num_cascades=1, zero_init_head=False)  # a trained head
    den = model.cascades[0].model
    with torch.no_grad():  # cut the input-level skip: only the encoder path remains
        for p in den.input_skip.parameters():
            p.zero_()
    x = torch.randn(1, 1, 40, 36, dtype=torch.complex64, requires_grad=True)
    (den(x).abs() ** 2).sum().backward()
    assert x.grad is not None and torch.isfinite(torch.view_as_real(x.grad)).all()
    assert x.grad.abs().sum() > 0


def test_fm_varnet_runs_only_the_blocks_it_uses():
    model = tiny_model("fm-varnet-clip")
    assert model.encoder.num_layers == 6
    model = tiny_model("fm-varnet-clip", fuse_layers=4, skip_layers=(3, 2, 1))
    assert model.encoder.num_layers == 4
    model = tiny_model("fm-unetr-clip", feature_layers=(1, 2, 3, 5))
    assert model.encoder.num_layers == 5


def test_fm_model_loads_encoder_weights_from_a_local_hf_directory(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = {k: v for k, v in TINY_CLIP.items() if k != "input_size"}
    ref = CLIPVisionModel(CLIPVisionConfig(**cfg)).eval()
    ref.save_pretrained(tmp_path / "clip")
    model = create_model(
        "fm-varnet-clip",
        encoder_weights=str(tmp_path / "clip"),
        encoder_config=TINY_CLIP,
        **TINY["fm-varnet"],
    )
    assert model.record.encoder_pretrained is True
    assert model.record.encoder_weights.startswith("dir:")
    w_ref = ref.encoder.layers[0].mlp.fc1.weight
    assert torch.equal(model.encoder.blocks[0].mlp.fc1.weight, w_ref)


def test_missing_encoder_weights_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("FMRECON_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ConfigError) as err:
        create_model("fm-varnet-clip")
    msg = str(err.value)
    assert "\n" not in msg and "openai/clip-vit-base-patch16" in msg and "empty-cache" in msg


def test_registry_errors():
    with pytest.raises(ConfigError, match="unknown model 'fm-varnet-sam'"):
        create_model("fm-varnet-sam")
    with pytest.raises(ConfigError, match="bad option"):
        create_model("e2e-varnet", num_cascadez=3)
    with pytest.raises(ConfigError, match="no foundation-model encoder"):
        create_model("unet", encoder_config={"hidden_size": 8})


def test_describe_builds_nothing_in_memory():
    d = describe("fm-varnet-clip")
    assert d["trainable_params"] < d["total_params"]
