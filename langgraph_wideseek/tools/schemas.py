"""The three tools' JSON schemas, exactly as the model was trained to call them (spec section 2).

Names and argument shapes are the model's interface and never change; only descriptions follow the prompt
language. Each schema is built once per graph and shared by every agent of a role (prefix-cache friendly).
"""

from __future__ import annotations

from typing import Any

from ..prompts import Prompts

CREATE_SUB_AGENTS = "create_sub_agents"
SEARCH = "search"
ACCESS = "access"


def _fn(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def lead_tools(p: Prompts) -> list[dict[str, Any]]:
    d = p.tool_description
    return [
        _fn(
            CREATE_SUB_AGENTS,
            d("create_sub_agents"),
            {
                "type": "object",
                "properties": {
                    "sub_agents": {
                        "type": "array",
                        "description": d("create_sub_agents.sub_agents"),
                        "items": {
                            "type": "object",
                            "properties": {
                                "prompt": {"type": "string", "description": d("create_sub_agents.prompt")}
                            },
                            "required": ["prompt"],
                        },
                    }
                },
                "required": ["sub_agents"],
            },
        )
    ]


def subagent_tools(p: Prompts) -> list[dict[str, Any]]:
    d = p.tool_description
    return [
        _fn(
            SEARCH,
            d("search"),
            {
                "type": "object",
                "properties": {
                    "queries": {
                        "type": "array",
                        "description": d("search.queries"),
                        "items": {
                            "type": "object",
                            "properties": {
                                "query": {"type": "string", "description": d("search.query")},
                                "count": {"type": "integer", "description": d("search.count"), "default": 3},
                            },
                            "required": ["query"],
                        },
                    }
                },
                "required": ["queries"],
            },
        ),
        _fn(
            ACCESS,
            d("access"),
            {
                "type": "object",
                "properties": {
                    "urls": {
                        "type": "array",
                        "description": d("access.urls"),
                        "items": {
                            "type": "object",
                            "properties": {
                                "url": {"type": "string", "description": d("access.url")},
                                "info_to_extract": {
                                    "type": "string",
                                    "description": d("access.info_to_extract"),
                                },
                            },
                            "required": ["url", "info_to_extract"],
                        },
                    }
                },
                "required": ["urls"],
            },
        ),
    ]
