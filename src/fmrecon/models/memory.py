"""Peak GPU memory of a training step or an inference pass, estimated before
you start.

``estimate_peak_memory("fm-varnet-clip", size=(246, 512), coils=10,
precision="bf16", checkpointing=True)`` returns the bytes and a breakdown;
``memory_table()`` gives FM-VarNet and E2E-VarNet at 218x180 and 246x512 with
every option; ``fmrecon models --memory 246x512`` prints it.

Method (measured on this machine's CPU, no GPU needed; a few seconds per row):

1. **Static bytes from parameter counts**: the full model is built on the meta
   device (no memory, no weights): weights = every parameter and buffer (fp32
   storage, also under bf16 autocast); training adds the gradients (4 bytes
   per trainable parameter), Adam's two moments (8 bytes) and, at the step,
   one temporary per parameter (its foreach update).
2. **Dynamic bytes measured on a one-cascade probe at the real size**: the same
   architecture with one cascade (random weights) runs one training step (or
   one inference pass) on the CPU on inputs of the requested size, coils and
   batch, under :class:`LiveBytes`, a ``TorchDispatchMode`` that adds the bytes
   of every storage an operator allocates and subtracts them when the storage
   is freed (views and in-place results allocate nothing). It records what is
   still held at the end of the forward pass (saved activations, autocast's
   bf16 weight copies, checkpointed inputs), the peak over forward + backward,
   and what one cascade adds to the held bytes (allocations tagged by hooks
   around the cascade and still alive after the forward pass).
   Gradients exist before the probe, so they count as static (an upper bound:
   PyTorch allocates them lazily in backward). A probe at the real size costs
   no more than one at a small size: the ViT runs at 224 px and the decoder's
   inner stages at fixed sizes whatever the image, so no extrapolation in
   pixels is needed.
3. **Extrapolation to n cascades**: training keeps each cascade's activations
   (or, with checkpointing, its input) until backward, whose peak is in the
   last cascade, so ``peak(n) = peak(1) + (n - 1) * per_cascade + one k-space``
   (the last cascade's input is then a computed k-space, not the model input); inference
   holds no graph: the peak is the probe's, or a cascade's own peak plus one
   more live k-space (its input), whichever is larger.
4. **Card overhead** (assumed, not measurable without a GPU): the CUDA
   context and cuBLAS/cuDNN handles and workspaces (:data:`CUDA_CONTEXT_BYTES`)
   plus caching-allocator rounding and fragmentation (:data:`ALLOCATOR_SLACK`
   of the dynamic bytes). ``allocated_bytes`` compares with
   ``torch.cuda.max_memory_allocated()``; ``bytes`` adds the overhead (what
   ``nvidia-smi`` shows).
5. **DDP** (``ddp=True``, training on several GPUs): DistributedDataParallel's
   gradient buckets, fp32 flat buffers the gradients are copied into for the
   all-reduce, one more copy of every trainable gradient
   (:data:`DDP_BUCKET_BYTES_PER_PARAM`; ~0.22 GB for FM-VarNet's 56 M trainable
   parameters, 0.12 GB for E2E-VarNet's 30 M), booked as static bytes.

Not modelled (booked nowhere, or only inside the fixed
:data:`CUDA_CONTEXT_BYTES`): NCCL's communicator buffers under DDP (outside
PyTorch's allocator; they grow with the number of peers and channels), the
cuDNN / cuFFT / cuBLAS workspaces a GPU kernel picks (cuDNN's convolution
algorithms and cuFFT's plans allocate them through the caching allocator, so
``max_memory_allocated`` on a GPU includes them and this estimate does not:
the fixed ~0.6 GB stands in for them and the context together), and the
memory of a ``torch.compile``-d model.

Accuracy (tests, and the benchmark's goal 7 at full size, ``python -m
fmrecon_bench --goals 7``, which holds the checks against direct measurements
and the process's RSS): the saved-tensor count
(``saved_tensors_hooks``) equals the bytes held after the forward pass (to
0.3 %); the cascade extrapolation matches direct measurements of full-size
models at 218x180 x 10 coils within 1.6 % (FM-VarNet, 12 cascades: -0.1 % fp32,
0.0 % with checkpointing; 3 cascades bf16 and inference: 0.0 %; E2E-VarNet,
12 cascades: -0.2 % fp32, -1.6 % bf16 + checkpointing), and of tiny models
within 2.5 %; against PyTorch's own allocator events (``torch.profiler``) on
3-cascade models at 48x40 the memory held after the forward pass agrees within
1.1 % and the estimated peak is 0.91-1.00 of the allocator's once the CPU
kernels' own scratch is left out (blocks a kernel allocates and frees inside
itself, which the byte counter cannot see and a GPU does not allocate: oneDNN's
bf16 convolutions reorder a few-channel tensor to 16-channel blocks, twice the
whole bf16 inference pass of a tiny model; im2col columns where oneDNN has no
bf16 kernel); the tracked peak is 0.99 of the growth
of the process's peak RSS during the same step (FM-VarNet, one cascade,
218x180; 0.98 for a tiny E2E-VarNet in the tests): kernel scratch memory,
e.g. oneDNN's, is invisible to the tracker and small. Not measurable here:
GPU kernels differ from CPU ones (cuDNN workspaces, attention kernels,
autocast op lists) and the CUDA overhead is an assumption, so treat the
figures as about +-15 % on a GPU.

Measured (the benchmark's goal 7), GB at batch 1, 10 coils, Adam:

==========================  ========  ========
FM-VarNet (12 cascades)     218x180   246x512
==========================  ========  ========
train fp32                  5.62      8.95
train fp32 + checkpointing  2.42      3.52
train bf16                  4.04      5.79
train bf16 + checkpointing  2.23      2.82
inference fp32 / bf16       1.13/1.20 1.33/1.29
==========================  ========  ========

(bf16 training without checkpointing was 5.02 / 6.78 GB before the frozen
encoder cast its weights to bf16 once per model instead of once per cascade:
autocast's per-call copies, ~86 MB per cascade, were all kept for backward.
The one resident copy adds 0.08 GB to bf16 inference.)

E2E-VarNet: train fp32 2.49 / 5.34, with checkpointing 1.60 / 2.62, bf16 +
checkpointing 1.40 / 1.99, inference 0.85 / 1.06. Everything fits a 24 GB card
at batch 1; ``batch=`` measures larger batches directly.
"""

