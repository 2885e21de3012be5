"""Old import path of the k-space file description and discovery: use
:mod:`fmrecon.data.types` (VolumeInfo, NotKspaceFile) and
:mod:`fmrecon.data.formats` (inspect_file, discover)."""

from fmrecon.data.formats import discover, inspect_file
from fmrecon.data.types import NotKspaceFile, VolumeInfo

__all__ = ["NotKspaceFile", "VolumeInfo", "discover", "inspect_file"]
