"""Fine-tuning the foundation-model encoder (LoRA through peft, the last blocks
unfrozen): trainable counts by hand, targets per family, outputs at
initialisation, gradients, the one shared encoder, lean checkpoints through
the users' save/load paths, the feature cache's refusal, the configs and the
training smoke benchmark."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch import nn

from fmrecon.cli import main
from fmrecon.encoders import TINY_OVERRIDES, build_encoder
from fmrecon.encoders.adapters import DEFAULT_TARGETS, adapt_encoder, base_digest, resolve_targets
from fmrecon.errors import ConfigError
from fmrecon.models.feature_cache import FeatureCache, attach_feature_cache
from fmrecon.models.fm_unetr import FMUNETR
from fmrecon.models.io import ENCODER_REFERENCE, load_model, read_checkpoint, save_model
from fmrecon.models.registry import create_model, describe, get_spec, model_options
from fmrecon.training.config import load_config
from fmrecon.utils import count_parameters, state_digest

ROOT = Path(__file__).resolve().parents[1]
D, M = 32, 64  # tiny encoders: hidden 32, MLP 64, 6 blocks
SMALL = {
    "fm-varnet": {"num_cascades": 2, "chans": [16, 16, 8, 8, 8], "sens_chans": 4, "sens_pools": 2},
    "fm-unetr": {"feature_layers": [2, 3, 4, 6], "feature_size": 4},
}
FAMILY_ENCODERS = [
    "clip-vit-b16-tiny",
    "dinov2-vit-b14-tiny",
    "biomedclip-vit-b16-tiny",
    "siglip-vit-b16-tiny",
    "rad-dino-vit-b14-tiny",
    "dinov3-vit-b16-tiny",
]


def _tiny(name: str, seed: int = 0, **options):
    """A registered FM model with a tiny random encoder (6 blocks used) and a small decoder."""
    torch.manual_seed(seed)
    spec = get_spec(name)
    return create_model(
        name,
        encoder_weights="random",
        allow_random_encoder=True,
        encoder_config=TINY_OVERRIDES[_family(name)],
        **{**SMALL[spec.family], **options},
    )


def _family(name: str) -> str:
    from fmrecon.encoders.registry import get_spec as encoder_spec

    return encoder_spec(get_spec(name).encoder)[0].family


def _inputs(h=40, w=32, coils=3):
    g = torch.Generator().manual_seed(3)
    k = torch.randn(1, coils, h, w, dtype=torch.complex64, generator=g)
    mask = torch.zeros(1, 1, h, w, dtype=torch.bool)
    mask[..., ::2] = True
    mask[..., w // 2 - 3 : w // 2 + 3] = True
    return k * mask, mask


def _block_params(family: str) -> int:
    """Parameters of one tiny block, by hand: q/k/v/out projections with bias,
    the MLP (d -> m -> d, biases), two LayerNorms; DINOv2's two layer scales."""
    n = 4 * (D * D + D) + (D * M + M) + (M * D + D) + 2 * 2 * D
    return n + 2 * D if family == "dinov2" else n


@pytest.mark.parametrize(("name", "family"), [("fm-varnet-clip", "clip"),
                                              ("fm-unetr-dinov2", "dinov2")])  # fmt: skip
def test_trainable_counts_by_hand(name, family):
    """LoRA r on q and v of the 6 blocks used: 6 x 2 x r x (d_in + d_out) once,
    however many cascades call the encoder; the last k blocks unfrozen: k whole
    blocks; both: the blocks plus the adapters."""
    base = count_parameters(_tiny(name), trainable_only=True)
    for r in (1, 4):
        lora = _tiny(name, encoder_lora_rank=r)
        assert count_parameters(lora, trainable_only=True) - base == 6 * 2 * r * (D + D)
        assert count_parameters(lora) - count_parameters(_tiny(name)) == 6 * 2 * r * (D + D)
    for k in (1, 2):
        unfrozen = _tiny(name, encoder_unfreeze_last=k)
        assert count_parameters(unfrozen, trainable_only=True) - base == k * _block_params(family)
    both = _tiny(name, encoder_lora_rank=2, encoder_unfreeze_last=1)
    extra = _block_params(family) + 6 * 2 * 2 * (D + D)
    assert count_parameters(both, trainable_only=True) - base == extra
    # other targets: every projection of the attention (q, k, v, out) and the MLP's first layer
    targets = ["query", "key", "value", "output", "fc1"]
    qkvo = _tiny(name, encoder_lora_rank=2, encoder_lora_targets=targets)
    assert count_parameters(qkvo, trainable_only=True) - base == 6 * 2 * (4 * 2 * D + D + M)