from __future__ import annotations

import contextlib
import functools
import json
import weakref
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

from fmrecon.encoders.frozen import FrozenEncoder
from fmrecon.errors import ConfigError
from fmrecon.models.registry import create_model, get_spec
from fmrecon.models.unet import Unet
from fmrecon.models.varnet import VarNet
from fmrecon.physics.masks import create_mask

CUDA_CONTEXT_BYTES = 600 * 1024**2  # CUDA context + cuBLAS/cuDNN handles and workspaces
ALLOCATOR_SLACK = 0.05  # caching-allocator rounding / fragmentation on dynamic bytes
# DDP's reducer copies every trainable gradient into fp32 bucket buffers unless
# gradient_as_bucket_view=True (torch DistributedDataParallel docs: that option "saves
# memory of the size of the total gradients"); Lightning's DDPStrategy leaves it False
DDP_BUCKET_BYTES_PER_PARAM = 4
CARD_BYTES = 24 * 10**9  # "24 GB" cards (RTX 3090/4090) hold 24,576 MiB = 25.8e9 bytes
# (precision, activation checkpointing, training): the options of the table
OPTIONS = (
    ("32", False, True),
    ("32", True, True),
    ("bf16", False, True),
    ("bf16", True, True),
    ("32", False, False),
    ("bf16", False, False),
)


