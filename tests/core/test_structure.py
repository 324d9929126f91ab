"""The package's shape, checked: floors import only downwards, the simulator only through its entry, every
exception under one root and drawn in the tree, and the public surface is a tested list."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import langgraph_wideseek
from langgraph_wideseek import errors

ROOT = Path(langgraph_wideseek.__file__).parent
REPO = ROOT.parent

# Each floor may import from its own floor and the ones below it (docs/architecture.md).
FLOORS = {
    "config": 0,
    "errors": 0,
    "prompts": 0,
    "runtime": 1,
    "model": 2,
    "tools": 3,
    "graph": 4,
    "eval": 5,
    "cli": 6,
    "studio": 6,
    "__main__": 6,
    "__init__": 6,
    "testing": 7,
}


# The one production module allowed to import the simulator: the command that serves it (issue 14). It imports
# it inside the command, so no other command loads it.
SIMULATOR_COMMAND = Path("cli/simulate.py")


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py"))


def _floor_of(parts: list[str]) -> int:
    return FLOORS[parts[0]]


def _imports(path: Path) -> list[list[str]]:
    """Package-relative parts of every langgraph_wideseek module ``path`` imports."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    package = list(rel[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                names = [] if node.module else [a.name for a in node.names]
                out += [target + [n] for n in names] if names else [target]
            elif node.module and node.module.startswith("langgraph_wideseek"):
                out.append(node.module.split(".")[1:] or ["__init__"])
        elif isinstance(node, ast.Import):
            out += [a.name.split(".")[1:] for a in node.names if a.name.startswith("langgraph_wideseek.")]
    return [t for t in out if t]


def test_floors_import_only_downwards():
    wrong = []
    for path in _modules():
        rel = path.relative_to(ROOT).with_suffix("").parts
        own = _floor_of(list(rel))
        for target in _imports(path):
            if target[0] not in FLOORS:
                continue
            if target[0] == "testing" and path.relative_to(ROOT) == SIMULATOR_COMMAND:
                continue
            if _floor_of(target) > own:
                wrong.append(f"{'/'.join(rel)} imports {'.'.join(target)}")
    assert wrong == []


def test_the_simulator_is_reached_only_through_its_public_entry():
    """No production module but ``wideseek simulate`` imports langgraph_wideseek.testing, and that one only
    through its entry; training/, examples/ and benchmarks/ use only ``langgraph_wideseek.testing`` itself,
    never its modules."""
    wrong = []
    for path in _modules():
        rel = path.relative_to(ROOT).parts
        if rel[0] == "testing":
            continue
        found = [t for t in _imports(path) if t[0] == "testing"]
        if path.relative_to(ROOT) == SIMULATOR_COMMAND:
            found = [t for t in found if len(t) > 1 and t[1] not in _testing_modules()]
        if found:
            wrong.append(str(path.relative_to(REPO)))
    for folder in ("training", "examples", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else ([a.name for a in node.names] if isinstance(node, ast.Import) else [])
                )
                if any(n.startswith("langgraph_wideseek.testing.") for n in names):
                    wrong.append(str(path.relative_to(REPO)))
    assert wrong == []


def _testing_modules() -> set[str]:
    return {p.stem for p in (ROOT / "testing").glob("*.py") if p.stem != "__init__"}


def test_the_simulator_command_loads_the_simulator_only_when_it_runs():
    """Other commands never load the simulator: the command imports it inside functions (and for types)."""
    tree = ast.parse((ROOT / SIMULATOR_COMMAND).read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "testing"]
    assert top == []
    assert any(isinstance(n, ast.ImportFrom) and n.module == "testing" for n in ast.walk(tree))


def _package_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    names = ["langgraph_wideseek"] + [
        m.name for m in pkgutil.walk_packages([str(ROOT)], "langgraph_wideseek.")
    ]
    names += [
        "training.data",
        "training.rows",
        "training.endpoint",
        "training.refresh",
        "training.hf_engine",
        "training.openrlhf_ext.errors",
    ]
    for name in names:
        if name.endswith("__main__") or name == "langgraph_wideseek.studio":
            continue  # running them has effects (the CLI, building Studio's graph)
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and (obj.__module__.startswith(("langgraph_wideseek", "training")))
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_every_exception_has_the_one_root_and_is_drawn_in_the_tree():
    classes = _package_exceptions()
    assert len(classes) >= 20
    assert [c.__name__ for c in classes if not issubclass(c, errors.WideSeekError)] == []
    tree = errors.__doc__ or ""
    assert [c.__name__ for c in classes if c.__name__ not in tree] == []


@pytest.mark.parametrize(
    "error",
    [
        errors.ConfigError,
        errors.ToolArgumentError,
        errors.TaskLoadError,
        errors.TableParseError,
        errors.UnsupportedTaskError,
    ],
)
def test_errors_keep_their_builtin_bases(error):
    assert issubclass(error, ValueError)  # code written as `except ValueError` keeps working


def test_the_public_surface_is_this_list():
    assert sorted(langgraph_wideseek.__all__) == sorted(
        [
            "AgentTrajectory",
            "ChatVLLM",
            "Status",
            "Trajectory",
            "TurnRecord",
            "Usage",
            "WideSeekConfig",
            "WideSeekError",
            "WideSeekGraph",
            "WideSeekResult",
        ]
    )
    for name in langgraph_wideseek.__all__:
        assert getattr(langgraph_wideseek, name) is not None
    from langgraph_wideseek import eval as ev
    from langgraph_wideseek import testing

    assert {"load_tasks", "score_response", "ExactJudge", "OpenAIJudge", "JudgeError"} <= set(ev.__all__)
    assert {"FakeOpenAIServer", "Reply", "WideSeekPolicy", "ScriptedPolicy", "World"} <= set(testing.__all__)
    for module in (ev, testing):
        assert [n for n in module.__all__ if not hasattr(module, n)] == []
