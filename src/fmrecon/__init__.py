"""fmrecon: accelerated multi-coil MRI reconstruction with frozen vision foundation models."""

__version__ = "0.1.0"
