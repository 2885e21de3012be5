"""K-space physics: centred orthonormal FFTs, coil sensitivities, masks."""

from fmrecon.physics.coils import (
    acs_region,
    extract_acs,
    num_low_frequencies,
    rss,
    sens_expand,
    sens_reduce,
)
from fmrecon.physics.fft import fft2c, ifft2c

__all__ = [
    "acs_region",
    "extract_acs",
    "fft2c",
    "ifft2c",
    "num_low_frequencies",
    "rss",
    "sens_expand",
    "sens_reduce",
]
