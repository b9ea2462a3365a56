"""The layering of docs/design.md (Layout), read from the imports — one at the top of a file
or inside a function alike: the config, the engine, the losses, the data, the estimators and
the infrastructure import no teacher, no env, no method and no command; teachers, envs and
methods import no command, and envs no teacher. Below `l2t/config/parts.py` no component
takes a whole `Config` (a section at most). Old flat import paths keep working."""

import ast
import importlib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BELOW = ("l2t/engine", "l2t/losses", "l2t/data", "l2t/estimators", "l2t/io")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _above(names: set[str], layers: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in layers))


def _files(folder: str) -> list[Path]:
    where = ROOT / folder
    return [where] if where.is_file() else sorted(where.rglob("*.py"))


@pytest.mark.parametrize("folder", [*BELOW, "l2t/config/__init__.py"])
def test_the_engine_losses_data_and_infrastructure_import_no_teacher_env_or_command(folder):
    for path in _files(folder):
        wrong = _above(_imports(path), ("agents", "envs", "l2t.methods", "l2t.commands"))
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


@pytest.mark.parametrize("folder", ["agents", "envs", "l2t/methods"])
def test_teachers_envs_and_methods_import_no_command(folder):
    layers = ("l2t.commands", "agents") if folder == "envs" else ("l2t.commands",)
    for path in _files(folder):
        wrong = _above(_imports(path), layers)
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


@pytest.mark.parametrize("folder", [*BELOW, "agents"])
def test_components_take_explicit_arguments_not_the_whole_config(folder):
    """The commands (and the parts, envs and methods built on l2t/config/parts.py) read a
    `Config`; the components below them get what they need."""
    for path in _files(folder):
        whole = ("l2t.config.Config", "l2t.config.parts", "l2t.config.teachers")
        wrong = _above(_imports(path), whole)
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"
        assert "deepcopy(cfg" not in path.read_text(), path


def test_the_config_parts_import_no_env_method_or_command_and_parts_no_teacher():
    layers = ("envs", "l2t.methods", "l2t.commands")
    assert not _above(_imports(ROOT / "l2t/config/teachers.py"), layers)
    assert not _above(_imports(ROOT / "l2t/config/parts.py"), (*layers, "agents"))


def test_the_package_root_holds_only_the_public_surface():
    top = {p.name for p in (ROOT / "l2t").glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "_moved.py", "learned_loss.py"}


def test_an_old_flat_import_path_is_the_module_at_its_new_place():
    from l2t._moved import MOVED

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("l2t.loss_network")
        from l2t.lifetime import advance  # noqa: F401  (the names a user's script imports)
    new = importlib.import_module("l2t.losses.dln")
    assert old is new and old.__spec__.name == "l2t.losses.dln"
    assert any("l2t.loss_network moved to l2t.losses.dln" in str(w.message) for w in caught)
    for name, place in MOVED.items():  # every entry names a module that exists
        where = ROOT / "l2t" / place.replace(".", "/")
        assert where.with_suffix(".py").is_file() or (where / "__init__.py").is_file(), name


def test_a_function_that_moved_into_the_parts_names_its_new_place():
    with pytest.raises(ImportError, match=r"base_loss_params is now l2t.config.parts.base_loss"):
        from l2t.config.parts import base_loss_params  # noqa: F401
    with pytest.raises(ImportError, match=r"l2t.config.parts.splits\(cfg\)"):
        from l2t.data import load_splits  # noqa: F401
