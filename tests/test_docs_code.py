"""Every code block of the README and the docs runs as written.

The ```python blocks, and the ```bash / ```console blocks whose commands are ``paintrnn`` or ``python``, are
extracted from README.md and docs/**/*.md and run in a scratch folder, each block on its own (a reader copies one
block), with a time limit; a failure names the file and line of the block's opening fence. The scratch folder holds
``photo.jpg`` (a small picture: the docs paint "photo.jpg") and a link to the checkout's ``scripts/`` (the docs run
``python scripts/...`` from a source checkout). No network, no GPU.

A block that cannot run offline or in seconds (long training, GPUs, ``torchrun``, downloads, installs, benchmarks)
carries a marker on the line before its fence, which renders as nothing::

    <!-- no-test: trains for an hour on a GPU -->

Budget-shrinking substitutions (:data:`SUBSTITUTIONS`) make the runnable blocks fit in seconds: they shrink sizes,
stroke counts and iteration counts only, never what the code does, and the failure message shows the code as run.
The Python blocks share one interpreter (one torch import), each in a fresh namespace and a fresh folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NO_TEST = re.compile(r"^\s*<!--\s*no-test:\s*(.+?)\s*-->\s*$")
RUNNABLE = {"python", "bash", "console", "sh", "shell"}
COMMANDS = re.compile(r"^\s*(\$\s*)?(paintrnn|python)\b")
"""A shell block is run when one of its commands is ``paintrnn ...`` or ``python ...``."""
SUBSTITUTIONS: list[tuple[str, str]] = [
    (r"--strokes 4000\b", "--strokes 40"),  # paintrnn paint: 4000 strokes take a minute
    (r"--size 512\b", "--size 64"),
    (r"--size 4096\b", "--size 128"),  # paintrnn render
    (r"\bstrokes=1000\b", "strokes=40"),  # paintrnn.paint(...)
    (r"\bsize=256, ", "size=64, "),
    (r"\.render\(2048\)", ".render(128)"),
    (r"\brange\(1000\)", "range(20)"),  # environment loops
    (r"\brange\(200\)", "range(20)"),
    (r"total_timesteps=100_000\b", "total_timesteps=64"),  # Stable-Baselines3's PPO (n_steps is shrunk too)
    (r"\bn_steps=256\b", "n_steps=64"),
    (r"(sample\(model, 4, )256, 256", r"\g<1>24, 24"),  # texture synthesis, front by front
    (r"refine_steps=20\b", "refine_steps=2"),
]
"""(regex, replacement) applied to every block before it runs: smaller budgets, the same code."""
TIME_LIMIT_S = 120
"""Longest a block may run (generous: the test machine may be busy)."""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None  # the no-test reason

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        if self.lang == "python":
            return True
        return self.lang in RUNNABLE and any(COMMANDS.match(line) for line in self.code.splitlines())

    def as_run(self) -> str:
        code = self.code
        for pattern, replacement in SUBSTITUTIONS:
            code = re.sub(pattern, replacement, code)
        if self.lang == "console":  # prompts: keep the commands only
            code = "\n".join(re.sub(r"^\s*\$\s?", "", ln) for ln in code.splitlines() if ln.lstrip().startswith("$"))
        return code


def extract(path: Path) -> list[Block]:
    """The fenced code blocks of one Markdown file, with the no-test reason of the line before each fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, lang = match.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise AssertionError(f"{path.relative_to(ROOT)}:{i + 1}: unclosed code fence")
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = NO_TEST.match(prev)
        code = textwrap.dedent(
            "\n".join(ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end])
        )
        blocks.append(Block(path, i + 1, lang, code, skip.group(1) if skip else None))
        i = end + 1
    return blocks


BLOCKS = [b for path in DOCS for b in extract(path) if b.runnable]


def scratch(folder: Path) -> Path:
    """A fresh folder as the docs expect it: photo.jpg, and scripts/ of the checkout."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:64, 0:96]
    picture = np.stack([x * 2.6, y * 4.0, 255 - x * 2.6], -1) * ((x - 48) ** 2 + (y - 32) ** 2 > 200)[..., None]
    Image.fromarray(picture.clip(0, 255).astype(np.uint8)).save(folder / "photo.jpg")
    os.symlink(ROOT / "scripts", folder / "scripts")
    return folder


def environment() -> dict[str, str]:
    """The blocks' environment: this one, with one OpenMP thread (the test machine may have two busy cores)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


