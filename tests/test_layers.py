"""The layering the packages promise (docs/design.md §3), read from the imports: the core
of `l2t` imports neither `agents` nor `envs`; `agents` and `envs` import only the core; the
commands sit above them all. An import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"training", "compare", "applying", "model_training", "cli", "bench", "sweep"}
COMMANDS |= {"base_point"}  # trains fixed-loss students (agents) to choose a run's base
COMMANDS |= {"learned_loss"}  # the API's criterion: loads a run's teacher (agents)
COMMANDS |= {"__main__", "__init__"}  # the package's API names train_teacher lazily


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize(
    "path",
    [p for p in _modules("l2t") if p.stem not in COMMANDS],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_core_imports_neither_agents_nor_envs_nor_the_commands(path):
    imported = _imports(path)
    assert not {n for n in imported if _top(n) in ("agents", "envs")}
    assert not {n for n in imported if n.startswith("l2t.") and n.split(".")[1] in COMMANDS}


@pytest.mark.parametrize(
    "path", _modules("agents") + _modules("envs"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_agents_and_envs_import_only_the_core(path):
    imported = _imports(path)
    assert not {n for n in imported if n.startswith("l2t.") and n.split(".")[1] in COMMANDS}
    if path.parent.name == "envs":
        assert not {n for n in imported if _top(n) == "agents"}
