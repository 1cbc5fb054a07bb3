"""Exceptions of the paraphrase package; each message names the file, row or setting at fault."""

from __future__ import annotations


class ParaphraseError(Exception):
    """Base class, so callers can catch everything this package raises on purpose."""


class ParaphraseInputError(ParaphraseError):
    """An input table is missing a column or holds a value the stage cannot use."""


class ParaphraseConfigError(ParaphraseError):
    """The configuration cannot work (missing environment variable, model file, template slot)."""


class BackendUnavailableError(ParaphraseError):
    """A backend's optional dependency or model is not installed."""


class CacheCorruptError(ParaphraseError):
    """A cache chunk file exists but cannot be read as a cache chunk."""