def test_full_size_counts_and_the_models_command(capsys):
    """At full size on the meta device: ViT-B (d = 768, MLP 3072), six blocks in
    FM-VarNet, twelve in FM-UNETR; `fmrecon models --set` shows the same."""
    base = describe("fm-varnet-clip")["trainable_params"]
    assert describe("fm-varnet-clip", encoder_lora_rank=8)["trainable_params"] - base == (
        6 * 2 * 8 * (768 + 768)
    )  # 147,456
    block = 4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768 + 4 * 768
    assert describe("fm-varnet-clip", encoder_unfreeze_last=2)["trainable_params"] - base == (
        2 * block
    )
    argv = ["models", "fm-varnet-clip", "fm-unetr-clip", "--set", "encoder_lora_rank=8", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["trainable_change"] for r in rows] == [147_456, 12 * 2 * 8 * 1536]
    assert rows[0]["options"] == {"encoder_lora_rank": 8}
    assert main(["models", "unet", "--set", "encoder_lora_rank=8"]) == 2
    assert "bad option encoder_lora_rank" in capsys.readouterr().err
    assert main(["models", "fm-unetr-clip", "--set", "encoder_unfreeze_last=13"]) == 2
    err = capsys.readouterr().err
    assert "encoder_unfreeze_last must be an integer in 0..12" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", FAMILY_ENCODERS)
def test_default_targets_and_outputs_at_initialisation(name):
    """Per family the default targets are the attention's query and value
    projections, found in the built module tree; LoRA's B starts at zero, so
    the adapted encoder gives the base encoder's outputs exactly."""
    torch.manual_seed(0)
    plain = build_encoder(name, num_layers=3, weights="random", allow_random=True)
    torch.manual_seed(0)
    enc = build_encoder(name, num_layers=3, weights="random", allow_random=True)
    paths = resolve_targets(enc, DEFAULT_TARGETS)
    assert [p.rsplit(".", 1)[-1] for p in paths] in (["q_proj", "v_proj"], ["query", "value"])
    assert base_digest(enc) == state_digest(enc)  # not adapted: the plain digest
    adapt_encoder(enc, lora_rank=4)
    assert base_digest(enc) == state_digest(plain)  # the base keeps its plain names and hash
    x = torch.randn(2, 3, enc.image_size, enc.image_size)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(plain(x), enc(x), strict=True))
        for n, p in enc.named_parameters():
            if "lora_B" in n:
                p.normal_()
        assert not torch.equal(plain(x)[-1], enc(x)[-1])


