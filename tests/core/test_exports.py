"""The public surface is a tested list (as httpx's test_exported_members): what a module's ``__all__`` names
is promised, importable, and changes only on purpose. The package's own list is held in test_structure.py."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "langgraph_wideseek.model": [
        "ChatVLLM",
        "ContextOverflowError",
        "ModelError",
        "ModelRequestError",
        "ModelUnavailableError",
        "OpenAITransport",
        "message_to_openai",
        "parse_completion",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_exported_names_are_the_public_list_and_all_import(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == PUBLIC[module]
    for name in mod.__all__:
        assert getattr(mod, name) is not None
    with pytest.raises(AttributeError):
        mod.NoSuchName  # noqa: B018


def test_chat_model_is_the_same_class_everywhere():
    import langgraph_wideseek
    from langgraph_wideseek.model import ChatVLLM
    from langgraph_wideseek.model.chat import ChatVLLM as Inner

    assert langgraph_wideseek.ChatVLLM is ChatVLLM is Inner


def test_testing_entry_exports_every_name_it_lists():
    mod = importlib.import_module("langgraph_wideseek.testing")
    assert "AssistantPolicy" in mod.__all__
    assert all(getattr(mod, n) is not None for n in mod.__all__)
