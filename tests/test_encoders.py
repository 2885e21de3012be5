"""Frozen encoders: tiny checkpoints written in the real formats (HF directories
via save_pretrained, an open_clip .bin with the timm trunk layout built by
hand), loaded through build_encoder's user path / hub cache, and checked
against direct forwards of the same weights. Full-size architectures are only
built on the meta device (parameter counts, token grids)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers  # an oracle: conftest.py fails the run without it
from torch import nn

from fmrecon.encoders import (  # noqa: E402
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    RAD_DINO_MEAN,
    RAD_DINO_STD,
    SIGLIP_MEAN,
    SIGLIP_STD,
    TINY_OVERRIDES,
    EncoderWeightsError,
    FrozenEncoder,
    build_encoder,
    make_config,
    prepare_images,
)
from fmrecon.encoders.preprocess import percentile_scale, upper_quantile  # noqa: E402
from fmrecon.errors import ConfigError  # noqa: E402
from fmrecon.utils import count_parameters  # noqa: E402

D, HEADS, MLP, LAYERS = 32, 2, 64, 6
TINY = dict(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS)
CLIP_REPO = "openai/clip-vit-base-patch16"
BIOMED_REPO = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
DINOV3_REPO = "facebook/dinov3-vitb16-pretrain-lvd1689m"
NEW = ("siglip-vit-b16", "rad-dino-vit-b14", "dinov3-vit-b16")


@pytest.fixture(autouse=True)
def _offline_empty_cache(tmp_path, monkeypatch):
    """Never touch a real cache or the network: an empty hub cache per test, and
    downloads off (tests that fetch fake the download and unset it themselves)."""
    for var in ("HF_HOME", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # save_pretrained's shard bars
    yield
    if bars:
        transformers.utils.logging.enable_progress_bar()


def _jitter(model: nn.Module, seed: int) -> nn.Module:
    """Perturb every weight (LN gains, biases, layer scales...) so that a wrongly
    mapped or dropped tensor cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def tiny_clip_vision(seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.CLIPVisionConfig(**TINY, intermediate_size=MLP, image_size=32, patch_size=8)
    return _jitter(transformers.CLIPVisionModel(cfg), seed)


def tiny_clip_full(seed: int = 0):
    """A full CLIPModel (text tower too): the vision tower's keys are vision_model.*"""
    torch.manual_seed(seed)
    cfg = transformers.CLIPConfig(
        vision_config=dict(**TINY, intermediate_size=MLP, image_size=32, patch_size=8),
        text_config=dict(
            hidden_size=D,
            num_hidden_layers=2,
            num_attention_heads=HEADS,
            intermediate_size=MLP,
            vocab_size=64,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        projection_dim=16,
    )
    return _jitter(transformers.CLIPModel(cfg), seed)


def tiny_dinov2(seed: int = 0):
    torch.manual_seed(seed)
    # position embeddings for 84 px (6x6 patches), run at 56 px (4x4) like 518 -> 224
    cfg = transformers.Dinov2Config(**TINY, mlp_ratio=MLP // D, image_size=84, patch_size=14)
    return _jitter(transformers.Dinov2Model(cfg), seed)


def tiny_siglip_vision(seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.SiglipVisionConfig(
        **TINY, intermediate_size=MLP, image_size=32, patch_size=8
    )
    return _jitter(transformers.SiglipVisionModel(cfg), seed)


def tiny_siglip_full(seed: int = 0):
    """A full SiglipModel, as google/siglip-base-patch16-224 is (vision_model.* keys)."""
    torch.manual_seed(seed)
    cfg = transformers.SiglipConfig(
        vision_config=dict(**TINY, intermediate_size=MLP, image_size=32, patch_size=8),
        text_config=dict(
            hidden_size=D, num_hidden_layers=2, num_attention_heads=HEADS,
            intermediate_size=MLP, vocab_size=64, max_position_embeddings=16,
        ),
    )  # fmt: skip
    return _jitter(transformers.SiglipModel(cfg), seed)


def tiny_rad_dino(seed: int = 0):
    """A Dinov2Model as microsoft/rad-dino is, run at its own size (56 px = 4x4 here)."""
    torch.manual_seed(seed)
    cfg = transformers.Dinov2Config(**TINY, mlp_ratio=MLP // D, image_size=56, patch_size=14)
    return _jitter(transformers.Dinov2Model(cfg), seed)


def tiny_dinov3(seed: int = 0):
    """DINOv3 ViT with CLS + 4 register tokens, RoPE and layer scale."""
    torch.manual_seed(seed)
    cfg = transformers.DINOv3ViTConfig(
        **TINY, intermediate_size=MLP, image_size=32, patch_size=8, num_register_tokens=4
    )
    return _jitter(transformers.DINOv3ViTModel(cfg), seed)


def hf_features(model, x, n, prefix: int = 1):
    """Reference: transformers' hidden_states[1..n] without the ``prefix`` tokens
    before the patches (CLS; none for SigLIP; CLS + registers for DINOv3)."""
    with torch.no_grad():
        hs = model(pixel_values=x, output_hidden_states=True).hidden_states
    return [h[:, prefix:] for h in hs[1 : n + 1]]


def hf_block_outputs(module, layers, x, prefix: int):
    """Reference from hooks: each of ``layers``' outputs (without ``prefix``
    tokens) during transformers' own forward of ``module``. Used where
    ``hidden_states`` differ across releases: DINOv3 in transformers 4.5x
    returns the final-normed state as the last one, and a full CLIPModel's /
    SiglipModel's inner vision transformer returns none before 5.x."""
    outs: list[torch.Tensor] = []
    hooks = [
        b.register_forward_hook(lambda m, i, o: outs.append(o[0] if isinstance(o, tuple) else o))
        for b in layers
    ]
    with torch.no_grad():
        module(pixel_values=x)
    for h in hooks:
        h.remove()
    return [o[:, prefix:] for o in outs]


def dinov3_layers(model):
    return model.layer if hasattr(model, "layer") else model.model.layer


def timm_trunk_state(seed: int = 0, layers: int = LAYERS, patch: int = 8, size: int = 32):
    """An open_clip BiomedCLIP-style state dict: timm ViT trunk under visual.trunk.*,
    plus a visual.head projection and a text tower that the loader must ignore."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return scale * torch.randn(*shape, generator=g)

    n = (size // patch) ** 2 + 1
    t = "visual.trunk."
    sd = {
        t + "patch_embed.proj.weight": r(D, 3, patch, patch),
        t + "patch_embed.proj.bias": r(D),
        t + "cls_token": r(1, 1, D),
        t + "pos_embed": r(1, n, D),
        t + "norm.weight": 1 + r(D),
        t + "norm.bias": r(D),
    }
    for i in range(layers):
        b = f"{t}blocks.{i}."
        sd |= {
            b + "norm1.weight": 1 + r(D),
            b + "norm1.bias": r(D),
            b + "attn.qkv.weight": r(3 * D, D),
            b + "attn.qkv.bias": r(3 * D),
            b + "attn.proj.weight": r(D, D),
            b + "attn.proj.bias": r(D),
            b + "norm2.weight": 1 + r(D),
            b + "norm2.bias": r(D),
            b + "mlp.fc1.weight": r(MLP, D),
            b + "mlp.fc1.bias": r(MLP),
            b + "mlp.fc2.weight": r(D, MLP),
            b + "mlp.fc2.bias": r(D),
        }
    sd |= {
        "visual.head.proj.weight": r(16, D),
        "text.transformer.embeddings.word_embeddings.weight": r(64, D),
        "text.transformer.encoder.layer.0.attention.self.query.weight": r(D, D),
        "text.proj.0.weight": r(16, D),
        "logit_scale": torch.tensor(4.6),
    }
    return sd


def ref_timm_vit(sd, x, layers: int, heads: int = HEADS, eps: float = 1e-6):
    """Hand-written timm ViT forward on the raw tensors: patch conv, prepend CLS,
    add pos_embed; x += proj(attn(norm1 x)); x += fc2(gelu(fc1(norm2 x)))."""
    p = "visual.trunk."
    w = sd[p + "patch_embed.proj.weight"]
    x = F.conv2d(x, w, sd[p + "patch_embed.proj.bias"], stride=w.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[p + "cls_token"].expand(len(x), -1, -1), x], dim=1) + sd[p + "pos_embed"]
    b_, n_, d_ = x.shape
    hd = d_ // heads
    out = []
    for i in range(layers):
        b = f"{p}blocks.{i}."
        h = F.layer_norm(x, (d_,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps)
        qkv = F.linear(h, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"])
        q, k, v = qkv.view(b_, n_, 3, heads, hd).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1) @ v
        a = a.transpose(1, 2).reshape(b_, n_, d_)
        x = x + F.linear(a, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        h = F.layer_norm(x, (d_,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps)
        h = F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"]))
        x = x + F.linear(h, sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        out.append(x[:, 1:])
    return out


# Features against transformers' own forward are bit-identical on every release
# tested (4.56.2, 5.24.0, 5.25.0); against the hand-written ViT (another attention
# and layer-norm kernel order) they differ by at most 3.0e-7 of the block's largest
# value (~2.5 fp32 epsilons, 6 blocks; also without vectorisation and with oneDNN
# limited to SSE4.1). Allowed: 2e-6 of that value (~17 epsilons); a layer-norm
# epsilon 10x too large moves the tiny encoders' features by 7e-6 (BiomedCLIP) to
# 8e-4 (CLIP) of it, which the former rtol=1e-4 let through.
FEATURE_TOL = 2e-6


def assert_features(got, want, tol=FEATURE_TOL):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.shape == b.shape, (i, a.shape, b.shape)
        atol = tol * b.abs().max().item()
        torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=f"block {i + 1}")


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- registry


def test_registry_facts():
    assert set(ENCODERS) == {"clip-vit-b16", "dinov2-vit-b14", "biomedclip-vit-b16", *NEW}
    clip, dino, bio = (
        ENCODERS[n] for n in ("clip-vit-b16", "dinov2-vit-b14", "biomedclip-vit-b16")
    )
    assert (clip.family, dino.family, bio.family) == ("clip", "dinov2", "vit")
    for s in (clip, dino, bio):
        assert (s.hidden_size, s.num_layers, s.hf_config["num_attention_heads"]) == (768, 12, 12)
        assert s.input_size == 224
    assert (clip.patch_size, dino.patch_size, bio.patch_size) == (16, 14, 16)
    assert clip.hf_config["intermediate_size"] == bio.hf_config["intermediate_size"] == 3072
    assert dino.hf_config["mlp_ratio"] == 4
    assert (clip.hf_config["layer_norm_eps"], dino.hf_config["layer_norm_eps"]) == (1e-5, 1e-6)
    assert bio.hf_config["layer_norm_eps"] == 1e-6 and bio.hf_config["hidden_act"] == "gelu"
    assert dino.hf_config["image_size"] == 518 and dino.grid == (16, 16) and clip.grid == (14, 14)
    assert clip.weights_repo == CLIP_REPO and dino.weights_repo == "facebook/dinov2-base"
    assert bio.weights_repo == BIOMED_REPO and bio.weights_file == "open_clip_pytorch_model.bin"
    assert clip.mean == bio.mean == OPENAI_CLIP_MEAN and clip.std == bio.std == OPENAI_CLIP_STD
    assert dino.mean == IMAGENET_MEAN and dino.std == IMAGENET_STD


def test_registry_facts_of_the_newer_encoders():
    sig, rad, v3 = (ENCODERS[n] for n in NEW)
    assert (sig.family, rad.family, v3.family) == ("siglip", "dinov2", "dinov3")
    for s in (sig, rad, v3):
        assert (s.hidden_size, s.num_layers, s.hf_config["num_attention_heads"]) == (768, 12, 12)
    # SigLIP B/16-224: 0.5 mean/std, 224 px, tanh GELU, no CLS token
    assert (sig.patch_size, sig.input_size, sig.grid, sig.num_prefix_tokens) == (
        16,
        224,
        (14, 14),
        0,
    )
    assert sig.mean == SIGLIP_MEAN == (0.5,) * 3 and sig.std == SIGLIP_STD == (0.5,) * 3
    assert sig.hf_config["hidden_act"] == "gelu_pytorch_tanh"
    assert sig.weights_repo == "google/siglip-base-patch16-224"
    # RAD-DINO: a DINOv2 ViT-B/14 run at its own 518 px (37x37 patches) and grey statistics
    assert (rad.patch_size, rad.input_size, rad.grid, rad.num_prefix_tokens) == (
        14,
        518,
        (37, 37),
        1,
    )
    assert rad.hf_config == ENCODERS["dinov2-vit-b14"].hf_config
    assert rad.mean == RAD_DINO_MEAN == (0.5307,) * 3 and rad.std == RAD_DINO_STD == (0.2583,) * 3
    assert rad.weights_repo == "microsoft/rad-dino"
    # DINOv3 ViT-B/16: CLS + 4 registers, RoPE, 224 px, ImageNet statistics, gated repo
    assert (v3.patch_size, v3.input_size, v3.grid) == (16, 224, (14, 14))
    assert v3.num_prefix_tokens == 5
    assert v3.hf_config["key_bias"] is False and v3.hf_config["layer_norm_eps"] == 1e-5
    assert v3.mean == IMAGENET_MEAN and v3.std == IMAGENET_STD
    assert v3.weights_repo == DINOV3_REPO and v3.gated


# What each encoder's published preprocessing states, written out here rather than
# imported, so a wrong value (or channel order) in the registry cannot agree with
# itself. (input side, mean RGB, std RGB):
# - clip: openai/clip-vit-base-patch16 preprocessor_config.json (crop_size 224,
#   image_mean/image_std; also transformers.utils.constants.OPENAI_CLIP_MEAN/STD)
# - dinov2: facebook/dinov2-base preprocessor_config.json (BitImageProcessor, crop 224,
#   ImageNet mean/std); we run it at 224 px (16x16 patches)
# - biomedclip: open_clip_config.json preprocess_cfg of
#   microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 (OpenAI CLIP values),
#   vision_cfg image_size 224
# - siglip: google/siglip-base-patch16-224 preprocessor_config.json (0.5/0.5, 224x224)
# - rad-dino: microsoft/rad-dino: 518 px from its model card (37x37 patch tokens of 14 px);
#   image_mean 0.5307 / image_std 0.2583 on each channel as quoted from its
#   preprocessor_config.json, which could not be opened on the build machines
# - dinov3: transformers' DINOv3ViTImageProcessorFast defaults (224x224,
#   IMAGENET_DEFAULT_MEAN/STD), what facebook/dinov3-vitb16-pretrain-lvd1689m loads
_OPENAI = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PUBLISHED = {
    "clip-vit-b16": (224, *_OPENAI),
    "dinov2-vit-b14": (224, *_IMAGENET),
    "biomedclip-vit-b16": (224, *_OPENAI),
    "siglip-vit-b16": (224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "rad-dino-vit-b14": (518, (0.5307,) * 3, (0.2583,) * 3),
    "dinov3-vit-b16": (224, *_IMAGENET),
}


def test_encoder_statistics_and_size_are_the_published_ones():
    """Every encoder (built full size on the meta device) runs at the input size
    and normalises with the mean/std its published preprocessing states, and
    ``prepare_images`` applies channel c's statistics to channel c."""
    assert set(PUBLISHED) == set(ENCODERS)
    with torch.device("meta"):
        encoders = {n: build_encoder(n, weights="random") for n in PUBLISHED}
    # a ramp image at the encoder's own size: no resize, percentile None -> x = img / max
    for name, (size, mean, std) in PUBLISHED.items():
        enc = encoders[name]
        spec = ENCODERS[name]
        assert (enc.image_size, spec.input_size) == (size, size), name
        assert (enc.mean, enc.std) == (spec.mean, spec.std) == (mean, std), name
        img = torch.linspace(0.0, 1.0, size * size).view(1, size, size)
        for stats, (m, s) in (("encoder", (mean, std)), ("imagenet", _IMAGENET)):
            pixels, scale = prepare_images(img, enc, percentile=None, stats=stats)
            assert pixels.shape == (1, 3, size, size) and scale.item() == 1.0
            for c in range(3):
                # the same two fp32 operations on the same fp32 constants as the code: exact
                mc, sc = (torch.tensor(v, dtype=torch.float32) for v in (m[c], s[c]))
                want = (img[0] - mc) / sc
                torch.testing.assert_close(pixels[0, c], want, rtol=0, atol=0, msg=f"{name} {c}")


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        build_encoder("clip-vit-l14", weights="random")
    msg = one_line(err)
    assert "clip-vit-l14" in msg and all(n in msg for n in ENCODERS)


def test_bad_overrides_and_num_layers():
    with pytest.raises(ConfigError, match="hiden_size"):
        build_encoder("clip-vit-b16-tiny", weights="random", config_overrides={"hiden_size": 8})
    for bad in (0, "6", 2.0):
        with pytest.raises(ConfigError, match="num_layers"):
            build_encoder("clip-vit-b16-tiny", num_layers=bad, weights="random")


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("kind", ["vision", "full-clipmodel", "bin-prefixed"])
def test_clip_hf_dir_matches_transformers(tmp_path, kind):
    model = tiny_clip_full(1) if kind == "full-clipmodel" else tiny_clip_vision(1)
    if kind == "bin-prefixed":  # pytorch_model.bin with vision_model.* keys, as on the hub
        model.config.save_pretrained(tmp_path / "clip")
        pre = "vision_model."  # CLIPVisionModel's own keys have it up to transformers 5.x
        state = {("" if k.startswith(pre) else pre) + k: v for k, v in model.state_dict().items()}
        torch.save(state, tmp_path / "clip" / "pytorch_model.bin")
    else:
        model.save_pretrained(tmp_path / "clip")
    tower = model.vision_model if kind == "full-clipmodel" else model  # the CLIPModel's own
    enc = build_encoder("clip-vit-b16-tiny", weights=str(tmp_path / "clip"))
    assert isinstance(enc, FrozenEncoder)
    assert enc.weight_source == f"dir:{tmp_path / 'clip'}" and enc.pretrained
    assert (enc.num_layers, enc.hidden_size, enc.patch_size, enc.image_size) == (6, D, 8, 32)
    assert enc.grid == (4, 4)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = enc(x)
    assert got[0].shape == (2, 16, D)
    if kind == "full-clipmodel":
        assert_features(got, hf_block_outputs(tower, tower.encoder.layers, x, prefix=1))
    else:
        assert_features(got, hf_features(tower, x, LAYERS))
    # the post-layernorm is not part of the encoder
    assert not any("post_layernorm" in n for n, _ in enc.named_parameters())


def test_dinov2_hf_dir_interpolates_position_embeddings(tmp_path):
    model = tiny_dinov2(2)
    model.save_pretrained(tmp_path / "dino")
    # the same code path with the -tiny suffix or explicit overrides
    enc = build_encoder("dinov2-vit-b14-tiny", weights=tmp_path / "dino")
    enc2 = build_encoder(
        "dinov2-vit-b14", weights=tmp_path / "dino", config_overrides=TINY_OVERRIDES["dinov2"]
    )
    assert enc.image_size == 56 and enc.grid == (4, 4)
    assert enc.embeddings.position_embeddings.shape == (1, 37, D)  # stored for 6x6 patches
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        got = enc(x)
        got2 = enc2(x)
    assert got[0].shape == (2, 16, D)
    assert_features(got, hf_features(model, x, LAYERS))
    assert_features(got2, got, tol=0)
    assert not any(
        "mask_token" in n or n.startswith("layernorm") for n, _ in enc.named_parameters()
    )


@pytest.mark.parametrize("kind", ["vision", "full-siglipmodel"])
def test_siglip_hf_dir_matches_transformers_without_cls(tmp_path, kind):
    model = tiny_siglip_full(11) if kind == "full-siglipmodel" else tiny_siglip_vision(11)
    model.save_pretrained(tmp_path / "siglip")
    tower = model.vision_model if kind == "full-siglipmodel" else model
    enc = build_encoder("siglip-vit-b16-tiny", weights=tmp_path / "siglip")
    assert enc.num_prefix_tokens == 0 and enc.grid == (4, 4) and enc.image_size == 32
    assert (enc.mean, enc.std) == (SIGLIP_MEAN, SIGLIP_STD)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = enc(x)
    assert got[0].shape == (2, 16, D)  # every token is a patch token
    if kind == "full-siglipmodel":
        assert_features(got, hf_block_outputs(tower, tower.encoder.layers, x, prefix=0))
    else:
        assert_features(got, hf_features(tower, x, LAYERS, prefix=0))
    assert not any("head" in n or "post_layernorm" in n for n, _ in enc.named_parameters())


def test_rad_dino_hf_dir_runs_at_its_own_size(tmp_path):
    model = tiny_rad_dino(12)
    model.save_pretrained(tmp_path / "rad-dino")
    enc = build_encoder("rad-dino-vit-b14-tiny", weights=tmp_path / "rad-dino")
    # the position embeddings' own grid: no interpolation, unlike DINOv2 at 224 px
    assert enc.image_size == 56 and enc.grid == (4, 4) and enc.num_prefix_tokens == 1
    assert enc.embeddings.position_embeddings.shape == (1, 17, D)
    assert (enc.mean, enc.std) == (RAD_DINO_MEAN, RAD_DINO_STD)
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert_features(enc(x), hf_features(model, x, LAYERS))


def test_dinov3_hf_dir_drops_cls_and_register_tokens(tmp_path):
    model = tiny_dinov3(13)
    model.save_pretrained(tmp_path / "dinov3")
    enc = build_encoder("dinov3-vit-b16-tiny", weights=tmp_path / "dinov3")
    assert enc.num_prefix_tokens == 5 and enc.grid == (4, 4) and enc.image_size == 32
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = enc(x)
        # RoPE follows the input grid: 48 px = 6x6 patches, as transformers does
        x6 = torch.randn(1, 3, 48, 48)
        got6 = enc(x6)
    assert got[0].shape == (2, 16, D)
    assert_features(got, hf_block_outputs(model, dinov3_layers(model), x, prefix=5))
    assert_features(got6, hf_block_outputs(model, dinov3_layers(model), x6, prefix=5))
    if int(transformers.__version__.split(".")[0]) >= 5:  # see hf_block_outputs
        assert_features(got, hf_features(model, x, LAYERS, prefix=5), tol=0)
    names = [n for n, _ in enc.named_parameters()]
    assert any("register_tokens" in n for n in names) and not any("mask_token" in n for n in names)
    assert not any(n.startswith("norm") for n in names)
    truncated = build_encoder("dinov3-vit-b16-tiny", num_layers=3, weights=tmp_path / "dinov3")
    with torch.no_grad():
        assert_features(truncated(x), got[:3], tol=0)


@pytest.mark.parametrize("as_dir", [False, True])
def test_biomedclip_open_clip_checkpoint_matches_reference(tmp_path, as_dir):
    sd = timm_trunk_state(3)
    file = tmp_path / "bmc" / "open_clip_pytorch_model.bin"
    file.parent.mkdir()
    torch.save(sd, file)
    enc = build_encoder("biomedclip-vit-b16-tiny", weights=file.parent if as_dir else file)
    assert enc.weight_source == f"open_clip:{file}" and enc.pretrained
    assert isinstance(enc.config, transformers.ViTConfig) and enc.config.layer_norm_eps == 1e-6
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = enc(x)
    assert_features(got, ref_timm_vit(sd, x, LAYERS))


def test_truncation_runs_and_keeps_only_the_first_blocks(tmp_path):
    model = tiny_clip_vision(4)
    model.save_pretrained(tmp_path / "clip")
    full = build_encoder("clip-vit-b16-tiny", weights=tmp_path / "clip")
    part = build_encoder("clip-vit-b16-tiny", num_layers=3, weights=tmp_path / "clip")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_features(part(x), hf_features(model, x, 3))
        assert_features(part(x), full(x)[:3], tol=0)
    per_block = count_parameters(full.blocks[0])
    assert part.num_layers == 3 and len(part.blocks) == 3
    assert count_parameters(full) - count_parameters(part) == 3 * per_block

    sd = timm_trunk_state(5)
    torch.save(sd, tmp_path / "bmc.bin")
    bmc = build_encoder("biomedclip-vit-b16-tiny", num_layers=3, weights=tmp_path / "bmc.bin")
    with torch.no_grad():
        assert_features(bmc(x), ref_timm_vit(sd, x, 3))


def test_checkpoint_with_fewer_blocks_is_an_error(tmp_path):
    tiny_clip_vision().save_pretrained(tmp_path / "clip")
    with pytest.raises(EncoderWeightsError) as err:
        build_encoder("clip-vit-b16-tiny", num_layers=8, weights=tmp_path / "clip")
    assert "6 blocks" in one_line(err) and "8" in str(err.value)
    torch.save(timm_trunk_state(layers=4), tmp_path / "bmc.bin")
    with pytest.raises(EncoderWeightsError, match="4 blocks"):
        build_encoder("biomedclip-vit-b16-tiny", num_layers=6, weights=tmp_path / "bmc.bin")
    # a config.json promising more blocks than the weights hold: missing keys
    ckpt = tiny_clip_vision()
    ckpt.config.num_hidden_layers = 8
    ckpt.save_pretrained(tmp_path / "short")  # writes 8 in config.json, weights of 6
    with pytest.raises(EncoderWeightsError, match="lacks weights") as err:
        build_encoder("clip-vit-b16", weights=tmp_path / "short")  # architecture from config.json
    assert "encoder.layers.6." in one_line(err)


def test_open_clip_key_and_shape_errors(tmp_path):
    sd = timm_trunk_state()
    bad = dict(sd)
    bad["visual.trunk.blocks.0.ls1.gamma"] = torch.ones(D)  # layer scale: would change outputs
    torch.save(bad, tmp_path / "extra.bin")
    with pytest.raises(EncoderWeightsError, match="unexpected") as err:
        build_encoder("biomedclip-vit-b16-tiny", weights=tmp_path / "extra.bin")
    assert "blocks.0.ls1.gamma" in one_line(err)
    bad = {k: v for k, v in sd.items() if k != "visual.trunk.blocks.1.attn.proj.weight"}
    torch.save(bad, tmp_path / "missing.bin")
    with pytest.raises(EncoderWeightsError, match="blocks.1.attn.proj.weight") as err:
        build_encoder("biomedclip-vit-b16-tiny", weights=tmp_path / "missing.bin")
    one_line(err)
    torch.save(sd, tmp_path / "ok.bin")
    with pytest.raises(EncoderWeightsError, match="shapes") as err:
        build_encoder("biomedclip-vit-b16-tiny", weights=tmp_path / "ok.bin",
                      config_overrides={"intermediate_size": 48})  # fmt: skip
    one_line(err)
    torch.save({"text.proj.0.weight": torch.zeros(2, 2)}, tmp_path / "textonly.bin")
    with pytest.raises(EncoderWeightsError, match="no ViT image trunk"):
        build_encoder("biomedclip-vit-b16-tiny", weights=tmp_path / "textonly.bin")


def test_wrong_family_directory_is_an_error(tmp_path):
    tiny_dinov2().save_pretrained(tmp_path / "dino")
    with pytest.raises(EncoderWeightsError, match="'dinov2' model") as err:
        build_encoder("clip-vit-b16-tiny", weights=tmp_path / "dino")
    one_line(err)


def _fake_hub(root: Path, repo: str, commit: str = "0123abcd") -> Path:
    """Hub cache layout: models--org--name/{refs/main, snapshots/<commit>/}, plus a
    stale incomplete snapshot that must not be picked."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo_dir / "snapshots" / "stale000").mkdir()
    (repo_dir / "snapshots" / "stale000" / "config.json").write_text("{}")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return snap


def test_default_weights_from_hf_cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    model = tiny_clip_vision(6)
    snap = _fake_hub(hub, CLIP_REPO)
    model.save_pretrained(snap)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    enc = build_encoder("clip-vit-b16-tiny")
    assert enc.weight_source == f"hf:{CLIP_REPO}" and enc.weight_path == str(snap)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_features(enc(x), hf_features(model, x, LAYERS))
    # the user path may also be a hub cache directory; "hf:" ids use the same cache
    enc2 = build_encoder("clip-vit-b16-tiny", weights=hub)
    assert enc2.weight_source == f"dir:{snap}"
    for ident in (f"hf:{CLIP_REPO}", CLIP_REPO):
        assert build_encoder("clip-vit-b16-tiny", weights=ident).weight_source == f"hf:{CLIP_REPO}"

    # BiomedCLIP through HF_HOME/hub (HF_HUB_CACHE unset)
    home = tmp_path / "hf-home"
    snap = _fake_hub(home / "hub", BIOMED_REPO)
    sd = timm_trunk_state(7)
    torch.save(sd, snap / "open_clip_pytorch_model.bin")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(home))
    enc = build_encoder("biomedclip-vit-b16-tiny", num_layers=2)
    assert enc.weight_source == f"hf:{BIOMED_REPO}" and enc.num_layers == 2
    with torch.no_grad():
        assert_features(enc(x), ref_timm_vit(sd, x, 2))


def test_missing_weights_offline_one_line_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:  # EncoderWeightsError is a ConfigError
        build_encoder("clip-vit-b16", num_layers=6)
    msg = one_line(err)
    assert isinstance(err.value, EncoderWeightsError)
    assert str(tmp_path / "empty-hub" / "models--openai--clip-vit-base-patch16") in msg
    assert f"`hf download {CLIP_REPO} config.json pytorch_model.bin`" in msg
    assert "HF_HUB_OFFLINE=1" in msg and "HF_HUB_CACHE" in msg
    assert "`fmrecon train --config CONFIG model.encoder_weights=PATH`" in msg
    assert "huggingface-cli" not in msg
    with pytest.raises(EncoderWeightsError) as err:
        build_encoder("biomedclip-vit-b16")
    assert f"`hf download {BIOMED_REPO} open_clip_pytorch_model.bin`" in one_line(err)
    # TRANSFORMERS_OFFLINE turns downloads off as well; the gated repo says so
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "true")
    with pytest.raises(EncoderWeightsError) as err:
        build_encoder("dinov3-vit-b16", weights=f"hf:{DINOV3_REPO}@v1")
    msg = one_line(err)
    assert f"`hf download {DINOV3_REPO} config.json model.safetensors --revision v1`" in msg
    assert "TRANSFORMERS_OFFLINE=true" in msg and "gated" in msg and "hf auth login" in msg
    with pytest.raises(EncoderWeightsError) as err:
        build_encoder("dinov2-vit-b14", weights=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in one_line(err)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(EncoderWeightsError) as err:
        build_encoder("dinov2-vit-b14", weights=tmp_path / "emptydir")
    assert "config.json" in one_line(err)


def _fake_hub_download(remote: Path, calls: list, missing=()):
    """Stands in for huggingface_hub.hf_hub_download: copies ``remote``'s files
    into the cache in the hub's layout, records every call, and answers a file
    in ``missing`` as the hub does a file the repo lacks."""
    import huggingface_hub.errors as hub_errors

    base = getattr(hub_errors, "RemoteEntryNotFoundError", hub_errors.EntryNotFoundError)

    class not_found(base):  # the hub's 404 for a file, without an HTTP response
        def __init__(self, message: str):
            Exception.__init__(self, message)

    def download(repo_id, filename, *, revision, cache_dir):
        calls.append((repo_id, filename, revision, cache_dir))
        if filename in missing:
            raise not_found(f"404 {filename}")
        repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
        snap = repo_dir / "snapshots" / ("c0ffee" * 7)[:40]
        snap.mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / revision).write_text(snap.name)
        (snap / filename).write_bytes((remote / filename).read_bytes())
        return str(snap / filename)

    return download


def test_default_weights_are_fetched_on_first_use(tmp_path, monkeypatch):
    """Online (no offline variable), a missing repo is fetched into the hub cache
    through huggingface_hub.hf_hub_download (faked: no network in tests) with the
    repo id, revision and cache dir, then loaded from there; the next build
    finds it in the cache and fetches nothing."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    cache = tmp_path / "empty-hub"
    remote = tmp_path / "remote"
    model = tiny_siglip_vision(8)
    model.save_pretrained(remote)
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _fake_hub_download(remote, calls))
    enc = build_encoder("siglip-vit-b16-tiny")
    repo = "google/siglip-base-patch16-224"
    assert calls == [(repo, f, "main", str(cache)) for f in ("config.json", "model.safetensors")]
    assert enc.weight_source == f"hf:{repo}" and enc.weight_path.startswith(str(cache))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_features(enc(x), hf_features(model, x, LAYERS, prefix=0))
    build_encoder("siglip-vit-b16-tiny")
    assert len(calls) == 2  # from the cache now

    # a repo without the expected weights file: the other format, as transformers does
    torch.save(tiny_clip_vision(9).state_dict(), remote / "pytorch_model.bin")
    tiny_clip_vision(9).config.save_pretrained(remote)
    calls.clear()
    fake = _fake_hub_download(remote, calls, missing=("model.safetensors",))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    enc = build_encoder("clip-vit-b16-tiny", weights="hf:someone/clip-copy@v2")
    assert [c[1:3] for c in calls] == [
        ("config.json", "v2"), ("model.safetensors", "v2"), ("pytorch_model.bin", "v2")
    ]  # fmt: skip
    assert enc.weight_source == "hf:someone/clip-copy@v2"

    # BiomedCLIP: only its open_clip checkpoint file is fetched
    torch.save(timm_trunk_state(10), remote / "open_clip_pytorch_model.bin")
    calls.clear()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _fake_hub_download(remote, calls))
    build_encoder("biomedclip-vit-b16-tiny")
    assert calls == [(BIOMED_REPO, "open_clip_pytorch_model.bin", "main", str(cache))]


def test_offline_variables_stop_the_fetch_and_failures_are_one_line(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _fake_hub_download(tmp_path, calls))
    for var, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "YES")):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv(var, value)
        with pytest.raises(EncoderWeightsError, match=f"{var}={value}"):
            build_encoder("clip-vit-b16-tiny")
        monkeypatch.delenv(var)
    assert calls == []

    def unreachable(*args, **kwargs):
        raise OSError("network unreachable\n(details on a second line)")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(EncoderWeightsError, match="download failed") as err:
        build_encoder("dinov2-vit-b14")
    msg = one_line(err)
    assert "OSError: network unreachable (details" in msg
    assert "`hf download facebook/dinov2-base config.json model.safetensors`" in msg
    # allow_random falls back to random weights, with the reason in the log
    enc = build_encoder("rad-dino-vit-b14-tiny", allow_random=True)
    assert enc.weight_source == "random-init"


def test_random_init_only_when_asked():
    with pytest.raises(ConfigError, match="allow_random"):
        build_encoder("clip-vit-b16-tiny", weights=None)
    for enc in (
        build_encoder("clip-vit-b16-tiny", weights=None, allow_random=True),
        build_encoder("dinov2-vit-b14-tiny", weights="random"),
        build_encoder("biomedclip-vit-b16-tiny", allow_random=True),  # empty cache: fallback
    ):
        assert enc.weight_source == "random-init" and enc.pretrained is False
        assert enc.info()["pretrained"] is False
    with pytest.raises(EncoderWeightsError):  # an explicit path never falls back
        build_encoder("clip-vit-b16-tiny", weights="/no/such/dir", allow_random=True)


# ----------------------------------------------------------------------------- frozen


@pytest.mark.parametrize("name", [f"{n}-tiny" for n in ENCODERS])
def test_frozen_but_differentiable_to_the_input(name):
    enc = build_encoder(name, weights="random")
    assert all(not p.requires_grad for p in enc.parameters())
    parent = nn.ModuleDict({"a": nn.Linear(2, 2), "enc": enc})
    parent.train()
    assert not enc.training and all(not m.training for m in enc.modules())
    enc.train(True)
    assert not enc.training
    s = enc.image_size
    x = torch.randn(2, 3, s, s, requires_grad=True)
    feats = enc(x)
    assert len(feats) == enc.num_layers and feats[0].shape == (2, math.prod(enc.grid), D)
    sum(f.sum() for f in feats).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


def test_shared_instance_counts_once():
    enc = build_encoder("clip-vit-b16-tiny", weights="random")
    a, b = nn.Sequential(enc, nn.Identity()), nn.Sequential(enc)
    both = nn.ModuleList([a, b, nn.Linear(3, 4)])
    assert count_parameters(both) == count_parameters(enc) + 16
    assert count_parameters(both, trainable_only=True) == 16


# ----------------------------------------------------------------------------- preprocess


def test_prepare_images_shapes_and_normalisation():
    enc = build_encoder("clip-vit-b16-tiny", weights="random")
    img = torch.randn(2, 40, 30, dtype=torch.complex64)
    pixels, scale = prepare_images(img, enc)
    assert pixels.shape == (2, 3, 32, 32) and scale.shape == (2,)
    # a constant image scales to 1 everywhere -> (1 - mean) / std per channel
    const = torch.full((2, 1, 24, 24), 3.0)
    pixels, scale = prepare_images(const, enc)
    torch.testing.assert_close(scale, torch.full((2,), 3.0))
    want = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(pixels, want.view(1, 3, 1, 1).expand(2, 3, 32, 32))
    pixels, _ = prepare_images(const, enc, stats="encoder")  # CLIP's own stats
    want = (1 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    torch.testing.assert_close(pixels, want.view(1, 3, 1, 1).expand(2, 3, 32, 32))
    # zero image: no division by zero
    pixels, scale = prepare_images(torch.zeros(1, 16, 16), enc)
    assert torch.isfinite(pixels).all() and scale.item() == 1.0


def test_percentile_scaling():
    mag = torch.arange(1, 201, dtype=torch.float32).view(1, 10, 20)
    x, scale = percentile_scale(mag, 99.5)
    torch.testing.assert_close(scale, torch.quantile(mag.flatten(1), 0.995, dim=1))
    assert x.max() == 1.0 and (x == 1.0).sum() == 1 and x.min() > 0
    _, smax = percentile_scale(mag, None)
    assert smax.item() == 200.0


def test_upper_quantile_is_torch_quantile_bit_for_bit():
    """The top-k percentile equals torch.quantile's (linear) exactly: sizes from 1
    pixel up (odd, even, 218 x 180), distinct values, ties, all-zero and mostly
    zero rows, B = 4, percentiles at and between the ranks, a NaN row."""
    g = torch.Generator().manual_seed(0)
    for n in [*range(1, 70), 199, 200, 201, 1000, 4097, 218 * 180]:
        rows = torch.stack(
            [
                torch.rand(n, generator=g),
                torch.randint(0, 3, (n,), generator=g).float(),  # ties
                torch.zeros(n),
                torch.rand(n, generator=g) * (torch.rand(n, generator=g) > 0.9),  # background
            ]
        )
        drawn = torch.rand(4, generator=g, dtype=torch.float64).tolist()  # ranks' rounding
        for q in (0.995, 0.5, 0.9, 0.999, 1e-7, 0.0, 1.0, *drawn):
            assert torch.equal(upper_quantile(rows, q), torch.quantile(rows, q, dim=1)), (n, q)
    rows = torch.rand(3, 300, generator=g)
    rows[1, 7] = float("nan")
    torch.testing.assert_close(
        upper_quantile(rows, 0.995), torch.quantile(rows, 0.995, dim=1), equal_nan=True
    )


def test_percentile_scale_compiles_without_graph_breaks():
    """The top-k rank is computed on Python numbers: a tensor-to-number call
    (``int(tensor)``) would split every FM model's compiled graph here."""
    explained = torch._dynamo.explain(percentile_scale)(torch.rand(2, 21, 17), 99.5)
    assert explained.graph_break_count == 0, explained.break_reasons


def _percentile_scale_by_sorting(mag, percentile):
    """percentile_scale as first written, on torch.quantile (a full sort)."""
    flat = mag.detach().flatten(1)
    amax = flat.amax(dim=1)
    scale = amax
    if percentile is not None and percentile < 100:
        scale = torch.quantile(flat.float(), percentile / 100.0, dim=1).to(flat.dtype)
        scale = torch.where(scale > 0, scale, amax)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (mag / scale.view(-1, 1, 1)).clamp(0.0, 1.0), scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_percentile_scale_equals_the_sorting_version_and_its_gradient(dtype):
    """Same scaled images, scales and gradients as the torch.quantile version,
    per image of a batch holding a zero image, a tiny one and a sparse one; the
    scale is detached (a constant for autograd)."""
    g = torch.Generator().manual_seed(1)
    for h, w in ((1, 1), (3, 2), (17, 16), (218, 180)):
        mag = torch.rand(4, h, w, generator=g, dtype=dtype) * 5
        mag[1] = 0  # percentile and max 0: scale 1
        mag[2] *= torch.rand(h, w, generator=g, dtype=dtype) > 0.995  # percentile 0: the max
        mag[3] = mag[3].round()  # ties
        for percentile in (99.5, 50.0, 100.0, None):
            a = mag.clone().requires_grad_()
            b = mag.clone().requires_grad_()
            xa, sa = _percentile_scale_by_sorting(a, percentile)
            xb, sb = percentile_scale(b, percentile)
            assert torch.equal(xa, xb) and torch.equal(sa, sb) and sb.grad_fn is None
            weights = torch.rand(xa.shape, generator=g, dtype=dtype)
            (xa * weights).sum().backward()
            (xb * weights).sum().backward()
            assert torch.equal(a.grad, b.grad), (h, w, percentile)


def test_prepare_images_gradient_reaches_the_image():
    enc = build_encoder("dinov2-vit-b14-tiny", weights="random")
    img = torch.randn(2, 48, 40, dtype=torch.complex64, requires_grad=True)
    pixels, _ = prepare_images(img, enc)
    assert pixels.shape == (2, 3, 56, 56)
    sum(f.square().mean() for f in enc(pixels)).backward()
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- full size (meta)


def _meta(cls, cfg, **kw):
    with torch.device("meta"):
        return cls(cfg, **kw)


def test_full_size_parameter_counts_match_reference():
    """The encoders' sizes as usually quoted (CLIP ViT-B/16 86.19M, DINOv2
    ViT-B/14 86.58M, BiomedCLIP ViT-B/16 85.80M; the FM-VarNet's frozen part,
    the first 6 blocks, 43.27M), built on the meta device. What they count:
    CLIP 86.19M = CLIPVisionModelWithProjection (embeddings + pre-LN + 12 blocks
    + post-LN + the 768->512 visual projection; without the projection 85.80M);
    DINOv2 86.58M = Dinov2Model (incl. mask token and final LN); BiomedCLIP
    85.80M = timm trunk = ViTModel without pooler (incl. final norm); "first 6
    blocks alone" 43.27M = patch/CLS/position embeddings (+ CLIP's pre-LN) + 6
    blocks of a ViT-B/16 (the 6 blocks by themselves are 42.53M)."""
    clip_cfg = make_config(ENCODERS["clip-vit-b16"])
    dino_cfg = make_config(ENCODERS["dinov2-vit-b14"])
    vit_cfg = make_config(ENCODERS["biomedclip-vit-b16"])

    def m(n):
        return round(n / 1e6, 2)

    clip_proj = count_parameters(_meta(transformers.CLIPVisionModelWithProjection, clip_cfg))
    clip_tower = count_parameters(_meta(transformers.CLIPVisionModel, clip_cfg))
    dino = count_parameters(_meta(transformers.Dinov2Model, dino_cfg))
    trunk = count_parameters(_meta(transformers.ViTModel, vit_cfg, add_pooling_layer=False))
    assert abs(clip_proj - 86.19e6) < 0.01e6 and m(clip_proj) == 86.19
    assert m(clip_tower) == 85.80 and clip_proj - clip_tower == 768 * 512
    assert abs(dino - 86.58e6) < 0.01e6
    assert abs(trunk - 85.80e6) < 0.01e6

    paper = ("clip-vit-b16", "dinov2-vit-b14", "biomedclip-vit-b16")
    with torch.device("meta"):
        enc = {n: build_encoder(n, weights="random") for n in paper}
        enc6 = {n: build_encoder(n, num_layers=6, weights="random") for n in paper}
        tokens = {n: e(torch.empty(1, 3, 224, 224))[-1].shape for n, e in enc6.items()}
    ln = 2 * 768
    # our encoders keep what runs: no post/final LN, no DINOv2 mask token
    assert count_parameters(enc["clip-vit-b16"]) == clip_tower - ln
    assert count_parameters(enc["dinov2-vit-b14"]) == dino - ln - 768
    assert count_parameters(enc["biomedclip-vit-b16"]) == trunk - ln
    block = count_parameters(enc["biomedclip-vit-b16"].blocks[0])
    assert block == 7_087_872 and m(6 * block) == 42.53
    assert abs(count_parameters(enc6["clip-vit-b16"]) - 43.27e6) < 0.01e6
    assert abs(count_parameters(enc6["biomedclip-vit-b16"]) - 43.27e6) < 0.01e6
    # DINOv2 at 224 px: 518-px position embeddings interpolated to 16x16 = 256 tokens
    assert tokens["dinov2-vit-b14"] == (1, 256, 768)
    assert tokens["clip-vit-b16"] == tokens["biomedclip-vit-b16"] == (1, 196, 768)


def test_full_size_newer_encoders_on_meta():
    """SigLIP B/16 vision tower 92.88M with its attention-pooling head (85.80M
    without head and post-LN: what runs); RAD-DINO = DINOv2-base, 86.58M; DINOv3
    ViT-B/16 85.66M (the "86M" of its release; blocks carry two layer scales
    and no key bias: 7,088,640 each). Token grids at each encoder's own size:
    14x14, 37x37 (518 px), 14x14 (CLS + 4 registers dropped)."""
    cls = {
        "siglip-vit-b16": transformers.SiglipVisionModel,
        "rad-dino-vit-b14": transformers.Dinov2Model,
        "dinov3-vit-b16": transformers.DINOv3ViTModel,
    }
    full = {n: count_parameters(_meta(cls[n], make_config(ENCODERS[n]))) for n in NEW}
    assert full == {
        "siglip-vit-b16": 92_884_224,
        "rad-dino-vit-b14": 86_580_480,
        "dinov3-vit-b16": 85_660_416,
    }
    with torch.device("meta"):
        enc = {n: build_encoder(n, weights="random") for n in NEW}
    # the token grid from a real (1-block, CPU) forward: DINOv3's RoPE refuses the
    # meta device in transformers 4.5x (autocast)
    one = {n: build_encoder(n, num_layers=1, weights="random") for n in NEW}
    with torch.no_grad():
        tokens = {
            n: e(torch.zeros(1, 3, e.image_size, e.image_size))[0].shape for n, e in one.items()
        }
    ln = 2 * 768
    assert count_parameters(enc["siglip-vit-b16"]) == 85_795_584  # no head, no post-LN
    assert count_parameters(enc["rad-dino-vit-b14"]) == full["rad-dino-vit-b14"] - ln - 768
    assert count_parameters(enc["dinov3-vit-b16"]) == full["dinov3-vit-b16"] - ln - 768
    assert count_parameters(enc["dinov3-vit-b16"].blocks[0]) == 7_088_640
    assert tokens == {
        "siglip-vit-b16": (1, 196, 768),
        "rad-dino-vit-b14": (1, 37 * 37, 768),
        "dinov3-vit-b16": (1, 196, 768),
    }


@pytest.mark.parametrize("name", ["clip-vit-b16-tiny", "dinov2-vit-b14-tiny"])
def test_bf16_autocast_casts_the_frozen_weights_once(name):
    """Under bf16 autocast the blocks run on one cached bf16 copy of their
    Linear weights: the same features as casting at every call (the default
    autocast path), the copy reused across calls, rebuilt when weights change,
    dropped outside autocast, and gradients still reach the input."""
    torch.manual_seed(0)
    enc = build_encoder(name, weights="random")
    s = enc.image_size
    x = torch.randn(2, 3, s, s)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        enc.cast_weights_once = False
        want = enc(x)
        assert enc._low_cache is None
        enc.cast_weights_once = True
        got = enc(x)
        first = enc._low_cache[1]
        enc(x)
        assert enc._low_cache[1] is first  # reused, not recast
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert first[0]["mlp.fc1.weight"].dtype == torch.bfloat16
    # new weights (in place, as load_state_dict does): the copy follows
    with torch.no_grad():
        enc.blocks[0].mlp.fc1.weight.mul_(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = enc(x)
        assert enc._low_cache[1] is not first
        enc.cast_weights_once = False
        want = enc(x)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    enc.cast_weights_once = True
    enc(x)  # full precision: no copy kept
    assert enc._low_cache is None
    xg = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = enc(xg)
    sum(f.float().sum() for f in feats).backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


def _tiny_fm_varnet(num_cascades: int):
    """A tiny-encoder CLIP FM-VarNet (seed 0) with a 2-coil 24 x 20 input, every
    second line sampled: (model, masked-to-be k-space, mask)."""
    from fmrecon.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(
        "fm-varnet-clip", num_cascades=num_cascades, sens_chans=4, sens_pools=2,
        chans=(16, 16, 8, 8, 8), encoder_weights="random", allow_random_encoder=True,
        encoder_config=TINY_OVERRIDES["clip"],
    )  # fmt: skip
    k = torch.randn(1, 2, 24, 20, dtype=torch.complex64)
    mask = torch.zeros(1, 1, 24, 20, dtype=torch.bool)
    mask[..., ::2] = True
    return model, k, mask


def test_bf16_cascades_keep_one_copy_of_the_encoder_for_backward():
    """A 3-cascade FM-VarNet in bf16 autocast: with the weights cast once, the
    tensors saved for backward hold one bf16 copy of the encoder's Linear
    weights instead of one per cascade."""
    model, k, mask = _tiny_fm_varnet(num_cascades=3)
    enc = model.encoder
    shapes = {
        tuple(m.weight.shape) for b in enc.blocks for m in b.modules() if isinstance(m, nn.Linear)
    }

    def saved_weight_copies(once: bool) -> int:
        enc.cast_weights_once = once
        seen: dict[int, torch.Tensor] = {}

        def pack(t):
            if t.dtype == torch.bfloat16 and tuple(t.shape) in shapes and t.ndim == 2:
                seen[t.untyped_storage().data_ptr()] = t
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(k * mask, mask)
        return len(seen)

    per_call, once = saved_weight_copies(False), saved_weight_copies(True)
    n_linear = sum(isinstance(m, nn.Linear) for b in enc.blocks for m in b.modules())
    assert once == n_linear and per_call == 3 * n_linear


def test_bf16_inference_then_training_recasts_outside_inference_mode():
    """bf16 inference under ``torch.inference_mode`` and then a bf16 training step
    in the same process (evaluate then fine-tune, ``validate`` before ``fit``, the
    benchmark's inference-then-training rows): the copy made in inference mode is
    an inference tensor that autograd cannot save, so training must not reuse it.
    Both modes still cast once per model, not once per cascade."""
    model, k, mask = _tiny_fm_varnet(num_cascades=2)
    enc = model.encoder
    copies: list[int] = []  # id of the copy each cascade's encoder call ran on
    real = enc.low_precision_weights

    def spy(device):
        low = real(device)
        copies.append(id(low))
        return low

    enc.low_precision_weights = spy
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(k * mask, mask)
    assert len(copies) == 2 and copies[0] == copies[1]  # one copy for both cascades
    assert torch.is_inference(enc._low_cache[1][0]["mlp.fc1.weight"])
    copies.clear()
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(k * mask, mask)
    out.abs().mean().backward()  # crashed: "Inference tensors cannot be saved for backward"
    assert len(copies) == 2 and copies[0] == copies[1]
    train_copy = enc._low_cache[1]
    assert not torch.is_inference(train_copy[0]["mlp.fc1.weight"])
    assert any(p.grad is not None for p in model.parameters() if p.requires_grad)
    # an ordinary copy serves inference mode too: no recast going back
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(k * mask, mask)
    assert enc._low_cache[1] is train_copy


def test_models_of_the_newer_encoders_use_their_own_statistics():
    """fm-varnet-* / fm-unetr-* of the newer encoders normalise with the encoder's
    own mean/std (the papers' models keep ImageNet's), run the encoder at its own
    size and reshape only the patch tokens into the grid (SigLIP: all tokens;
    DINOv3: CLS + 4 registers dropped)."""
    from fmrecon.models.registry import MODELS, create_model

    for name in ("fm-varnet-clip", "fm-unetr-dinov2"):
        assert "stats" not in MODELS[name].defaults and MODELS[name].paper_trainable
    tiny = dict(encoder_weights="random", allow_random_encoder=True)
    k = torch.randn(1, 2, 24, 20, dtype=torch.complex64)
    mask = torch.zeros(1, 1, 24, 20, dtype=torch.bool)
    mask[..., ::2] = True
    for key, enc_name in zip(("siglip", "rad-dino", "dinov3"), NEW, strict=True):
        spec = ENCODERS[enc_name]
        cfg = TINY_OVERRIDES[spec.family] if spec.tiny is None else spec.tiny
        unetr = create_model(
            f"fm-unetr-{key}", feature_layers=(2, 3, 4, 6), feature_size=4,
            encoder_config=cfg, **tiny,
        )  # fmt: skip
        varnet = create_model(
            f"fm-varnet-{key}", num_cascades=1, sens_chans=4, sens_pools=2,
            chans=(16, 16, 8, 8, 8), encoder_config=cfg, **tiny,
        )  # fmt: skip
        assert MODELS[f"fm-unetr-{key}"].paper_trainable is None
        assert unetr.stats == varnet.cascades[0].model.stats == "encoder"
        assert unetr.encoder.num_prefix_tokens == spec.num_prefix_tokens
        gh, gw = unetr.encoder.grid
        assert unetr.positions.shape == (1, gh * gw, D)
        with torch.no_grad():
            assert unetr(k, mask).shape == varnet(k, mask).shape == (1, 24, 20)
        pixels, _ = prepare_images(torch.ones(1, 24, 20), unetr.encoder, stats=unetr.stats)
        want = (1 - torch.tensor(spec.mean)) / torch.tensor(spec.std)
        torch.testing.assert_close(pixels[0, :, 0, 0], want)


def test_magnitude_on_the_real_view_equals_complex_abs(monkeypatch):
    """Under torch.compile the magnitude is taken on the real view (inductor has no
    code for the complex abs's backward): the same values and gradients as the complex
    abs eager uses, 0 gradient at 0 included."""
    from fmrecon.encoders import preprocess

    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 4, dtype=torch.complex64, generator=g)
    z[0, 0, 0] = 0
    w = torch.randn(2, 5, 4, generator=g)
    out = []
    for native in (True, False):
        monkeypatch.setattr(preprocess, "native_complex", lambda n=native: n)
        x = z.clone().requires_grad_(True)
        mag = preprocess.magnitude(x)
        (mag * w).sum().backward()
        out.append((mag.detach(), x.grad))
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(out[1][0], out[0][0], rtol=2 * eps, atol=0)  # hypot vs sqrt
    torch.testing.assert_close(out[1][1], out[0][1], rtol=4 * eps, atol=0)
    assert out[1][1][0, 0, 0] == 0
