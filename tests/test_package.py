"""Packaging: one import package, envs/agents mapped under it, guards against bare imports."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def test_wheel_has_only_paintrnn_top_level(tmp_path):
    pytest.importorskip("build")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/")[0] for n in zf.namelist() if not n.split("/")[0].endswith(".dist-info")}
        names = zf.namelist()
    assert tops == {"paintrnn"}
    assert "paintrnn/envs/__init__.py" in names and "paintrnn/agents/__init__.py" in names