def test_targets_resolve_on_older_module_names_and_bad_names_are_one_line():
    """transformers 4.x DINOv2 / ViT blocks call them attention.attention.query
    etc.: the roles resolve there too; a name matching nothing is refused."""
    attn = nn.Module()
    attn.attention = nn.Module()
    for n in ("query", "key", "value"):
        setattr(attn.attention, n, nn.Linear(8, 8))
    attn.output = nn.Module()
    attn.output.dense = nn.Linear(8, 8)
    block = nn.Module()
    block.attention, block.intermediate = attn, nn.Module()
    block.intermediate.dense = nn.Linear(8, 16)
    fake = SimpleNamespace(blocks=[block], family="vit")
    assert resolve_targets(fake, ("query", "value")) == [
        "attention.attention.query",
        "attention.attention.value",
    ]
    assert resolve_targets(fake, ("key", "output")) == [
        "attention.attention.key",
        "attention.output.dense",
    ]
    assert resolve_targets(fake, ("dense",)) == ["attention.output.dense", "intermediate.dense"]
    with pytest.raises(ConfigError, match="'qkv' matches no linear layer of a vit block") as err:
        resolve_targets(fake, ("qkv",))
    assert "\n" not in str(err.value) and "attention.attention.query" in str(err.value)
    for bad in ({"encoder_lora_rank": -1}, {"encoder_lora_rank": 2.5},
                {"encoder_lora_alpha": 0, "encoder_lora_rank": 2}, {"encoder_unfreeze_last": 7},
                {"encoder_lora_targets": "query"}, {"encoder_lora_targets": ["nope"]}):  # fmt: skip
        with pytest.raises(ConfigError, match="encoder_"):
            _tiny("fm-varnet-clip", **bad)


def test_gradients_reach_only_the_adapters_and_the_encoder_is_shared():
    """FM-VarNet: every cascade calls the same encoder object (one set of
    adapters); a backward pass gives gradients to the adapters (LoRA) or the
    last blocks (unfreeze) and nothing else of the encoder, in fp32 and under
    bf16 autocast (the cast-once weight cache must not cut them); the encoder
    stays in eval mode; an optimiser step leaves the frozen tensors unchanged."""
    k, mask = _inputs()
    for options, trained in (
        ({"encoder_lora_rank": 4}, lambda n: ".lora_" in n),
        ({"encoder_unfreeze_last": 2}, lambda n: n.startswith(("blocks.4.", "blocks.5."))),
    ):
        model = _tiny("fm-varnet-clip", zero_init_head=False, **options)
        assert all(c.model.encoder is model.encoder for c in model.cascades)
        model.train()
        assert not model.encoder.training
        before = {n: p.detach().clone() for n, p in model.encoder.named_parameters()}
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        for amp in (False, True):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                out = model(k, mask)
            out.float().square().mean().backward()
            grads = {n for n, p in model.encoder.named_parameters() if p.grad is not None}
            assert grads == {n for n, _ in model.encoder.named_parameters() if trained(n)}
            nonzero = {n for n in grads if "lora_A" not in n}  # A's gradient is B^T (...) = 0
            enc_params = dict(model.encoder.named_parameters())
            assert all(enc_params[n].grad.abs().sum() > 0 for n in nonzero), (options, amp)
            opt.step()
        for n, p in model.encoder.named_parameters():  # B (and A after B moved) or the blocks
            assert torch.equal(p, before[n]) != trained(n), n


def test_checkpointed_cascades_give_the_same_adapter_gradients():
    """checkpoint_cascades (the 24 GB recipe) recomputes the shared encoder in the
    backward pass: the adapters get the same gradients."""
    k, mask = _inputs()
    grads = []
    for ckpt in (False, True):
        model = _tiny("fm-varnet-clip", zero_init_head=False, encoder_lora_rank=4,
                      checkpoint_cascades=ckpt)  # fmt: skip
        model.train()
        model(k, mask).square().mean().backward()
        grads.append({n: p.grad for n, p in model.encoder.named_parameters() if p.grad is not None})
    assert len(grads[0]) == 6 * 2 * 2 and grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


@pytest.mark.parametrize("name", ["fm-unetr-clip", "fm-varnet-dinov2"])
def test_model_outputs_at_initialisation_equal_the_plain_model(name):
    """With the decoder's head not zeroed, the LoRA model built from the same
    seed returns the plain model's output exactly (the adapters are drawn after
    the decoder, B is zero), and the unfrozen one too; a moved B changes it."""
    k, mask = _inputs()
    with torch.no_grad():
        ref = _tiny(name, zero_init_head=False)(k, mask)
        assert ref.abs().max() > 0
        lora = _tiny(name, zero_init_head=False, encoder_lora_rank=4)
        assert torch.equal(lora(k, mask), ref)
        assert torch.equal(_tiny(name, zero_init_head=False, encoder_unfreeze_last=2)(k, mask), ref)
        for n, p in lora.encoder.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.1)
        assert not torch.equal(lora(k, mask), ref)


