"""Fine-tuning a foundation-model encoder: LoRA adapters (``peft``) and the
last blocks unfrozen, on the one :class:`~fmrecon.encoders.frozen.FrozenEncoder`
instance a model shares (FM-VarNet's twelve cascades included).

- LoRA (Hu et al. 2022, arXiv:2106.09685): every targeted ``nn.Linear`` W of
  the blocks the model uses becomes ``W x + (alpha / r) B A x``, A (r, in)
  Kaiming-uniform, B (out, r) zero, so the adapted encoder gives the base
  encoder's outputs at initialisation. Applied in place with
  :func:`peft.inject_adapter_in_model` (no wrapper model: the encoder stays
  the same object, shared by reference). LoRA dropout is 0: the encoder keeps
  its always-eval policy (no dropout anywhere).
- ``unfreeze_last=k``: every parameter of the last k built blocks (attention,
  MLP, LayerNorms, DINOv2 / DINOv3 layer scale) is trained.

Targets are named per role and resolved from each block's own module tree,
so one name works across families and transformers releases: ``query``,
``key``, ``value`` are the attention's input projections (``q_proj`` /
``k_proj`` / ``v_proj`` in transformers 5.x for every family; ``query`` /
``key`` / ``value`` in DINOv2 and ViT blocks of 4.x), ``output`` its output
projection (``out_proj``, ``o_proj``, 4.x ``attention.output.dense``); each
role is one layer per block. Anything else is a dotted suffix of a block's
linear layer names (``mlp.fc1``, ...), matching one layer or more.

State-dict layout of an adapted encoder (peft's own): a targeted layer
``blocks.{i}.{path}`` holds ``blocks.{i}.{path}.base_layer.weight|bias`` (the
frozen W, b) and ``blocks.{i}.{path}.lora_A.default.weight`` (r, in),
``...lora_B.default.weight`` (out, r); every other key is unchanged. The
*base state* (:func:`base_state`) is the frozen tensors under the plain
model's names (``.base_layer`` removed, adapters and unfrozen blocks left
out): a lean checkpoint references it by source and SHA-256
(:func:`base_digest`, equal to :func:`fmrecon.utils.state_digest` for an
encoder that is not adapted) and stores the trained tensors itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn

from fmrecon.errors import ConfigError
from fmrecon.utils import tensor_bytes

ADAPTER_NAME = "default"  # peft's adapter name, in the state-dict keys
DEFAULT_TARGETS = ("query", "value")
# role -> module-name endings that play it (transformers 5.x, then 4.x names)
ROLES = {
    "query": ("q_proj", "query"),
    "key": ("k_proj", "key"),
    "value": ("v_proj", "value"),
    "output": ("out_proj", "o_proj", "attention.output.dense"),
}
_BASE_LAYER = ".base_layer"


def _linear_names(block: nn.Module) -> list[str]:
    """Names of the linear layers of one transformer block (an adapted layer
    under its plain name, the adapters' own layers left out)."""
    return [
        n.replace(_BASE_LAYER, "")
        for n, m in block.named_modules()
        if isinstance(m, nn.Linear) and ".lora_" not in n
    ]


def resolve_targets(encoder: nn.Module, targets: Sequence[str]) -> list[str]:
    """Role names or dotted name suffixes -> module paths inside one block
    (e.g. ``["attention.q_proj", "attention.v_proj"]``), read off the first
    block; ConfigError for a name that matches nothing or is ambiguous."""
    if isinstance(targets, str) or not targets:
        raise ConfigError(
            f"encoder_lora_targets must be a non-empty list of names, got {targets!r}"
        )
    linears = _linear_names(encoder.blocks[0])
    paths: list[str] = []
    for target in targets:
        ends = ROLES.get(str(target), (str(target),))
        found = [n for n in linears if any(n == e or n.endswith("." + e) for e in ends)]
        role = str(target) in ROLES
        if not found or (role and len(found) != 1):
            what = "matches no" if not found else f"matches {len(found)}"
            raise ConfigError(
                f"encoder_lora_targets: '{target}' {what} linear layer of a {encoder.family} "
                f"block (its linear layers: {', '.join(linears)}; roles: {', '.join(ROLES)})"
            )
        paths += [n for n in found if n not in paths]
    return paths


def _check(encoder: nn.Module, rank, alpha, unfreeze_last) -> None:
    n = encoder.num_layers
    if not (isinstance(rank, int) and not isinstance(rank, bool) and rank >= 0):
        raise ConfigError(f"encoder_lora_rank must be an integer >= 0 (0: off), got {rank!r}")
    if alpha is not None and not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ConfigError(f"encoder_lora_alpha must be a positive number, got {alpha!r}")
    ok = isinstance(unfreeze_last, int) and not isinstance(unfreeze_last, bool)
    if not (ok and 0 <= unfreeze_last <= n):
        raise ConfigError(
            f"encoder_unfreeze_last must be an integer in 0..{n} (the model uses {n} encoder "
            f"blocks), got {unfreeze_last!r}"
        )


def adapt_encoder(
    encoder: nn.Module,
    *,
    lora_rank: int = 0,
    lora_alpha: float | None = None,
    lora_targets: Sequence[str] = DEFAULT_TARGETS,
    unfreeze_last: int = 0,
) -> nn.Module:
    """Make parts of a FrozenEncoder trainable, in place; returns it.

    ``lora_rank`` r > 0 adds LoRA adapters of rank r to ``lora_targets`` in
    every built block (``lora_alpha``: None = r, a scaling alpha / r of 1);
    ``unfreeze_last`` k trains every parameter of the last k built blocks.
    Both 0: nothing changes. The settings are kept as ``encoder.adaptation``
    (None when not adapted); adapting an encoder a second time with other
    settings is an error, with the same settings a no-op (models sharing it).
    """
    _check(encoder, lora_rank, lora_alpha, unfreeze_last)
    paths = resolve_targets(encoder, lora_targets)  # a typo fails even with LoRA off
    if not lora_rank and not unfreeze_last:
        if getattr(encoder, "adaptation", None) is not None:
            raise ConfigError("this encoder is already adapted; a plain model needs its own")
        return encoder
    settings = {
        "lora_rank": lora_rank,
        "lora_alpha": float(lora_alpha if lora_alpha is not None else lora_rank),
        "lora_targets": paths if lora_rank else [],
        "unfreeze_last": unfreeze_last,
    }
    if getattr(encoder, "adaptation", None) is not None:
        if encoder.adaptation != settings:
            raise ConfigError(
                f"this encoder is already adapted ({encoder.adaptation}), not as {settings}"
            )
        return encoder
    if lora_rank:
        from peft import LoraConfig, inject_adapter_in_model

        names = [
            f"blocks.{i}.{path}"
            for i in range(encoder.num_layers)
            for path in settings["lora_targets"]
        ]
        config = LoraConfig(
            r=lora_rank,
            lora_alpha=settings["lora_alpha"],
            lora_dropout=0.0,
            target_modules=names,
            bias="none",
        )
        # in place: the targeted Linears become peft LoRA layers (A random, B zero);
        # peft leaves only the adapters requiring grad
        inject_adapter_in_model(config, encoder, adapter_name=ADAPTER_NAME)
    for block in list(encoder.blocks)[encoder.num_layers - unfreeze_last :]:
        block.requires_grad_(True)
    encoder.adaptation = settings
    return encoder


def is_trained_key(encoder: nn.Module, key: str) -> bool:
    """Whether the encoder's state-dict ``key`` is a trained tensor (an adapter's,
    or one of the unfrozen blocks'), from ``encoder.adaptation`` (not from
    ``requires_grad``, which a caller may change)."""
    a = getattr(encoder, "adaptation", None)
    if a is None:
        return False
    if ".lora_" in key:
        return True
    first = encoder.num_layers - a["unfreeze_last"]
    parts = key.split(".")
    return parts[0] == "blocks" and int(parts[1]) >= first


def trained_keys(encoder: nn.Module) -> list[str]:
    """The encoder's state-dict keys a lean checkpoint stores (trained tensors)."""
    return [k for k in encoder.state_dict(keep_vars=True) if is_trained_key(encoder, k)]


def base_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's frozen tensors under the plain model's names (see the
    module docstring); all of its state when it is not adapted."""
    return {
        key.replace(_BASE_LAYER + ".", "."): t.detach()
        for key, t in encoder.state_dict(keep_vars=True).items()
        if not is_trained_key(encoder, key)
    }


def base_digest(encoder: nn.Module) -> str:
    """SHA-256 of :func:`base_state` (name, shape, dtype, bytes per tensor, in
    state-dict order): :func:`fmrecon.utils.state_digest` of the plain encoder."""
    h = hashlib.sha256()
    for name, t in base_state(encoder).items():
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()


def describe_adaptation(encoder: nn.Module) -> str:
    """One line for logs: ``LoRA r8 alpha 8 on attention.q_proj, attention.v_proj;
    last 2 blocks unfrozen``, or ``frozen``."""
    a = getattr(encoder, "adaptation", None)
    if a is None:
        return "frozen"
    parts = []
    if a["lora_rank"]:
        parts.append(
            f"LoRA r{a['lora_rank']} alpha {a['lora_alpha']:g} on {', '.join(a['lora_targets'])}"
        )
    if a["unfreeze_last"]:
        parts.append(f"last {a['unfreeze_last']} blocks unfrozen")
    return "; ".join(parts)
