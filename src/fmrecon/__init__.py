"""fmrecon: accelerated multi-coil MRI reconstruction with frozen vision foundation models.

The Python API (:mod:`fmrecon.api`)::

    import fmrecon
    model = fmrecon.load_model("run/checkpoints/best.ckpt")  # or a dir, or "hf:org/name"
    model = fmrecon.create_model("zero-filled")             # any registered model by name
    image = fmrecon.reconstruct(model, kspace, mask)        # NumPy or torch, one slice or a batch

The three names are imported on first use, so ``import fmrecon`` stays light.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "load_model", "reconstruct"]
_API = ("create_model", "load_model", "reconstruct")


def __getattr__(name: str):
    if name in _API:
        from fmrecon import api

        return getattr(api, name)
    raise AttributeError(f"module 'fmrecon' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
