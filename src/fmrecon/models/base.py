"""What every registered reconstruction model is: a :class:`ReconModel` that
carries a :class:`BuildRecord` of how ``create_model`` built it.

A leaf module (torch and fmrecon.errors only), so models, the registry and
checkpoint I/O can all import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from torch import nn

from fmrecon.errors import ConfigError

RANDOM_INIT = "random-init"  # encoder_weights of an encoder that was never pretrained


@dataclass
class BuildRecord:
    """How a model was built, enough to rebuild it (stored in checkpoints
    under ``checkpoint["fmrecon"]["model_spec"]`` as :meth:`as_dict`).

    ``name``: registry name; ``overrides``: constructor options given to
    ``create_model`` beyond the registry defaults; ``encoder_config``: encoder
    architecture overrides (tiny test encoders); ``encoder_weights``: where the
    frozen encoder's weights came from (``"random-init"`` for none, None
    without an encoder); ``encoder_pretrained``: whether they are pretrained;
    ``checkpoint``: the file the weights were loaded from; ``source``:
    ``"fastmri"`` for fastMRI state dicts.
    """

    name: str
    overrides: dict = field(default_factory=dict)
    encoder_config: dict = field(default_factory=dict)
    encoder_weights: str | None = None
    encoder_pretrained: bool | None = None
    checkpoint: str | None = None
    source: str | None = None

    @property
    def random_encoder(self) -> bool:
        """True when the frozen encoder was never pretrained: the model's numbers
        do not measure the foundation-model method."""
        return self.encoder_weights == RANDOM_INIT

    def as_dict(self) -> dict:
        """The checkpoint's ``model_spec`` dict: the five build fields, plus
        ``checkpoint`` and ``source`` when set."""
        d = asdict(self)
        for key in ("checkpoint", "source"):
            if d[key] is None:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, spec: dict) -> BuildRecord:
        """The record of a ``model_spec`` dict (as :meth:`as_dict` writes it)."""
        extra = sorted(set(spec) - {f.name for f in fields(cls)})
        if extra:
            raise ConfigError(f"model spec: unknown fields {', '.join(extra)}")
        if "name" not in spec:
            raise ConfigError("model spec: no model name")
        d = dict(spec)
        d["overrides"] = dict(d.get("overrides") or {})
        d["encoder_config"] = dict(d.get("encoder_config") or {})
        return cls(**d)


class ReconModel(nn.Module):
    """Base of every registered model.

    ``forward(masked_kspace (B, C, H, W) complex, mask (B, 1, H, W) bool) -> (B, H, W)``
    real magnitude image. ``record`` is set by ``create_model`` (None for a
    model constructed directly). Adds no parameters or buffers.
    """

    record: BuildRecord | None

    def __init__(self):
        super().__init__()
        self.record = None

    def compile_regions(self) -> list[tuple[str, nn.Module]]:
        """The parts :func:`fmrecon.utils.compile_model` compiles one by one, as
        (name, module): the whole model, unless a model has repeated blocks."""
        return [("", self)]


def build_record(model) -> BuildRecord | None:
    """The build record of any callable: None unless it is a :class:`ReconModel`
    built by ``create_model`` (or loaded from a checkpoint)."""
    return model.record if isinstance(model, ReconModel) else None