RUNNER = """
import json, os, signal, sys, time, traceback
blocks, root = json.load(open(sys.argv[1])), sys.argv[2]
import torch
torch.set_num_threads(1)
results = {}

def alarm(*_):
    raise TimeoutError("the block ran past the time limit")

signal.signal(signal.SIGALRM, alarm)
for block in blocks:
    os.chdir(os.path.join(root, block["folder"]))
    start = time.perf_counter()
    signal.alarm(block["limit"])
    try:
        exec(compile(block["code"], block["where"], "exec"), {"__name__": "__main__"})
        error = None
    except BaseException:
        error = traceback.format_exc(limit=-6)
    finally:
        signal.alarm(0)
    results[block["where"]] = {"error": error, "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps({block["where"]: results[block["where"]]}), flush=True)
json.dump(results, open(sys.argv[3], "w"))
"""


def run_python_blocks(blocks: list[Block], root: Path) -> dict[str, str | None]:
    """Run Python blocks in one interpreter (one torch import), each in a fresh namespace and scratch folder under
    ``root``: ``{where: traceback or None}``."""
    todo = []
    for k, block in enumerate(blocks):
        scratch(root / f"b{k}")
        todo.append({"where": block.where, "code": block.as_run(), "folder": f"b{k}", "limit": TIME_LIMIT_S})
    (root / "blocks.json").write_text(json.dumps(todo))
    (root / "runner.py").write_text(RUNNER)
    out = subprocess.run(
        [sys.executable, str(root / "runner.py"), str(root / "blocks.json"), str(root), str(root / "results.json")],
        capture_output=True, text=True, timeout=TIME_LIMIT_S * (len(todo) + 1), env=environment(),
    )  # fmt: skip
    if not (root / "results.json").is_file():
        pytest.fail(f"the block runner died (exit {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return {where: result["error"] for where, result in json.loads((root / "results.json").read_text()).items()}


def _id(block: Block) -> str:
    return f"{block.where}-{block.lang}"


def test_every_block_is_found_and_accounted_for():
    """The extraction is not vacuous, and every runnable block either runs or says why not."""
    assert any(b.path.name == "README.md" and b.lang == "python" for b in BLOCKS)
    assert sum(b.lang == "python" for b in BLOCKS) >= 8 and sum(b.lang == "bash" for b in BLOCKS) >= 8
    for block in BLOCKS:
        assert block.skip is None or len(block.skip) > 8, f"{block.where}: say why the block cannot run"


def test_python_blocks_run(tmp_path):
    """One test for all Python blocks (one interpreter: under pytest-xdist a shared fixture would run per worker);
    it names every failing block."""
    blocks = [b for b in BLOCKS if b.lang == "python" and b.skip is None]
    errors = run_python_blocks(blocks, tmp_path)
    failures = [
        f"the code block at {b.where} fails as written:\n{textwrap.indent(b.as_run(), '    ')}\n{errors[b.where]}"
        for b in blocks
        if errors[b.where] is not None
    ]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang != "python"], ids=_id)
def test_shell_block_runs(block, tmp_path):
    if block.skip is not None:
        pytest.skip(f"{block.where}: {block.skip}")
    folder = scratch(tmp_path / "scratch")
    bin_dir = Path(sys.executable).parent  # the `paintrnn` console command of this environment
    env = {**environment(), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    code = block.as_run()
    try:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=folder, capture_output=True, text=True,
                             timeout=TIME_LIMIT_S, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"the code block at {block.where} ran past {TIME_LIMIT_S} s:\n{code}", pytrace=False)
    if out.returncode != 0:
        pytest.fail(f"the code block at {block.where} fails as written (exit {out.returncode}):\n{code}\n\n"
                    f"{out.stdout[-1500:]}\n{out.stderr[-3000:]}", pytrace=False)  # fmt: skip
