"""BiomedCLIP's open_clip checkpoint as a transformers ViTModel: the image
trunk of ``open_clip_pytorch_model.bin`` (a timm ViT-B/16 under
``visual.trunk.*``) is renamed, its fused q/k/v split, and loaded into the
ViTModel of the running transformers release (whose parameter names changed
in transformers 5.x: :func:`vit_layout`)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from fmrecon.encoders.hub import EncoderWeightsError

# transformers ViTLayer parameter names (per block) for timm's q, k, v, attn.proj,
# mlp.fc1, mlp.fc2: after the 5.x attention refactor, and before it
VIT_NAMES_NEW = {
    "q": "attention.q_proj",
    "k": "attention.k_proj",
    "v": "attention.v_proj",
    "proj": "attention.o_proj",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
}
VIT_NAMES_OLD = {
    "q": "attention.attention.query",
    "k": "attention.attention.key",
    "v": "attention.attention.value",
    "proj": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}


def vit_layout(model: torch.nn.Module) -> tuple[str, dict[str, str]]:
    """(block prefix, per-block names) of a transformers ViTModel."""
    if hasattr(model, "layers"):
        return "layers.", VIT_NAMES_NEW
    return "encoder.layer.", VIT_NAMES_OLD


def _brief(keys, n: int = 4) -> str:
    keys = sorted(keys)
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """A checkpoint file as a flat state dict (safetensors or torch pickle, loaded
    with ``weights_only``; a training checkpoint's ``state_dict`` and DDP
    ``module.`` prefixes are unwrapped)."""
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            try:
                state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) pickles cannot be memory-mapped
                state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise EncoderWeightsError(f"cannot read checkpoint {file}: {err}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EncoderWeightsError(f"{file} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def timm_vit_to_hf(
    state: dict[str, torch.Tensor],
    num_layers: int,
    block_prefix: str = "layers.",
    where: str = "",
    names: dict[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Map the first ``num_layers`` blocks of a timm ViT trunk (under
    ``visual.trunk.``, ``trunk.`` or bare) to transformers ViTModel names
    (``block_prefix`` + ``names``: :func:`vit_layout` of the target model;
    default the transformers 5.x layout).

    timm layout: ``patch_embed.proj``, ``cls_token`` (1, 1, D), ``pos_embed``
    (1, 1 + N, D), ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1,
    mlp.fc2}``, ``norm``; ``attn.qkv`` is fused (3D, D): q, k, v in that order.
    Blocks >= num_layers and the final ``norm``/``fc_norm``/``head`` are unused
    and ignored, everything outside the trunk (text tower, ``visual.head``) too;
    other trunk keys are an error (they would change the computation)."""
    prefix, trunk = _trunk(state, num_layers, where)

    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []

    def take(src: str) -> torch.Tensor | None:
        if src not in trunk:
            missing.append(prefix + src)
            return None
        used.add(src)
        return trunk[src]

    def put(dst: str, src: str) -> None:
        t = take(src)
        if t is not None:
            out[dst] = t

    put("embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight")
    put("embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias")
    put("embeddings.cls_token", "cls_token")
    put("embeddings.position_embeddings", "pos_embed")
    n = VIT_NAMES_NEW if names is None else names
    for i in range(num_layers):
        s, d = f"blocks.{i}.", f"{block_prefix}{i}."
        for kind in ("weight", "bias"):
            put(f"{d}layernorm_before.{kind}", f"{s}norm1.{kind}")
            put(f"{d}{n['proj']}.{kind}", f"{s}attn.proj.{kind}")
            put(f"{d}layernorm_after.{kind}", f"{s}norm2.{kind}")
            put(f"{d}{n['fc1']}.{kind}", f"{s}mlp.fc1.{kind}")
            put(f"{d}{n['fc2']}.{kind}", f"{s}mlp.fc2.{kind}")
            qkv = take(f"{s}attn.qkv.{kind}")
            if qkv is not None:
                if qkv.shape[0] % 3:
                    raise EncoderWeightsError(
                        f"{where}: {prefix}{s}attn.qkv.{kind} of shape {tuple(qkv.shape)} "
                        "is not a fused (3*D, ...) q,k,v tensor"
                    )
                for proj, part in zip(("q", "k", "v"), qkv.chunk(3, dim=0), strict=True):
                    out[f"{d}{n[proj]}.{kind}"] = part
    if missing:
        raise EncoderWeightsError(f"{where} lacks trunk weights: {_brief(missing)}")
    _check_unused(trunk, used, prefix, num_layers, where)
    return out


def _trunk(state: dict, num_layers: int, where: str) -> tuple[str, dict]:
    """(prefix, the trunk's keys without it) of a timm ViT in ``state``,
    checked to have at least ``num_layers`` blocks."""
    prefix = next(
        (p for p in ("visual.trunk.", "trunk.", "") if f"{p}patch_embed.proj.weight" in state),
        None,
    )
    if prefix is None:
        raise EncoderWeightsError(
            f"{where}: no ViT image trunk (looked for visual.trunk.patch_embed.proj.weight)"
        )
    trunk = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    blocks = {int(m.group(1)) for k in trunk if (m := re.match(r"blocks\.(\d+)\.", k))}
    n_blocks = max(blocks) + 1 if blocks else 0
    if n_blocks < num_layers:
        raise EncoderWeightsError(f"{where} has {n_blocks} blocks, {num_layers} were asked for")
    return prefix, trunk


def _check_unused(trunk: dict, used: set, prefix: str, num_layers: int, where: str) -> None:
    """Trunk keys left unmapped must be ones the computation does not use:
    blocks >= num_layers and the final norm / fc_norm / head."""
    unused = re.compile(r"(norm|fc_norm|head)\.|blocks\.(\d+)\.")
    unexpected = [
        prefix + k
        for k in trunk
        if k not in used
        and not ((m := unused.match(k)) and (m.group(2) is None or int(m.group(2)) >= num_layers))
    ]
    if unexpected:
        raise EncoderWeightsError(f"{where} has unexpected trunk keys: {_brief(unexpected)}")
