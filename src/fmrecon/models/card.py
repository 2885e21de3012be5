"""The model card (``README.md``) of an exported model, in the hub's
conventions: YAML metadata (``library_name``, ``tags``, ``base_model`` for
the encoder) then what the model is, how to load it, its foundation-model
encoder and that encoder's licence (random-init said loudly), the data and
masks it was trained with (from the training run's config, when the
checkpoint holds it), and an evaluation's table when one is given.
Hugging Face's model card guide lists these sections
(https://huggingface.co/docs/hub/model-cards)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fmrecon.models.base import BuildRecord
from fmrecon.models.registry import get_spec

# the licences of the encoders' weights as their model pages state them (the model
# card repeats them; the export by reference does not redistribute the weights)
ENCODER_LICENCES = {
    "openai/clip-vit-base-patch16": "MIT",
    "facebook/dinov2-base": "Apache-2.0",
    "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224": "MIT",
    "google/siglip-base-patch16-224": "Apache-2.0",
    "microsoft/rad-dino": "MSRLA (Microsoft Research License Agreement)",
    "facebook/dinov3-vitb16-pretrain-lvd1689m": "DINOv3 License (gated: accept it on the "
    "model page)",
}


def encoder_repo(record: BuildRecord) -> str | None:
    """The hub repo of the model's encoder weights: its recorded ``hf:`` source,
    else the registry's repo of its encoder (None without an encoder)."""
    spec = get_spec(record.name)
    if spec.encoder is None:
        return None
    src = str(record.encoder_weights or "")
    if src.startswith("hf:"):
        return src[3:].partition("@")[0]
    from fmrecon.encoders.registry import get_spec as encoder_spec

    return encoder_spec(spec.encoder)[0].weights_repo


def _yaml_list(items: Sequence[str]) -> str:
    return "".join(f"\n- {i}" for i in items)


def _encoder_section(record: BuildRecord, storage: str) -> list[str]:
    spec = get_spec(record.name)
    if spec.encoder is None:
        return ["## Encoder", "", "None: this model has no foundation-model encoder.", ""]
    repo = encoder_repo(record)
    licence = ENCODER_LICENCES.get(repo or "", "see the encoder's model page")
    if record.random_encoder:
        licence = "none (random-init: no pretrained weights were used)"
    lines = ["## Encoder", ""]
    if record.random_encoder:
        lines += [
            "**WARNING: the frozen encoder is RANDOMLY INITIALISED** (no pretrained weights). "
            "This model does not measure the foundation-model method; its numbers are those "
            "of a random-feature network.",
            "",
        ]
    lines += [
        f"- encoder: `{spec.encoder}` ({'random-init' if record.random_encoder else 'pretrained'})",
        f"- weights: `{record.encoder_weights}`",
        f"- encoder weights' licence: {licence}" + (f" ([{repo}](https://huggingface.co/{repo}))"
                                                   if repo and not record.random_encoder else ""),
    ]  # fmt: skip
    if storage == "reference":
        lines.append(
            "- stored **by reference**: `model.safetensors` holds the trained weights only; "
            f"loading fetches the frozen encoder from `{record.encoder_weights}` (the Hugging "
            "Face cache) and checks its SHA-256 against `config.json` (`encoder_reference`)"
        )
    else:
        lines.append("- stored in `model.safetensors` with the trained weights")
    return [*lines, ""]


def _data_section(run_config: Mapping | None) -> list[str]:
    lines = ["## Training data and masks", ""]
    if not run_config:
        return [*lines, "Not recorded in the checkpoint this model was exported from.", ""]
    data = run_config.get("data") or {}
    mask = data.get("mask") or {}
    trainer = run_config.get("trainer") or {}
    optim = run_config.get("optim") or {}
    accs = ", ".join(str(a) for a in mask.get("accelerations") or [])
    items = [
        ("data", data.get("root")),
        ("modalities", ", ".join(data.get("modalities") or []) or "all in the data"),
        ("split", f"subject-level, fractions {data.get('split_fractions')}, "
                  f"seed {data.get('split_seed')}"),
        ("masks", f"{mask.get('kind')}, accelerations {accs}"
                  + (", the challenge's mask files" if mask.get("official") else "")
                  + (f", centre fractions {mask.get('center_fractions')}"
                     if mask.get("center_fractions") else "")
                  + (f", {mask.get('num_acs')} ACS lines" if mask.get("num_acs") else "")),
        ("image size", data.get("image_size") or "native"),
        ("optimiser", f"{optim.get('name')}, lr {optim.get('lr')}"),
        ("epochs (at most)", trainer.get("max_epochs")),
        ("precision", trainer.get("precision")),
        ("initialised from", (run_config.get("model") or {}).get("init_from")),
    ]  # fmt: skip
    lines += [f"- {k}: {v}" for k, v in items if v not in (None, "")]
    return [*lines, ""]


def model_card(
    record: BuildRecord,
    *,
    storage: str,
    parameters: tuple[int, int],
    load_as: str,
    run_config: Mapping | None = None,
    metrics: str | None = None,
    source: str | None = None,
    version: str = "",
) -> str:
    """The card's text. ``parameters``: (total, trainable); ``load_as``: what
    ``fmrecon.load_model`` is given (``hf:org/name`` or the folder);
    ``metrics``: an evaluation's ``summary.md`` table (None: not evaluated);
    ``source``: the checkpoint exported."""
    spec = get_spec(record.name)
    repo = encoder_repo(record)
    tags = ["fmrecon", "mri", "mri-reconstruction", "medical-imaging", spec.family]
    head = ["---", "library_name: fmrecon", f"tags:{_yaml_list(tags)}"]
    if repo and not record.random_encoder:
        head.append(f"base_model: {repo}")
    head += ["pipeline_tag: image-to-image", "---", ""]
    total, trainable = parameters
    options = ", ".join(f"{k}={v!r}" for k, v in record.overrides.items()) or "registry defaults"
    body = [
        f"# {record.name} (fmrecon)",
        "",
        f"{spec.description}.",
        "",
        f"- model: `{record.name}` ({spec.family}), options: {options}",
        f"- parameters: {total:,} ({trainable:,} trained)",
    ]
    if spec.paper:
        body.append(f"- architecture of: {spec.paper}")
    if source:
        body.append(
            f"- exported from: `{source}`" + (f" with fmrecon {version}" if version else "")
        )
    body += [
        "",
        "## Use",
        "",
        "```python",
        "import fmrecon",
        "",
        f'model = fmrecon.load_model("{load_as}")',
        "image = fmrecon.reconstruct(model, kspace, mask)  # (C, H, W) complex, mask (W,)",
        "```",
        "",
        "or `fmrecon reconstruct INPUT --checkpoint "
        f"{load_as} --out DIR` / `fmrecon evaluate --checkpoint {load_as} --data DIR --out DIR`.",
        "",
        *_encoder_section(record, storage),
        *_data_section(run_config),
        "## Evaluation",
        "",
        metrics.strip() if metrics else "No evaluation was given to the export (`--metrics`).",
        "",
    ]
    return "\n".join(head + body)
