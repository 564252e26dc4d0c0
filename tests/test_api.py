"""The public model API: ``paintrnn.load`` by name, run folder or checkpoint, its registry of loaders (the
``paintrnn.models`` entry points), ``paintrnn.__version__`` and ``paintrnn --version``, and what
``paintrnn.agents`` exports."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import paintrnn
from paintrnn import hub
from paintrnn.training import CheckpointError, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CLASSES = {
    "draw": ("paintrnn.agents.draw", "DRAW"),
    "painter": ("paintrnn.agents.painter", "Painter"),
    "texture": ("paintrnn.agents.texture", "TextureModel"),
    "glimpse": ("paintrnn.agents.glimpse", "RAM"),
    "painter-colour": ("paintrnn.agents.painter", "Painter"),
    "doodler": ("paintrnn.agents.doodler", "Doodler"),
    "digit-classifier": ("paintrnn.metrics", "DigitClassifier"),
}
FAMILY_LOADERS = {
    kind: f"paintrnn.agents.{kind}:load_model" for kind in ("draw", "vae", "painter", "texture", "glimpse", "doodler")
}
OTHER_LOADERS = {"digit-classifier": "paintrnn.metrics:load_classifier", "reading": "paintrnn.agents.dram:load_reader"}


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


# --- loading -----------------------------------------------------------------------------------------------


def test_available_models_are_the_shipped_checkpoints():
    assert paintrnn.available_models() == [
        "draw",
        "painter",
        "painter-colour",
        "texture",
        "glimpse",
        "doodler",
        "digit-classifier",
    ]
    on_disk = sorted(p.stem for p in hub.CHECKPOINTS.glob("*.pt"))
    assert sorted(paintrnn.available_models()) == on_disk  # every file has a name, every name a file


@pytest.mark.parametrize("name", list(SHIPPED_CLASSES))
def test_every_shipped_name_loads_its_class_in_eval_mode(name):
    module, cls = SHIPPED_CLASSES[name]
    model = paintrnn.load(name)
    assert type(model) is getattr(importlib.import_module(module), cls)
    assert not any(m.training for m in model.modules())
    params = list(model.parameters())
    assert params and all(
        p.device.type == "cpu" and p.dtype == torch.float32 and torch.isfinite(p).all() for p in params
    )


def test_a_run_folder_and_a_checkpoint_path_load(tmp_path):
    run = tmp_path / "runs" / "texture"
    run.mkdir(parents=True)
    shutil.copy(hub.checkpoint_path("texture"), run / "checkpoint.pt")
    shipped = paintrnn.load("texture").state_dict()
    for target in (run, str(run), run / "checkpoint.pt", str(run / "checkpoint.pt")):
        model = paintrnn.load(target, device=torch.device("cpu"))
        assert type(model).__name__ == "TextureModel" and not model.training
        assert model.state_dict().keys() == shipped.keys()
        assert all(torch.equal(model.state_dict()[k], v) for k, v in shipped.items())


def test_device_names_are_resolved():
    model = paintrnn.load("texture", device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert {p.device.type for p in model.parameters()} == {expected}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            paintrnn.load("texture", device="cuda")


def test_a_bare_word_is_a_name_even_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "draw").mkdir()  # a run folder without a checkpoint: "./draw" means it, "draw" the shipped model
    assert hub.checkpoint_path("draw") == hub.CHECKPOINTS / "draw.pt"
    with pytest.raises(FileNotFoundError) as exc:
        hub.checkpoint_path("./draw")
    assert "holds no checkpoint.pt" in one_line(exc)


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError) as exc:
        paintrnn.load("unicorn")
    message = one_line(exc)
    assert (
        "unknown model 'unicorn'" in message
        and "draw, painter, painter-colour, texture, glimpse, doodler, digit-classifier" in message
    )


@pytest.mark.parametrize("relative", ["nope.pt", "runs/nope/checkpoint.pt", "runs/nope"])
def test_missing_files_are_clear_errors(tmp_path, monkeypatch, relative):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as exc:
        paintrnn.load(relative)
    assert f"no checkpoint at {Path(relative)}" in one_line(exc)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        paintrnn.load(tmp_path / relative)  # a Path is never read as a name


def test_a_run_folder_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as exc:
        paintrnn.load(tmp_path)
    assert f"run folder {tmp_path} holds no checkpoint.pt" in one_line(exc)


def test_files_that_are_not_paintrnn_checkpoints_are_clear_errors(tmp_path):
    garbage, truncated = tmp_path / "garbage.pt", tmp_path / "truncated.pt"
    garbage.write_bytes(b"not a checkpoint")
    truncated.write_bytes(hub.checkpoint_path("texture").read_bytes()[:5000])
    for path in (garbage, truncated):
        with pytest.raises(CheckpointError) as exc:
            paintrnn.load(path)
        assert f"{path} is not a" in one_line(exc)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError) as exc:
        paintrnn.load(foreign)
    assert "is not a paintrnn checkpoint" in one_line(exc)
    untagged = tmp_path / "untagged.pt"
    save_checkpoint(untagged, kind="", config={}, model=torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError) as exc:
        paintrnn.load(untagged)
    assert "without a kind tag" in one_line(exc)


def test_a_kind_without_a_loader_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, kind="unicorn", config={}, model=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError) as exc:
        paintrnn.load(tmp_path)
    message = one_line(exc)
    assert "no loader is registered for models of kind 'unicorn'" in message
    assert "'paintrnn.models'" in message and (
        "digit-classifier, doodler, draw, glimpse, painter, reading, texture, vae" in message
    )


# --- the registry --------------------------------------------------------------------------------------------


@pytest.fixture
def toy_plugin(monkeypatch):
    """A third-party model family: a module with a loader, registered (on top of the installed entry points)
    as the kinds ``toy`` and ``toy-special``. Returns the calls the loaders saw."""
    calls: list[tuple[str, Path, object]] = []

    def load_model(path, device="cpu"):
        calls.append(("toy", Path(path), device))
        return torch.nn.Linear(2, 3).train()  # left in training mode: paintrnn.load must switch it to eval

    def load_special(path, device="cpu"):
        calls.append(("toy-special", Path(path), device))
        return torch.nn.Identity()

    plugin = types.ModuleType("paintrnn_toy_plugin")
    plugin.load_model, plugin.load_special = load_model, load_special
    plugin.load_nothing = lambda path, device="cpu": "not a module"
    monkeypatch.setitem(sys.modules, "paintrnn_toy_plugin", plugin)
    installed = hub.registered_loaders()
    extra = {
        "toy": "paintrnn_toy_plugin:load_model",
        "toy-special": "paintrnn_toy_plugin:load_special",
        "nothing": "paintrnn_toy_plugin:load_nothing",
        "broken": "paintrnn_no_such_plugin:load_model",
    }
    entries = {k: importlib.metadata.EntryPoint(k, v, hub.ENTRY_POINT_GROUP) for k, v in extra.items()}
    monkeypatch.setattr(hub, "registered_loaders", lambda: {**installed, **entries})
    return calls


def test_a_registered_entry_point_loads_a_new_kind(tmp_path, toy_plugin):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, kind="toy", config={}, model=torch.nn.Linear(2, 3))
    model = paintrnn.load(tmp_path)
    assert isinstance(model, torch.nn.Linear) and not model.training
    assert toy_plugin == [("toy", path, torch.device("cpu"))]


def test_a_mode_kind_uses_its_own_entry_point_else_its_familys(tmp_path, toy_plugin):
    for kind in ("toy-special", "toy-ppo"):
        save_checkpoint(tmp_path / f"{kind}.pt", kind=kind, config={}, model=torch.nn.Linear(2, 3))
        paintrnn.load(tmp_path / f"{kind}.pt")
    assert [call[0] for call in toy_plugin] == ["toy-special", "toy"]
    save_checkpoint(tmp_path / "x.pt", kind="unicorn-toy", config={}, model=torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="kind 'unicorn-toy'"):  # the family is the part before the first "-"
        paintrnn.load(tmp_path / "x.pt")


def test_broken_loaders_are_clear_errors(tmp_path, toy_plugin):
    save_checkpoint(tmp_path / "broken.pt", kind="broken", config={}, model=torch.nn.Linear(2, 2))
    with pytest.raises(ImportError) as exc:
        paintrnn.load(tmp_path / "broken.pt")
    assert "the loader 'paintrnn_no_such_plugin:load_model' registered for kind 'broken' cannot be imported" in (
        one_line(exc)
    )
    save_checkpoint(tmp_path / "nothing.pt", kind="nothing", config={}, model=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="returned a str, not a torch.nn.Module"):
        paintrnn.load(tmp_path / "nothing.pt")


def test_the_installed_entry_points_are_pyprojects():
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][hub.ENTRY_POINT_GROUP]
    assert declared == FAMILY_LOADERS | OTHER_LOADERS
    installed = {k: v.value for k, v in hub.registered_loaders().items() if v.value.startswith("paintrnn.")}
    assert installed == declared, "the installed metadata is stale: rerun `pip install -e .`"


@pytest.mark.parametrize("kind", list(FAMILY_LOADERS))
def test_every_family_loader_is_importable_with_the_agreed_signature(kind):
    import inspect

    loader = hub.loader_for(kind)
    assert loader.__name__ == "load_model" and loader.__module__ == f"paintrnn.agents.{kind}"
    params = inspect.signature(loader).parameters
    assert list(params)[:2] == ["path", "device"] and params["device"].default == "cpu"


def test_stale_build_metadata_on_sys_path_does_not_hide_the_loaders(tmp_path, monkeypatch):
    """``python -m build`` leaves ``paintrnn.egg-info`` in the source folder: from there it shadows the installed
    metadata of the same name, and ``entry_points(group=...)`` keeps only the first distribution of each name."""
    stale = tmp_path / "paintrnn.egg-info"
    stale.mkdir()
    (stale / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: paintrnn\nVersion: 0.0.1\n")
    (stale / "entry_points.txt").write_text("[console_scripts]\npaintrnn = paintrnn.agents.cli:main\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.metadata.version("paintrnn") == "0.0.1"  # the stale copy is the one found first
    assert {k: hub.registered_loaders()[k].value for k in FAMILY_LOADERS} == FAMILY_LOADERS


# --- version -------------------------------------------------------------------------------------------------


def test_version_comes_from_the_installed_metadata():
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert paintrnn.__version__ == importlib.metadata.version("paintrnn") == declared


@pytest.mark.parametrize("command", [["paintrnn"], [sys.executable, "-m", "paintrnn"]])
def test_version_flag(command, tmp_path):
    if command == ["paintrnn"] and shutil.which("paintrnn") is None:
        pytest.skip("the paintrnn console script is not on PATH")
    out = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"paintrnn {importlib.metadata.version('paintrnn')}"


def test_version_without_installed_metadata_falls_back():
    code = (
        "import importlib.metadata as m\n"
        "def missing(name): raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import paintrnn; print(paintrnn.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0+unknown"


# --- paintrnn.agents -----------------------------------------------------------------------------------------


def test_agents_export_the_models_and_load():
    import paintrnn.agents as agents

    for name, (module, cls) in SHIPPED_CLASSES.items():
        if module.startswith("paintrnn.agents"):  # the digit classifier is a core building block (paintrnn.metrics)
            assert getattr(agents, cls) is getattr(importlib.import_module(module), cls), name
    assert agents.VAE is importlib.import_module("paintrnn.agents.vae").VAE
    assert agents.load is paintrnn.load and agents.available_models is paintrnn.available_models
    assert {"DRAW", "VAE", "Painter", "TextureModel", "RAM", "load"} <= set(agents.__all__)
    for name in agents.__all__:
        assert getattr(agents, name) is not None and name in dir(agents)
    assert agents.draw.load_model is hub.loader_for("draw")  # family modules too, on first access
    with pytest.raises(AttributeError, match="has no attribute 'Unicorn'"):
        agents.Unicorn  # noqa: B018


def test_importing_paintrnn_and_its_agents_is_light():
    """The exports are imported on first use: ``paintrnn --help`` and ``--version`` need no torch."""
    code = (
        "import sys, paintrnn, paintrnn.agents\n"
        "print(sorted(m for m in ('torch', 'paintrnn.agents.draw') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
