"""Packaging: one import package, envs/agents mapped under it, guards against bare imports, the core's layering."""

import ast
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "paintrnn"
LAYERS_ABOVE_CORE = ("paintrnn.envs", "paintrnn.agents")


def test_subpackages_import_under_paintrnn():
    import paintrnn.agents
    import paintrnn.envs

    assert Path(paintrnn.envs.__file__).parent.name == "envs"
    assert Path(paintrnn.agents.__file__).parent.name == "agents"


@pytest.mark.parametrize("name", ["envs", "agents"])
def test_bare_import_from_repo_root_is_refused(name):
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "must not be imported as" in proc.stderr


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports anywhere (top level or inside functions, relative imports resolved,
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name included)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from paintrnn import agents`
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def reaches_above_core(module: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in LAYERS_ABOVE_CORE)


def test_the_import_scan_sees_imports_inside_functions():
    """``paintrnn/__main__.py`` (an entry point, exempt below) imports the CLI inside an ``if``: the scan finds it."""
    assert "paintrnn.agents.cli" in imported_modules(CORE / "__main__.py")


def test_the_core_never_imports_envs_or_agents():
    """Data flows one way (core <- envs <- agents): no core source imports them, not even lazily in a function.
    ``paintrnn.load`` finds the agents' loaders through entry points instead (see ``paintrnn/hub.py``)."""
    sources = [p for p in sorted(CORE.rglob("*.py")) if p.name != "__main__.py"]
    assert len(sources) >= 10
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if reaches_above_core(m)) for p in sources
    }
    assert {p: mods for p, mods in offenders.items() if mods} == {}


def test_importing_every_core_module_loads_no_envs_or_agents():
    code = (
        "import importlib, pkgutil, sys, paintrnn\n"
        "for m in pkgutil.walk_packages(paintrnn.__path__, 'paintrnn.'):\n"
        "    if m.name not in ('paintrnn.__main__', 'paintrnn.envs', 'paintrnn.agents') and not m.name.startswith(\n"
        "            ('paintrnn.envs.', 'paintrnn.agents.')):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith(('paintrnn.envs', 'paintrnn.agents'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_wheel_has_only_paintrnn_top_level(tmp_path):
    """The wheel holds one top-level package with the shipped checkpoints and declares the model loaders. It is
    built from a copy: a build in the checkout leaves ``paintrnn.egg-info`` and ``build/`` there, and that
    stale metadata shadows the installed one for anything run from the repository root."""
    pytest.importorskip("build")
    import paintrnn

    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("paintrnn", "envs", "agents"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        declared = configparser.ConfigParser()
        declared.read_string(zf.read(entry_points).decode())
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"paintrnn"}
    assert "paintrnn/envs/__init__.py" in names and "paintrnn/agents/__init__.py" in names
    assert "paintrnn/hub.py" in names
    for model in paintrnn.available_models():
        assert f"paintrnn/assets/checkpoints/{model}.pt" in names
    loaders = dict(declared["paintrnn.models"])
    kinds = ("draw", "vae", "painter", "texture", "glimpse", "doodler")
    families = {k: f"paintrnn.agents.{k}:load_model" for k in kinds}
    others = {"digit-classifier": "paintrnn.metrics:load_classifier", "reading": "paintrnn.agents.dram:load_reader"}
    assert loaders == families | others
    assert declared["console_scripts"]["paintrnn"] == "paintrnn.agents.cli:main"
