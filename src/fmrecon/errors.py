"""Typed exceptions. Each carries a one-line message that names the file or
argument and the problem; the CLI prints it and exits with code 2."""

from __future__ import annotations


def one_line(err: BaseException, limit: int = 160) -> str:
    """A caught library exception's text on one line, cut at ``limit``
    characters, to quote inside a one-line error."""
    return " ".join(str(err).split())[:limit]


class FmreconError(Exception):
    """Base class of every error fmrecon raises on bad input."""

    def __init__(self, message: str):
        # keep messages on one line whatever the cause contained
        super().__init__(" ".join(str(message).split()))


class DataError(FmreconError):
    """A data file is missing, unreadable, truncated, of the wrong format,
    lacks a key, has the wrong shape or holds non-finite values."""


class MaskError(FmreconError):
    """An unknown mask name or impossible mask parameters."""


class ConfigError(FmreconError):
    """A bad command-line argument or configuration value."""


class InputError(FmreconError, ValueError):
    """An array given to the Python API (:func:`fmrecon.reconstruct`) has the
    wrong kind, dtype or shape; the message names the shapes it accepts."""