class LiveBytes(TorchDispatchMode):
    """Bytes of the tensors allocated by operators inside the context and still
    alive: ``current`` and ``peak``. A storage is counted once (views, in-place
    and ``out=`` results allocate nothing) and subtracted when it is freed.
    Tensors that existed before the context (weights, inputs) are not counted.
    ``window`` is the peak since the caller last set it (e.g. to ``current``);
    every allocation is tagged with the current ``phase`` (any label), and
    :meth:`live` sums the live bytes of one phase."""

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self.window = 0
        self.phase = None
        self._seen = WeakIdKeyDictionary()
        self._live: dict[int, tuple[weakref.ref, int, object]] = {}

    def _freed(self, nbytes: int, ref: weakref.ref) -> None:
        self.current -= nbytes
        self._live.pop(id(ref), None)

    def _count(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        if st in self._seen:
            return
        n = st.nbytes()
        self._seen[st] = n
        ref = weakref.ref(st, functools.partial(self._freed, n))
        self._live[id(ref)] = (ref, n, self.phase)
        self.current += n
        self.peak = max(self.peak, self.current)
        self.window = max(self.window, self.current)

    def live(self, phase) -> int:
        """Live bytes allocated while ``phase`` was set."""
        return sum(n for _, n, p in self._live.values() if p == phase)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for i, t in enumerate(outs):
            # a return with alias info is a view or an in-place result: no allocation
            if isinstance(t, torch.Tensor) and not (
                i < len(returns) and returns[i].alias_info is not None
            ):
                self._count(t)
        return out


@contextlib.contextmanager
def saved_tensor_bytes(exclude: Iterable[torch.Tensor] = ()):
    """Count the bytes autograd saves for backward inside the context: distinct
    storages, except those of ``exclude`` (weights, inputs). Yields a dict
    whose ``bytes`` is filled in as the forward runs."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: set[int] = set()
    out = {"bytes": 0, "tensors": 0}

    def pack(t: torch.Tensor):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in skip and ptr not in seen:
            seen.add(ptr)
            out["bytes"] += st.nbytes()
            out["tensors"] += 1
        # a detached alias (same storage and version counter): returning an op's own
        # output would make a tensor -> grad_fn -> tensor cycle that is never freed
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield out


def _unrolled(model: nn.Module) -> VarNet | None:
    """The model when it is VarNet-type (E2E-VarNet, FM-VarNet), else None."""
    return model if isinstance(model, VarNet) else None


def cascades_of(model: nn.Module) -> nn.ModuleList | None:
    """The cascade list of a VarNet-type model (E2E-VarNet, FM-VarNet), else None."""
    inner = _unrolled(model)
    return None if inner is None else inner.cascades


def _set_checkpointing(model: nn.Module, on: bool) -> None:
    inner = _unrolled(model)
    if inner is None or not hasattr(inner, "checkpoint_cascades"):
        raise ConfigError("activation checkpointing applies to cascade models (VarNet types)")
    inner.checkpoint_cascades = bool(on)


def probe_inputs(h: int, w: int, coils: int, batch: int = 1, seed: int = 0):
    """Random masked k-space (B, C, H, W) complex64 and the CMRxRecon x4 line
    mask (B, 1, H, W) bool (every 4th line + 24 ACS lines; the ACS block
    shrinks to W // 4 on narrow images). Values do not matter, shapes do."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(batch, coils, h, w, 2, generator=g)
    lines = create_mask("cmrxrecon-uniform", 4, num_acs=min(24, w // 4))((h, w))
    mask = torch.from_numpy(lines)[None, None].repeat(batch, 1, 1, 1)
    return torch.view_as_complex(k) * mask, mask


def _amp(precision: str):
    """bf16 autocast on the CPU for ``precision == "bf16"``, else a no-op context."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _prepare(model: nn.Module, checkpointing: bool, training: bool) -> list[nn.Parameter]:
    """Set the checkpointing flag and the train/eval mode; in training allocate
    the gradients up front (they count as static bytes). Returns the parameters."""
    if cascades_of(model) is not None:
        _set_checkpointing(model, checkpointing)
    elif checkpointing:
        raise ConfigError("activation checkpointing applies to cascade models (VarNet types)")
    params = list(model.parameters())
    model.train(training)
    if training:
        for p in params:
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)
    return params


def _low_precision_copies(model: nn.Module, device: torch.device, precision: str) -> list:
    """The bf16 weight copies frozen encoders make once per model, not per
    cascade (``FrozenEncoder.low_precision_weights``); made before the step,
    like the weights. Empty in fp32."""
    copies: list[torch.Tensor] = []
    with _amp(precision), torch.no_grad():
        for enc in {id(m): m for m in model.modules() if isinstance(m, FrozenEncoder)}.values():
            copies += [t for d in enc.low_precision_weights(device) or [] for t in d.values()]
    return copies


class _CascadeRecorder:
    """Forward hooks on every cascade: tags what a cascade allocates with the
    tracker's phase ``"cascade"``, and records each cascade's output storage
    (``outs``: weak reference and bytes) and the peak inside it (``windows``).
    ``recording = False`` stops it (checkpointing re-runs cascades in backward)."""

    def __init__(self, tracker: LiveBytes, cascades: Iterable[nn.Module]):
        self.tracker = tracker
        self.outs: list[tuple[weakref.ref, int]] = []
        self.windows: list[int] = []
        self.recording = True
        self.handles = []
        for c in cascades:
            self.handles += [
                c.register_forward_pre_hook(self.before),
                c.register_forward_hook(self.after),
            ]

    def before(self, mod, args) -> None:
        if self.recording:
            self.tracker.phase = "cascade"
            self.tracker.window = self.tracker.current

    def after(self, mod, args, out) -> None:
        if self.recording:
            self.tracker.phase = None
            st = out.untyped_storage()
            self.outs.append((weakref.ref(st), st.nbytes()))
            self.windows.append(self.tracker.window)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def measure(
    model: nn.Module,
    size: Sequence[int],
    coils: int,
    precision: str = "32",
    checkpointing: bool = False,
    training: bool = True,
    batch: int = 1,
) -> dict:
    """One step of ``model`` on the CPU under :class:`LiveBytes`: ``held``
    (bytes alive at the end of the forward, output excluded), ``peak`` (over
    forward + backward), ``per_cascade`` (bytes one cascade adds to what is
    held at the end of the forward: the live bytes it allocated, plus, with
    checkpointing, its output, which the next cascade's checkpoint keeps; mean
    over the model's cascades), ``cascade_out`` (one cascade's
    output), and in training without checkpointing ``saved`` (the saved-tensor
    count, a cross-check of ``held``). Gradients are pre-allocated."""
    k, mask = probe_inputs(int(size[0]), int(size[1]), coils, batch)
    params = _prepare(model, checkpointing, training)
    copies = _low_precision_copies(model, k.device, precision)
    tracker = LiveBytes()
    cascades = cascades_of(model)
    rec = _CascadeRecorder(tracker, cascades if cascades is not None else [])
    saved_ctx = (
        saved_tensor_bytes([*params, *model.buffers(), *copies, k, mask])
        if training and not checkpointing
        else contextlib.nullcontext({})
    )
    grad = torch.enable_grad() if training else torch.no_grad()
    try:
        with grad, tracker, saved_ctx as saved:
            with _amp(precision):
                out = model(k, mask)
            # after autocast's exit (its bf16 weight copies are freed unless saved)
            held = tracker.current - out.untyped_storage().nbytes()
            kept = tracker.live("cascade")
            last_out_alive = bool(rec.outs) and rec.outs[-1][0]() is not None
            rec.recording = False
            if training:
                out.float().mean().backward()
            del out
    finally:
        rec.remove()
    per, cout = 0.0, 0
    if rec.outs:
        cout = rec.outs[-1][1]
        per = kept / len(rec.outs)
        if checkpointing and not last_out_alive:
            # in a chain the next cascade's checkpoint keeps this output as its input
            per += cout / len(rec.outs)
    return {
        "held": int(held),
        "peak": int(tracker.peak),
        "per_cascade": per,
        "cascade_out": cout,
        "cascade_peak": int(max(rec.windows)) if rec.windows else 0,
        "saved": int(saved["bytes"]) if "bytes" in saved else None,
        "cascades": len(cascades) if cascades is not None else 0,
        "weight_copies": int(sum(t.untyped_storage().nbytes() for t in copies)),
    }


# ----------------------------------------------------------------------------- models


def build_probe_model(
    name: str, options: dict, encoder_config: dict | None, one_cascade: bool = True
) -> nn.Module:
    """The architecture (random weights, GPU layout) for probing: with one
    cascade, or as configured (``one_cascade=False``, to validate the probe)."""
    spec = get_spec(name)
    kw = dict(options)
    if one_cascade and "num_cascades" in {**spec.defaults, **kw}:
        kw["num_cascades"] = 1
    if spec.encoder is not None:
        kw.update(encoder_weights="random", allow_random_encoder=True)
        kw["encoder_config"] = encoder_config or None
    torch.manual_seed(0)
    return gpu_layout(create_model(name, **kw))


@functools.lru_cache(maxsize=32)
def _static_counts(name: str, options_json: str, encoder_json: str) -> dict:
    """Parameter / buffer bytes and trainable count of the full model, on meta."""
    spec = get_spec(name)
    kw = json.loads(options_json)
    if spec.encoder is not None:
        kw.update(encoder_weights="random", allow_random_encoder=True)
        kw["encoder_config"] = json.loads(encoder_json) or None
    with torch.device("meta"):
        model = create_model(name, **kw)
    params = list(model.parameters())
    return {
        "weight_bytes": sum(p.numel() * p.element_size() for p in params)
        + sum(b.numel() * b.element_size() for b in model.buffers()),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "total": sum(p.numel() for p in params),
        "cascades": len(cascades_of(model)) if cascades_of(model) is not None else 0,
    }


_MODELS: dict[tuple, nn.Module] = {}
_MEASURED: dict[tuple, dict] = {}


def _key(name, options, encoder_config) -> tuple:
    """Cache key of a probe architecture (the cascade count is always one)."""
    opts = {k: v for k, v in options.items() if k not in ("num_cascades", "checkpoint_cascades")}
    return (name, json.dumps(opts, sort_keys=True), json.dumps(encoder_config or {}))


def probe_model(name: str, options: dict | None = None, encoder_config: dict | None = None):
    """The one-cascade probe model of an architecture, kept while it is used
    (one at a time: a full-size ViT is ~0.2-0.4 GB); :func:`clear` drops it."""
    key = _key(name, dict(options or {}), encoder_config)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = build_probe_model(name, dict(options or {}), encoder_config)
    return _MODELS[key]


def clear() -> None:
    """Forget the cached probe model and measurements."""
    _MODELS.clear()
    _MEASURED.clear()


def measure_probe(
    name: str,
    size: Sequence[int],
    coils: int,
    precision: str,
    checkpointing: bool,
    training: bool,
    batch: int = 1,
    options: dict | None = None,
    encoder_config: dict | None = None,
) -> dict:
    """:func:`measure` of the one-cascade probe model (cached per process)."""
    options = dict(options or {})
    key = (*_key(name, options, encoder_config), tuple(size), coils, precision,
           checkpointing, training, batch)  # fmt: skip
    if key not in _MEASURED:
        model = probe_model(name, options, encoder_config)
        _MEASURED[key] = measure(model, size, coils, precision, checkpointing, training, batch)
    return _MEASURED[key]


def parse_size(text: str, min_side: int = 17) -> tuple[int, int]:
    """``"246x512"`` -> (246, 512): H (readout) x W (phase encode, the mask
    axis), each side at least ``min_side``: the 4-pool U-Nets pad each side to
    a multiple of 16, and a 16-pixel side leaves their bottom 1x1, where
    InstanceNorm cannot train."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"bad size '{text}' (expected HxW, e.g. 218x180)") from None
    if h < min_side or w < min_side:
        raise ConfigError(
            f"size {h}x{w} is too small (at least {min_side}x{min_side}: the 4-pool "
            "U-Nets need more than 16 pixels per side)"
        )
    return h, w


def _dynamic_bytes(probe: dict, n: int, training: bool) -> tuple[float, float]:
    """(held, peak) bytes of an ``n``-cascade model from its one-cascade
    ``probe`` (:func:`measure`): training keeps every cascade's activations
    until backward, inference only ever one cascade's."""
    held, peak = float(probe["held"]), float(max(probe["peak"], probe["held"]))
    if training and n > 1:
        # every further cascade keeps what one cascade keeps; and the last one's
        # input is a computed k-space (the probe's was the model input)
        held += (n - 1) * probe["per_cascade"]
        peak += (n - 1) * probe["per_cascade"] + probe["cascade_out"]
    elif n > 1:  # no graph: nothing accumulates, but a cascade's input is now a live k-space
        peak = max(peak, probe["cascade_peak"] + probe["cascade_out"])
    return held, peak


def estimate_peak_memory(
    model_name: str = "fm-varnet-clip",
    size: Sequence[int] = (218, 180),
    coils: int = 10,
    precision: str = "32",
    checkpointing: bool = False,
    training: bool = True,
    batch: int = 1,
    *,
    model_options: dict | None = None,
    encoder_config: dict | None = None,
    ddp: bool = False,
) -> dict:
    """Estimated peak GPU memory of one training step (Adam) or one inference
    pass of the named model (see the module docstring); ``ddp``: per GPU of a
    multi-GPU (DistributedDataParallel) training run, with its gradient buckets.

    Returns ``bytes`` (the card's view, with the CUDA overhead), ``gb``,
    ``allocated_bytes`` (PyTorch's ``max_memory_allocated`` view), ``breakdown``
    (weights, grads, optimizer_state, ddp_buckets, activations = held at the
    end of the forward pass, transient = the rest of the peak, workspace = CUDA
    context and allocator slack), ``fits_24gb`` and the inputs. ``model_options`` are
    constructor options (e.g. ``num_cascades``), ``encoder_config`` encoder
    overrides (tiny models in tests).
    """
    precision = "32" if precision in ("32", "fp32", "32-true") else precision
    if precision not in ("32", "bf16"):
        raise ConfigError(f"precision must be '32' or 'bf16', got '{precision}'")
    h, w = int(size[0]), int(size[1])
    if batch < 1 or coils < 1:
        raise ConfigError("batch and coils must be >= 1")
    options = dict(model_options or {})
    options.pop("checkpoint_cascades", None)  # an option of the estimate itself
    static = _static_counts(
        model_name, json.dumps(options, sort_keys=True), json.dumps(encoder_config or {})
    )
    n = static["cascades"]
    if checkpointing and not n:
        raise ConfigError(f"activation checkpointing does not apply to '{model_name}'")
    checkpointing = checkpointing and training  # inference keeps no graph to recompute
    m = measure_probe(
        model_name, (h, w), coils, precision, checkpointing, training, batch, options,
        encoder_config,
    )  # fmt: skip
    held, peak = _dynamic_bytes(m, n, training)
    weights = static["weight_bytes"] + m.get("weight_copies", 0)  # + bf16 encoder copy
    grads = 4 * static["trainable"] if training else 0
    optim = 8 * static["trainable"] if training else 0
    buckets = DDP_BUCKET_BYTES_PER_PARAM * static["trainable"] if training and ddp else 0
    fixed = weights + grads + optim + buckets
    # Adam's foreach step allocates about one temporary per parameter (after backward)
    step_peak = fixed + 4 * static["trainable"] if training else 0
    allocated = max(fixed + peak, step_peak)
    workspace = CUDA_CONTEXT_BYTES + ALLOCATOR_SLACK * peak
    total = allocated + workspace
    return {
        "model": model_name,
        "size": [h, w],
        "coils": coils,
        "batch": batch,
        "precision": precision,
        "checkpointing": checkpointing,
        "training": training,
        "ddp": bool(ddp and training),
        "bytes": int(total),
        "gb": round(total / 1e9, 2),
        "allocated_bytes": int(allocated),
        "fits_24gb": bool(total <= CARD_BYTES),
        "breakdown": {
            "weights": int(weights),
            "grads": int(grads),
            "optimizer_state": int(optim),
            "ddp_buckets": int(buckets),
            "activations": int(held),
            "transient": int(peak - held),
            "workspace": int(workspace),
        },
        "cascades": n,
        "trainable_params": static["trainable"],
        "total_params": static["total"],
        "probe": m,
    }


def memory_table(
    sizes: Sequence[Sequence[int]] = ((218, 180), (246, 512)),
    coils: int = 10,
    models: Sequence[str] = ("fm-varnet-clip", "e2e-varnet"),
    options: Sequence[tuple[str, bool, bool]] = OPTIONS,
    *,
    model_options: dict | None = None,
    encoder_config: dict | None = None,
    ddp: bool = False,
) -> list[dict]:
    """One row per (model, option, size): the estimate at batch 1, flattened for
    tables (``gb``, ``fits_24gb``, the breakdown in GB). ``model_options`` /
    ``encoder_config`` apply to every model (tiny models in tests); ``ddp``:
    training rows per GPU of a DDP run (:func:`estimate_peak_memory`)."""
    rows = []
    for name in models:
        static = _static_counts(
            name, json.dumps(model_options or {}, sort_keys=True), json.dumps(encoder_config or {})
        )
        for precision, ckpt, training in options:
            if ckpt and not static["cascades"]:  # checkpointing is per cascade: not for U-Nets
                continue
            if training and not static["trainable"]:  # zero-filled, sense, cs-wavelet
                continue
            for size in sizes:
                est = estimate_peak_memory(
                    name, size, coils, precision, ckpt, training,
                    model_options=model_options, encoder_config=encoder_config, ddp=ddp,
                )  # fmt: skip
                rows.append(
                    {
                        "model": name,
                        "size": "x".join(str(v) for v in est["size"]),
                        "coils": coils,
                        "mode": "train" if training else "infer",
                        "precision": "bf16" if precision == "bf16" else "fp32",
                        "checkpointing": ckpt,
                        "gb": est["gb"],
                        "allocated_gb": round(est["allocated_bytes"] / 1e9, 2),
                        "fits_24gb": est["fits_24gb"],
                        **{f"{k}_gb": round(v / 1e9, 2) for k, v in est["breakdown"].items()},
                    }
                )
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """The rows of :func:`memory_table` as a plain-text table."""
    head = ("model", "size", "mode", "precision", "ckpt", "GB", "fits 24GB", "activ.", "trans.")
    lines = [
        (
            r["model"], r["size"], r["mode"], r["precision"], "yes" if r["checkpointing"] else "no",
            f"{r['gb']:.2f}", "yes" if r["fits_24gb"] else "NO", f"{r['activations_gb']:.2f}",
            f"{r['transient_gb']:.2f}",
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(wd) for c, wd in zip(x, widths, strict=True)).rstrip()
        for x in [head, *lines]
    )


def gpu_layout(model: nn.Module) -> nn.Module:
    """Run the U-Nets' convolutions in the layout they use on a GPU (the
    default one; channels-last is a CPU choice that keeps extra copies)."""
    for m in model.modules():
        if isinstance(m, Unet):
            m.set_channels_last(False)
    return model
