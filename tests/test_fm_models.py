"""The model registry, FM-VarNet and FM-UNETR (tiny encoders on CPU)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmrecon.cli import main
from fmrecon.encoders import TINY_OVERRIDES
from fmrecon.encoders.preprocess import prepare_images
from fmrecon.errors import ConfigError
from fmrecon.models.fm_denoiser import tokens_to_map
from fmrecon.models.registry import MODELS, create_model, describe
from fmrecon.physics.coils import rss
from fmrecon.physics.fft import ifft2c
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


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


def fm_varnet_trainable_by_hand(chans=(512, 376, 192, 96, 48), dim=768, cascades=12) -> int:
    """FM-VarNet's trainable parameters from the architecture of arXiv 2026 section 3
    (fm_denoiser's docstring), counted layer by layer: fastMRI's sensitivity model
    (8 chans, 4 pools; counted by the fastmri package) plus, per cascade, the layer
    fusion (6 LayerNorms + 6 weights), a 1x1 bottleneck, 1x1 skip projections from
    blocks 5/4/3, per stage a depthwise-separable up block and a 3x3 merge conv on
    the concatenation (InstanceNorm has no weights), the input skip (3x3, 2 ->
    last width), the 1x1 head to 2 channels and the cascade's DC weight."""
    from fastmri.models.varnet import SensitivityModel

    c = chans
    per = 6 * 2 * dim + 6 + dim * c[0] + c[0]
    per += sum(dim * x + x for x in c[1:-1])
    per += sum(ci * 9 + ci + ci * co + co for ci, co in zip(c[:-1], c[1:], strict=True))
    per += sum(2 * x * x * 9 + x for x in c[1:])
    per += 2 * c[-1] * 9 + c[-1] + c[-1] * 2 + 2 + 1
    return _n(SensitivityModel(chans=8, num_pools=4)) + cascades * per


def frozen_encoder_by_transformers() -> dict[str, int]:
    """The six frozen ViT-B blocks + embeddings each FM-VarNet runs, counted on the
    transformers models (meta device), minus what fmrecon does not build: the final
    LayerNorm (hidden states of blocks are used), DINOv2's mask token (pre-training
    only). BiomedCLIP is timm's ViT-B/16 (open_clip): CLIP's layout with a patch
    bias and no pre-LayerNorm."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model

    with torch.device("meta"):
        clip = CLIPVisionModel(CLIPVisionConfig(num_hidden_layers=6, patch_size=16))
        dino = Dinov2Model(Dinov2Config(num_hidden_layers=6, image_size=518))
    d = 768
    n_clip = _n(clip) - 2 * d  # post_layernorm
    return {
        "clip": n_clip,
        "dinov2": _n(dino) - 2 * d - dino.embeddings.mask_token.numel(),
        "biomedclip": n_clip + d - 2 * d,  # + patch-embedding bias, - pre-LayerNorm
    }


@pytest.fixture(scope="module")
def counts_by_oracle() -> dict[str, tuple[int, int]]:
    """(trainable, total) per model from the fastmri and transformers packages
    and the hand count above, never from fmrecon's models."""
    from fastmri.models import Unet, VarNet

    with torch.device("meta"):
        e2e, unet = _n(VarNet()), _n(Unet(1, 1, 64, 4))
    fm, frozen = fm_varnet_trainable_by_hand(), frozen_encoder_by_transformers()
    out = {"e2e-varnet": (e2e, e2e), "unet": (unet, unet)}
    out.update({f"fm-varnet-{k}": (fm, fm + v) for k, v in frozen.items()})
    return out


def test_models_json_lists_every_model_with_counts(capsys, counts_by_oracle):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    expected = {
        "zero-filled", "unet", "e2e-varnet", "fm-varnet-clip", "fm-varnet-dinov2",
        "fm-varnet-biomedclip", "fm-unetr-clip", "fm-unetr-dinov2", "fm-unetr-biomedclip",
    }  # fmt: skip
    assert expected <= set(rows)
    assert all({"name", "total_params", "trainable_params"} <= set(r) for r in rows.values())
    # exact counts of the reference implementations (fastMRI's VarNet and U-Net, the
    # transformers ViTs) and of FM-VarNet's layers counted by hand
    for name, (trainable, total) in counts_by_oracle.items():
        assert (rows[name]["trainable_params"], rows[name]["total_params"]) == (trainable, total)
    # the papers' figures: E2E-VarNet 29.9M, U-Net 31.04M, FM-VarNet "56M" (i.e. 55.5-56.5M)
    assert round(rows["e2e-varnet"]["trainable_params"] / 1e5) == 299
    assert round(rows["unet"]["trainable_params"] / 1e4) == 3102
    assert abs(fm_varnet_trainable_by_hand() - 56.0e6) < 0.5e6
    for enc in ("clip", "dinov2", "biomedclip"):
        fu = rows[f"fm-unetr-{enc}"]
        paper = 20.92e6 if enc == "dinov2" else 20.87e6
        assert fu["trainable_params"] == pytest.approx(paper, rel=0.05)
    # DINOv2's 16x16 tokens at 224 px add 60 x 768 token positions
    diff = rows["fm-unetr-dinov2"]["trainable_params"] - rows["fm-unetr-clip"]["trainable_params"]
    assert diff == 60 * 768


def test_models_table(capsys, counts_by_oracle):
    """Every row of the table: trainable and total in millions with two decimals,
    in their columns, equal to the reference counts."""
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = lines[0].split()
    assert head[:3] == ["model", "trainable", "total"]
    table = {cells[0]: cells for cells in (line.split() for line in lines[1:]) if cells}
    assert set(MODELS) <= set(table)
    for name, (trainable, total) in counts_by_oracle.items():
        assert table[name][1:3] == [f"{trainable / 1e6:.2f}M", f"{total / 1e6:.2f}M"], name
    assert table["zero-filled"][1:3] == ["0.00M", "0.00M"]


EPS32 = torch.finfo(torch.float32).eps


class _ZeroRegularizer(nn.Module):
    """A cascade regularizer whose term is exactly 0 (data consistency only)."""

    def forward(self, x):
        return torch.zeros_like(x)


def check_one_dc_step(model, k0, mask, mu=0.25):
    """Cascade 0 of a VarNet-like ``model`` with a zero regularizer term and
    ``dc_weight`` mu, from a k-space k that differs from the measurement k0:
    k - mu M (k - k0) (Sriram et al. 2020; fastmri/models/varnet.py VarNetBlock), so
    the sampled entries move a fraction mu of the way to the measurement and the
    others stay. The same fp32 operations in the same order: exact up to the
    rounding of a few operations on values of |k|'s size."""
    block = model.cascades[0]
    with torch.no_grad():
        sens = model.sens_net(k0, mask)
        g = torch.Generator().manual_seed(5)
        k = k0 + torch.randn(k0.shape, dtype=k0.dtype, generator=g)  # k - k0 != 0 everywhere
        block.dc_weight.fill_(mu)
        out = block(k, k0, mask, sens)
    want = k - mu * mask * (k - k0)
    tol = 4 * EPS32 * float(k.abs().max())
    torch.testing.assert_close(out, want, rtol=0, atol=tol)
    m = mask.expand_as(k)
    moved = (out - k0)[m].abs().norm() / (k - k0)[m].abs().norm()
    assert abs(float(moved) - (1 - mu)) < 1e-5  # toward the measurement, by (1 - mu)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_has_the_one_interface(name):
    torch.manual_seed(0)
    model = tiny_model(name)
    family = MODELS[name].family
    for c, (h, w) in ((3, (40, 36)), (1, (33, 27))):  # any coil count, odd sizes
        k, m = _inputs(c=c, h=h, w=w)
        out = model(k, m)
        assert out.shape == (2, h, w) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
        zf = rss(ifft2c(k), dim=1)
        if family == "zero-filled" or (family == "fm-varnet" and h % 2):
            # FM-VarNet's heads start at zero: every regularizer term is exactly 0 and
            # k stays the measurement through the cascades: the zero-filled RSS
            torch.testing.assert_close(out, zf, rtol=0, atol=0)
        elif family == "fm-varnet":
            # even sizes: the same, in the sign-modulated frame (physics.fft.shift_signs),
            # so the final inverse FFT is the unshifted one of s_k k: it differs from
            # ifft2c's by an FFT's rounding, <= log2(H W) eps of the largest value
            # (measured 1.1 eps at 40 x 36)
            tol = math.log2(h * w) * EPS32 * float(zf.abs().max())
            torch.testing.assert_close(out, zf, rtol=0, atol=tol)
        elif family == "fm-unetr":
            # zero head: the residual alone, zf / s * s (two fp32 roundings)
            torch.testing.assert_close(out, zf, rtol=2 * EPS32, atol=0)
    assert model.record.name == name
    k, m = _inputs()
    if family in ("e2e-varnet", "fm-varnet"):
        if family == "e2e-varnet":  # FM-VarNet's zero head already makes the term 0
            model.cascades[0].model = _ZeroRegularizer()
        check_one_dc_step(model, k, m)
    elif family in ("sense", "cs-wavelet"):
        # a solver that returns 0: the output is the measured samples put back, i.e.
        # the zero-filled RSS (k / scale, sigpy's FFT, * scale: fp32 roundings and the
        # FFT's eps x log2(N) of the rms, Higham sec. 24.1)
        model._solve = lambda y, op, device: device.xp.zeros(op.ishape, y.dtype)
        with torch.no_grad():
            out = model(k, m)
        zf = rss(ifft2c(k), dim=1)
        tol = 4 * EPS32 * math.log2(40 * 36) * float(zf.square().mean().sqrt())
        torch.testing.assert_close(out, zf, rtol=0, atol=tol)
    elif family == "unet":
        # an identity U-Net: the normalisation is undone exactly but for fp32 rounding
        model.unet = nn.Identity()
        with torch.no_grad():
            out = model(k, m)
        zf = rss(ifft2c(k), dim=1)
        torch.testing.assert_close(out, zf, rtol=0, atol=4 * EPS32 * float(zf.abs().max()))


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


def _denoiser_resize_then_project(den, image):
    """FMDenoiser.forward as first written, the reference of the test below: each
    skip's D-channel token map bilinear-resized to its stage's size, then the 1x1
    projection (the forward now projects first and resizes the c channels)."""
    x = image[:, 0]
    h, w = x.shape[-2:]
    pixels, scale = prepare_images(x, den.encoder, stats=den.stats)  # den.percentile is None
    feats = den.encoder(pixels)
    grid = tuple(den.encoder.grid)
    y = den.bottleneck(tokens_to_map(den.fusion(feats[: den.fuse_layers]), grid))
    s = scale.view(-1, 1, 1, 1)
    x_in = torch.view_as_real(x).movedim(-1, 1) / s
    for i, (up, merge) in enumerate(zip(den.ups, den.merges, strict=True)):
        if i < len(den.skip_layers):
            y = up(F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False))
            z = tokens_to_map(feats[den.skip_layers[i] - 1], grid)
            z = F.interpolate(z, size=y.shape[-2:], mode="bilinear", align_corners=False)
            y = merge(torch.cat((y, den.skips[i](z)), dim=1))
        else:
            y = up(F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False))
            y = merge(torch.cat((y, den.input_skip(x_in)), dim=1))
    return torch.view_as_complex((den.head(y) * s).movedim(1, -1).contiguous()).unsqueeze(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fm_denoiser_projects_skips_before_resizing_same_function(dtype):
    """A 1x1 conv commutes with a bilinear resize (weights summing to 1 per output
    pixel), bias included: the forward equals the resize-then-project reference
    with the same weights, outputs and gradients (training uses them), on even,
    odd and non-square sizes, B = 2."""
    torch.manual_seed(0)
    model = tiny_model("fm-varnet-clip", num_cascades=1, zero_init_head=False).to(dtype)
    den = model.cascades[0].model
    params = [p for p in den.parameters() if p.requires_grad]
    # Rounding only: a skip value sums D + 1 conv terms and 4 bilinear taps in either
    # order (gamma_{D+5} = (D + 5) eps, Higham's summation bound), times the 8 layers
    # that follow the first skip (3 merges, 4 up blocks, the head). Measured: 1.2e-6
    # (fp32), 2e-15 (fp64) against 3.5e-5 / 6.6e-14.
    rtol = 8 * (den.encoder.hidden_size + 5) * torch.finfo(dtype).eps
    for h, w in ((40, 36), (27, 50)):
        x = torch.randn(2, 1, h, w, dtype=dtype.to_complex(), requires_grad=True)
        want, got = _denoiser_resize_then_project(den, x), den(x)
        assert (got - want).abs().max() <= rtol * want.abs().max()
        g_want = torch.autograd.grad(want.abs().square().sum(), [x, *params])
        g_got = torch.autograd.grad(got.abs().square().sum(), [x, *params])
        # against the largest gradient: a conv bias ahead of an InstanceNorm has a
        # zero gradient in exact arithmetic (rounding noise here), nothing to be relative to
        scale = max(g.abs().max() for g in g_want)
        for a, b in zip(g_want, g_got, strict=True):
            assert (a - b).abs().max() <= 2 * rtol * scale  # backward: twice the depth


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
    tower = getattr(ref, "vision_model", ref)  # nested up to transformers 5.x
    w_ref = tower.encoder.layers[0].mlp.fc1.weight
    assert torch.equal(model.encoder.blocks[0].mlp.fc1.weight, w_ref)


def test_missing_encoder_weights_is_a_one_line_error(tmp_path, monkeypatch):
    """Offline (tests/conftest.py sets HF_HUB_OFFLINE=1) and not in the cache: one
    line naming the cache, the offline variable and the `hf download` command."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for name, repo in (
        ("fm-varnet-clip", "openai/clip-vit-base-patch16"),
        ("fm-unetr-rad-dino", "microsoft/rad-dino"),
    ):
        with pytest.raises(ConfigError) as err:
            create_model(name)
        msg = str(err.value)
        assert "\n" not in msg and "empty-cache" in msg and "HF_HUB_OFFLINE=1" in msg
        assert f"`hf download {repo} " in msg


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