def test_an_adapted_encoder_is_adapted_once():
    """A second model on the same encoder: the same settings share it, others are refused."""
    enc = build_encoder("clip-vit-b16-tiny", weights="random", allow_random=True)
    opts = dict(SMALL["fm-unetr"], encoder_lora_rank=4)
    first = FMUNETR(enc, **opts)
    second = FMUNETR(enc, **opts)  # already adapted with these settings: nothing changes
    assert first.encoder is second.encoder and enc.adaptation["lora_rank"] == 4
    assert count_parameters(enc, trainable_only=True) == 6 * 2 * 4 * (D + D)
    with pytest.raises(ConfigError, match="already adapted"):
        FMUNETR(enc, **dict(opts, encoder_lora_rank=8))
    with pytest.raises(ConfigError, match="already adapted"):
        FMUNETR(enc, **SMALL["fm-unetr"])


def _tiny_clip_dir(path: Path, seed: int = 0, edit=None) -> Path:
    """A tiny CLIP vision model in the Hugging Face directory format."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    cfg = {k: v for k, v in TINY_OVERRIDES["clip"].items() if k != "input_size"}
    model = CLIPVisionModel(CLIPVisionConfig(**cfg))
    if edit is not None:
        with torch.no_grad():
            edit(model)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def cine(tmp_path_factory) -> Path:
    from fmrecon.data.simulate import simulate_cmrxrecon

    root = tmp_path_factory.mktemp("cine")
    simulate_cmrxrecon(root, 4, seed=1, size=(48, 40), n_slices=1, n_frames=2, n_coils=3, lax=False)
    return root


def test_lean_training_checkpoint_stores_the_adapter(tmp_path, cine):
    """`fmrecon train` with LoRA and model.checkpoint_encoder=reference: the
    checkpoint holds the trained adapters and no base encoder tensor, the
    reference hash is the plain encoder's; resuming works; load_model gives the
    same outputs as a self-contained copy; other base weights are refused."""
    clip = _tiny_clip_dir(tmp_path / "clip")
    cfg = {
        "output_dir": str(tmp_path / "runs"),
        "model": {
            "name": "fm-unetr-clip",
            "options": {**SMALL["fm-unetr"], "encoder_lora_rank": 4},
            "encoder_weights": str(clip),
            "encoder_config": TINY_OVERRIDES["clip"],
            "checkpoint_encoder": "reference",
        },
        "data": {"root": str(cine), "num_workers": 0},
        "optim": {"lr": 0.01},
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False,
                    "limit_train_batches": 2, "limit_val_batches": 1},
    }  # fmt: skip
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path)]) == 0
    # resume into a second epoch: the run's base encoder fills the gap, the adapters come back
    assert main(["train", "--config", str(path), "--resume", "trainer.max_epochs=2"]) == 0
    summary = json.loads((tmp_path / "runs/lora/train_summary.json").read_text())
    assert summary["epochs"] == 2
    ckpt_path = tmp_path / "runs/lora/checkpoints/last.ckpt"
    ckpt = read_checkpoint(ckpt_path)
    state = ckpt["state_dict"]
    enc_keys = [k for k in state if k.startswith("model.encoder.")]
    assert enc_keys and all(".lora_" in k for k in enc_keys)
    assert len(enc_keys) == 6 * 2 * 2  # A and B of q and v in six blocks
    plain = build_encoder("clip-vit-b16-tiny", weights=str(clip))
    assert ckpt["fmrecon"][ENCODER_REFERENCE]["sha256"] == state_digest(plain)
    trained_b = [state[k] for k in enc_keys if "lora_B" in k]
    assert any(t.abs().sum() > 0 for t in trained_b)  # the adapters learned

    lean = load_model(ckpt_path)
    got = dict(lean.state_dict())
    assert all(torch.equal(got[k[len("model.") :]], state[k]) for k in enc_keys)
    full = save_model(lean, tmp_path / "full.ckpt")
    k, mask = _inputs(48, 40)
    with torch.no_grad():
        assert torch.equal(lean(k, mask), load_model(full)(k, mask))
    lean_file = save_model(lean, tmp_path / "lean.ckpt", encoder="reference")
    assert lean_file.stat().st_size < 0.8 * full.stat().st_size
    _tiny_clip_dir(clip, seed=1)
    with pytest.raises(ConfigError, match="not the ones it was trained with"):
        load_model(ckpt_path)


def test_lean_checkpoint_of_unfrozen_blocks(tmp_path):
    """save_model(encoder="reference") with the last 2 blocks unfrozen: those
    blocks are stored, the first 4 referenced; base weights differing only in
    the stored blocks still load (the stored ones are used), differing in a
    referenced block are refused."""
    clip = _tiny_clip_dir(tmp_path / "clip")
    torch.manual_seed(0)
    opts = {**SMALL["fm-unetr"], "encoder_unfreeze_last": 2, "encoder_lora_rank": 2}
    model = create_model("fm-unetr-clip", encoder_weights=str(clip),
                         encoder_config=TINY_OVERRIDES["clip"], **opts)  # fmt: skip
    with torch.no_grad():  # "trained": the unfrozen blocks and the adapters move
        for p in model.encoder.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    path = save_model(model, tmp_path / "lean.ckpt", encoder="reference")
    keys = [k for k in read_checkpoint(path)["state_dict"] if k.startswith("model.encoder.")]
    assert {k.split(".")[3] for k in keys if ".lora_" not in k} == {"4", "5"}
    assert sum(".lora_" in k for k in keys) == 6 * 2 * 2
    k, mask = _inputs()
    with torch.no_grad():
        ref = model(k, mask)
        assert torch.equal(load_model(path)(k, mask), ref)

    def edit_layer(i):
        from fmrecon.encoders.frozen import transformer_blocks

        return lambda m: transformer_blocks(m, "clip")[i].mlp.fc1.weight.add_(1.0)

    _tiny_clip_dir(clip, edit=edit_layer(5))  # a stored block differs at the source
    with torch.no_grad():
        assert torch.equal(load_model(path)(k, mask), ref)
    _tiny_clip_dir(clip, edit=edit_layer(1))  # a referenced block differs
    with pytest.raises(ConfigError, match="not the ones it was trained with"):
        load_model(path)


def test_feature_cache_refuses_a_fine_tuned_encoder(tmp_path):
    lora = _tiny("fm-unetr-clip", encoder_lora_rank=2)
    with pytest.raises(ConfigError, match="fine-tuned encoder") as err:
        attach_feature_cache(lora, tmp_path / "fc", fixed_masks=True)
    assert "\n" not in str(err.value)
    plain = _tiny("fm-unetr-clip")
    attach_feature_cache(plain, tmp_path / "fc", fixed_masks=True)  # the frozen one is fine
    # a cache set by hand on a fine-tuned model is bypassed, never read
    lora.feature_cache = cache = FeatureCache(tmp_path / "fc2")
    k, mask = _inputs()
    with torch.no_grad():
        lora(k, mask)
    assert cache.stats["hits"] == cache.stats["misses"] == 0


def _header_counts(path: Path) -> tuple[int, int]:
    m = re.search(r"Trainable parameters: ([\d,]+) -> ([\d,]+)", path.read_text())
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def test_finetune_configs_cover_both_papers_all_encoders_and_accelerations():
    """18 configs beside the paper ones: each is its paper config plus the LoRA
    options (and lean checkpoints); the counts their headers state are the
    models' own; the training smoke benchmark globs them by default."""
    from fmrecon_bench.train_smoke import DEFAULT_CONFIGS

    files = sorted((ROOT / "configs/finetune").glob("*/*.yaml"))
    assert len(files) == 18
    counted = {}
    for f in files:
        paper = f.parent.name
        stem = f.stem.replace("-lora", "")
        base = load_config(ROOT / "configs/paper" / paper / f"{stem}.yaml", require_data=False)
        cfg = load_config(f, require_data=False)
        opts = dict(cfg["model"]["options"])
        assert opts.pop("encoder_lora_rank") == 8 and opts.pop("encoder_unfreeze_last") == 0
        assert opts.pop("encoder_lora_targets") == ["query", "value"]
        assert opts.pop("encoder_lora_alpha") == 8
        assert opts == base["model"]["options"] and cfg["model"]["name"] == base["model"]["name"]
        assert cfg["data"] == base["data"] and cfg["optim"] == base["optim"]
        assert cfg["model"]["checkpoint_encoder"] == "reference"
        name = cfg["model"]["name"]
        assert set(cfg["model"]["options"]) <= set(model_options(get_spec(name).family))
        if name not in counted:
            counted[name] = (
                describe(name, **base["model"]["options"])["trainable_params"],
                describe(name, **cfg["model"]["options"])["trainable_params"],
            )
        assert _header_counts(f) == counted[name], f.name
    globbed = {Path(p).resolve() for g in DEFAULT_CONFIGS for p in ROOT.glob(g)}
    assert set(files) <= globbed


