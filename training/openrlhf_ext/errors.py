"""Errors raised by the OpenRLHF extension (all subclass :class:`WideSeekExtensionError`)."""

from __future__ import annotations

from langgraph_wideseek.errors import TrainingError


class WideSeekExtensionError(TrainingError, RuntimeError):
    """Base class: something stops the multi-agent extension from running correctly."""


class UnsupportedOpenRLHFVersion(WideSeekExtensionError):
    """The installed OpenRLHF is not the version the extension was written against."""


class ExtensionConfigError(WideSeekExtensionError, ValueError):
    """The OpenRLHF flags are incompatible with multi-agent rows."""


class RowContractError(WideSeekExtensionError, ValueError):
    """An ``AgentExecutor.execute`` result breaks the row contract (docs/training-internals.md)."""
