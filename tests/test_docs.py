"""The README as a front door and the MkDocs site under docs/: the site builds strictly, its nav pages exist,
the table hook renders real configs and results, and the README's links and headline numbers are sound."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HOOK = ROOT / "docs" / "_hooks" / "tables.py"
MAX_README_LINES = 260


def load_hook():
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[dev]')")
    spec = importlib.util.spec_from_file_location("paintrnn_docs_tables", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(nav) -> list[str]:
    """Every page file named in mkdocs.yml's nav (nested sections included)."""
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def readme_links(text: str) -> list[str]:
    """Targets of the markdown links and images in ``text`` that are paths inside the repository."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


# ---- the site --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mkdocs_build_strict_succeeds(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[dev]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[dev]')")
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([*command, "--site-dir", str(site)], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    page = (site / "envs" / "paint" / "index.html").read_text()
    assert "<table>" in page and "strokes_per_step" in page  # the generated options table made it into the HTML
    assert "<!-- options:" not in page
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    assert "<!-- results:" not in benchmarks and "missed" in benchmarks  # PPO's missed target is rendered


def test_every_nav_page_exists_and_every_page_is_in_nav():
    yaml = pytest.importorskip("yaml", reason="PyYAML (a dependency of mkdocs) is not installed")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = ROOT / config["docs_dir"]
    pages = nav_pages(config["nav"])
    assert len(pages) == len(set(pages)), "a page is listed twice in the nav"
    missing = [p for p in pages if not (docs / p).is_file()]
    assert not missing, f"nav pages missing under {docs}: {missing}"
    on_disk = sorted(str(p.relative_to(docs)) for p in docs.rglob("*.md") if "_hooks" not in p.parts)
    assert sorted(pages) == on_disk, "every page under docs/ belongs in the nav"


# ---- the hook --------------------------------------------------------------------------------------------


def test_options_hook_renders_an_env_config_as_keyword_arguments():
    hook = load_hook()
    from paintrnn.envs.paint import PaintConfig

    from paintrnn.config import field_docs

    table = hook.options_table("paintrnn.envs.paint:PaintConfig", flags=False)
    lines = table.strip().splitlines()
    assert lines[0].startswith("| argument | type | default | description |")
    row = next(line for line in lines if line.startswith("| `strokes_per_step` "))
    assert "`int`" in row and "`1`" in row and field_docs(PaintConfig)["strokes_per_step"] in row
    inherited = next(line for line in lines if line.startswith("| `height` "))  # from CanvasConfig
    assert "`64`" in inherited
    assert "`'l2_delta' | 'final_l2' | 'none'`" in table  # a Literal, written as its choices


def test_options_hook_renders_a_trainer_config_as_flags():
    hook = load_hook()
    table = hook.options_table("paintrnn.run:RunConfig", flags=True)
    assert "| `--run-dir` |" in table and "| `--progress, --no-progress` |" in table
    assert "`'auto' | 'must' | 'never' | 'force'`" in table
    assert "`--out` (now `--run-dir`)" in table  # the deprecated flags are listed


def test_options_hook_refuses_what_is_not_a_dataclass():
    hook = load_hook()
    with pytest.raises(TypeError, match="not a dataclass"):
        hook.options_table("paintrnn.render:render_strokes", flags=False)
    with pytest.raises(ValueError, match="MODULE:CLASS"):
        hook.options_table("paintrnn.envs.paint.PaintConfig", flags=False)


def test_results_hook_judges_each_target_from_the_json():
    hook = load_hook()
    data = json.loads((ROOT / "docs" / "results" / "painter.json").read_text())
    table = hook.targets_table(data)
    rows = table.strip().splitlines()[2:]
    assert len(rows) == len(data["targets"])
    for row, target in zip(rows, data["targets"]):
        ok = {"<=": target["value"] <= target["target"], ">=": target["value"] >= target["target"]}[target["op"]]
        assert row.rstrip(" |").endswith("met") == ok and ("**missed**" in row) == (not ok), row
    assert any("**missed**" in row for row in rows)  # PPO misses its target in this file


def test_rows_hook_selects_rows_and_formats_columns(tmp_path):
    hook = load_hook()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps({"rows": [{"a": "p", "v": 0.12345}, {"a": "q", "v": 2}]}))
    table = hook.rows_table(tmp_path, 'x if r["a"] == "p"\nname | a\nvalue | v | .2f\ndouble | 2 * r["v"] | .3f')
    assert table.splitlines() == ["| name | value | double |", "|---|---|---|", "| p | 0.12 | 0.247 |"]


# ---- the README ------------------------------------------------------------------------------------------


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move details to docs/"


def test_every_relative_link_and_image_in_the_readme_exists():
    links = readme_links(README.read_text())
    assert len(links) > 10  # the GIFs, the docs pages, the results files
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_readme_test_command_is_the_one_ci_runs():
    command = "python -m pytest -q -n 2"
    assert command in README.read_text()
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def numbers_in(value) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers_in(v)]
    if isinstance(value, list):
        return [x for v in value for x in numbers_in(v)]
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return [float(value)]
    return []


def headline_rows() -> list[tuple[str, str, str]]:
    """(row, bold headline number, results file) of each row of the README's models-and-environments table."""
    text = README.read_text()
    section = text.split("## Models and environments", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "**" in line]
    out = []
    for row in rows:
        numbers = re.findall(r"\*\*([0-9][0-9.,]*)\*\*", row)
        sources = re.findall(r"\]\((docs/results/[^)]+\.json)\)", row)
        assert len(numbers) == 1, f"one bold headline number per row: {row}"
        assert len(sources) == 1, f"each row names its results file: {row}"
        out.append((row, numbers[0], sources[0]))
    return out


def test_readme_has_one_headline_per_model_and_environment():
    rows = headline_rows()
    assert len(rows) >= 8
    for family in ("Paint-v0", "PaintGrid-v0", "Draw-v0", "Glimpse-v0", "DRAW", "painter", "textures", "renderer"):
        assert any(family in row for row, _, _ in rows), f"no headline row for {family}"


def test_readme_headline_numbers_are_in_their_results_files():
    for row, shown, source in headline_rows():
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        target = float(shown.replace(",", ""))
        values = numbers_in(json.loads((ROOT / source).read_text()))
        assert any(round(v, decimals) == round(target, decimals) for v in values), (
            f"README shows {shown} but no number in {source} rounds to it: {row}"
        )