def _smoke_row(tmp_path, config: str, family: str) -> dict:
    """One FM-UNETR config through the smoke benchmark, tiny encoder of
    ``family`` and tiny decoder (by --set), two steps: its row; the exit code
    says whether the loss fell."""
    from fmrecon_bench import train_smoke

    out = tmp_path / "smoke.json"
    tiny = json.dumps(TINY_OVERRIDES[family])
    argv = ["--configs", config, "--steps", "2",
            "--size", "40", "32", "--subjects", "3", "--json", str(out), "--set",
            f"model.encoder_config={tiny}", "model.options.feature_layers=[2,3,4,6]",
            "model.options.feature_size=4", "data.batch_size=2"]  # fmt: skip
    code = train_smoke.main(argv)
    (row,) = json.loads(out.read_text())
    assert code == (0 if row["falls"] else 1)
    return row


def test_train_smoke_runs_a_lora_config(tmp_path):
    """A LoRA config through the smoke benchmark (tiny encoder and decoder by
    --set, two steps): its row counts the adapters and says how the encoder is tuned."""
    row = _smoke_row(tmp_path, "configs/finetune/midl2025/fm-unetr-clip-lora-x4.yaml", "clip")
    plain = count_parameters(_tiny("fm-unetr-clip"), trainable_only=True)
    assert row["trainable_params"] == plain + 6 * 2 * 8 * (D + D)
    assert row["encoder_tuning"] == "LoRA r8 alpha 8 on self_attn.q_proj, self_attn.v_proj"
    assert row["finite"] and row["steps"] == 2 and row["batch_size"] == 2


def test_train_smoke_covers_the_newer_encoders(tmp_path):
    """configs/beyond (SigLIP, RAD-DINO, DINOv3 in both architectures) are in the
    smoke benchmark's default set, and one runs through it (tiny SigLIP, two steps)."""
    from fmrecon_bench.train_smoke import DEFAULT_CONFIGS

    files = sorted((ROOT / "configs/beyond").glob("*/*.yaml"))
    assert len(files) == 18
    globbed = {Path(p).resolve() for g in DEFAULT_CONFIGS for p in ROOT.glob(g)}
    assert set(files) <= globbed
    row = _smoke_row(tmp_path, "configs/beyond/midl2025/fm-unetr-siglip-x4.yaml", "siglip")
    assert row["finite"] and row["steps"] == 2 and row["config"].endswith("fm-unetr-siglip-x4.yaml")
