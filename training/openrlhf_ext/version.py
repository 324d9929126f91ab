"""The OpenRLHF version guard.

The extension subclasses private methods of OpenRLHF (``SamplesGenerator._generate_vllm`` and
friends) whose signatures and semantics change between releases, so it refuses to run on any
version other than the one it was written and tested against.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Iterable

from .errors import UnsupportedOpenRLHFVersion

SUPPORTED_OPENRLHF_VERSION = "0.11.2"


def installed_openrlhf_version() -> str | None:
    try:
        return importlib.metadata.version("openrlhf")
    except importlib.metadata.PackageNotFoundError:
        return None


def check_openrlhf_version() -> str:
    """Return the installed version, or raise :class:`UnsupportedOpenRLHFVersion`."""
    found = installed_openrlhf_version()
    if found is None:
        raise UnsupportedOpenRLHFVersion(
            f"OpenRLHF is not installed; the WideSeek extension needs openrlhf=={SUPPORTED_OPENRLHF_VERSION} "
            "(pip install 'langgraph-wideseek[train]')."
        )
    if found != SUPPORTED_OPENRLHF_VERSION:
        raise UnsupportedOpenRLHFVersion(
            f"the WideSeek OpenRLHF extension supports openrlhf=={SUPPORTED_OPENRLHF_VERSION} only, found "
            f"{found}. "
            "It overrides private OpenRLHF methods whose behaviour differs between releases; install "
            f"openrlhf=={SUPPORTED_OPENRLHF_VERSION} (with vllm==0.29.0) or port training/openrlhf_ext first."
        )
    return found


def require_signature(cls: type, method: str, params: Iterable[str]) -> None:
    """Fail loudly if ``cls.method`` lost a parameter we rely on (a structural version check)."""
    fn = getattr(cls, method, None)
    if fn is None:
        raise UnsupportedOpenRLHFVersion(f"{cls.__module__}.{cls.__qualname__} has no method {method!r}")
    have = set(inspect.signature(fn).parameters)
    missing = [p for p in params if p not in have]
    if missing:
        raise UnsupportedOpenRLHFVersion(
            f"{cls.__module__}.{cls.__qualname__}.{method} lacks parameters {missing}; "
            f"this is not OpenRLHF {SUPPORTED_OPENRLHF_VERSION}"
        )
