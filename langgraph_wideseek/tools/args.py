"""Reading a tool call's arguments: both item tools take ``{"<key>": [item, ...]}``, at most ``max_items``.

Every problem is a :class:`~langgraph_wideseek.errors.ToolArgumentError` whose message tells the model what to
send instead (it is shown to the model as the tool's answer).
"""

from __future__ import annotations

from typing import Any

from ..errors import ToolArgumentError

__all__ = ["items_of", "text_field"]


def items_of(
    args: Any, key: str, *, usage: str, noun: str, max_items: int
) -> tuple[list[tuple[str, Any]], int]:
    """``[(where, item), ...]`` for the first ``max_items`` items of ``args[key]``, and how many were dropped.

    ``where`` names the item for messages (``queries[0]``); ``usage`` is the message for arguments that are
    not an object holding a list under ``key``; ``noun`` names one item in the message for an empty list.
    """
    if not isinstance(args, dict) or not isinstance(args.get(key), list):
        raise ToolArgumentError(usage)
    items = args[key]
    if not items:
        raise ToolArgumentError(f"'{key}' is empty: give at least one {noun}")
    kept = [(f"{key}[{i}]", item) for i, item in enumerate(items[:max_items])]
    return kept, max(0, len(items) - max_items)


def text_field(item: Any, field: str, where: str, *, main: bool = True) -> str:
    """``item[field]`` stripped; it must be a non-empty string.

    ``main`` fields name the item itself in the message ("urls[0] must be an object with a non-empty string
    'url'"); other fields name the field ("urls[0].info_to_extract must be a non-empty string").
    """
    value = item.get(field) if isinstance(item, dict) else None
    if not isinstance(value, str) or not value.strip():
        if main:
            raise ToolArgumentError(f"{where} must be an object with a non-empty string '{field}'")
        raise ToolArgumentError(f"{where}.{field} must be a non-empty string")
    return value.strip()
