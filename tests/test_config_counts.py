"""Counts are validated at parse time, in every command line: each config dataclass of a trainer, a benchmark or
a CLI (found by walking the source, so a new one is covered) refuses 0 and -1 for its counts with a usage error
(exit 2, one message naming the flag, no traceback), by the one convention of ``paintrnn.config.lower_bound``."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from paintrnn.config import bound_error, field_docs, lower_bound, parse_config
from paintrnn.run import RunConfig

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"agents": "paintrnn.agents", "envs": "paintrnn.envs", "paintrnn": "paintrnn"}
"""Source folder -> import package (``agents/`` is ``paintrnn.agents``)."""
CALL = re.compile(r"\b(parse_config|build_parser)\(\s*([A-Z]\w*)")
"""A config class handed to the command-line builders: ``parse_config(TrainConfig, argv)``."""


def _script(path: Path):
    spec = importlib.util.spec_from_file_location(f"paintrnn_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and inspect look the module up
    spec.loader.exec_module(module)  # scripts run their main only under __main__
    return module


def cli_configs() -> dict[str, tuple[type, str]]:
    """``module.Class -> (class, builder)`` of every config dataclass a command line parses: the classes named in a
    ``parse_config(...)`` / ``build_parser(...)`` call of the package or scripts/, the painter's modes (chosen at
    run time) and every :class:`RunConfig` subclass (every trainer)."""
    found: dict[str, tuple[type, str]] = {}
    sources = [(p, f"{pkg}.{p.stem}") for folder, pkg in PACKAGES.items() for p in sorted((ROOT / folder).glob("*.py"))]
    sources += [(p, None) for p in sorted((ROOT / "scripts").glob("*.py"))]
    for path, module_name in sources:
        calls = CALL.findall(path.read_text(encoding="utf-8"))
        if not calls or path.stem == "config":  # config.py's own docstring example
            continue
        module = importlib.import_module(module_name) if module_name else _script(path)
        for builder, name in calls:
            cls = getattr(module, name, None)
            if dataclasses.is_dataclass(cls):
                key = f"{cls.__module__}.{cls.__qualname__}"
                if found.get(key, (None, ""))[1] != "parse_config":  # parse_config wins over build_parser
                    found[key] = (cls, builder)
    from paintrnn.agents.painter_train import MODES

    for module_name, class_name, _ in MODES.values():
        cls = getattr(importlib.import_module(module_name), class_name)
        found[f"{cls.__module__}.{cls.__qualname__}"] = (cls, "parse_config")
    pending = list(RunConfig.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        found.setdefault(f"{cls.__module__}.{cls.__qualname__}", (cls, "parse_config"))
    return found


CONFIGS = cli_configs()


def bounded_fields(cls: type) -> list[tuple[str, tuple[float, bool], object]]:
    """``(field, (bound, strict), default)`` of every field of ``cls`` with a lower bound."""
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        bound = lower_bound(f.name, hints[f.name], docs.get(f.name, ""), f.default) if f.init else None
        if bound is not None:
            out.append((f.name, bound, f.default))
    return out


def bad_values(bound: tuple[float, bool], default: object) -> list[str]:
    """0 and -1, or -1 alone where 0 is allowed (a count where 0 means off or a default); not the default (a
    default out of bounds is the other test's finding)."""
    low, strict = bound
    values = ["0", "-1"] if strict or low >= 1 else ["-1"]
    return [v for v in values if default is None or float(v) != default]


def paint_entry(argv: list[str]) -> int:
    """``paintrnn paint PICTURE ARGV`` (its config is built by ``build_parser`` and checked by itself)."""
    from paintrnn.agents.paint_cli import paint_main

    return paint_main(["picture-that-is-never-read.png", *argv, "--no-progress"])


ENTRY_POINTS = {"paintrnn.painting.PaintConfig": paint_entry}
"""Configs parsed by ``build_parser`` (not ``parse_config``): the command line that builds and checks them."""


def test_the_walk_finds_every_trainer_and_benchmark():
    names = {key.rsplit(".", 2)[-2] + "." + key.rsplit(".", 1)[-1] for key in CONFIGS}
    expected = {"draw_train.TrainConfig", "texture_train.TrainConfig", "glimpse_train.Config",
                "painter_backprop.BackpropConfig", "painter_ppo.PPOConfig", "painter_ddpg.DDPGConfig",
                "painter_gan.GANConfig", "glimpse_benchmark.BenchConfig", "texture_benchmark.BenchmarkConfig",
                "painter_benchmark.BenchmarkConfig", "benchmark.BenchmarkConfig", "episode.RenderEpisodeConfig",
                "painting.PaintConfig"}  # fmt: skip
    assert expected <= names, expected - names
    for key, (_, builder) in CONFIGS.items():
        assert builder == "parse_config" or key in ENTRY_POINTS, f"{key} is parsed by {builder}: add its command"


def test_the_convention():
    assert lower_bound("iters", int) == lower_bound("batch_size", int | None) == (1, False)
    assert lower_bound("threads", int, "torch CPU threads (0 = torch's default)") == (0, False)
    assert lower_bound("iwae_k", int, "Importance samples (0: skip).") == (0, False)
    assert lower_bound("eval_every", int, "Steps between evaluations (when holdout > 0).") == (1, False)
    assert lower_bound("clutter", int, "Pieces of other digits.", default=0) == (0, False)  # a default is valid
    assert lower_bound("seed", int) is None and lower_bound("test_seed", int) is None
    assert lower_bound("lr", float) == lower_bound("critic_lr", float) == (0.0, True)
    assert lower_bound("l1_weight", float) is None and lower_bound("name", str) is None


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_counts_below_their_bound_are_usage_errors(key, capsys):
    cls, _ = CONFIGS[key]
    fields = bounded_fields(cls)
    if not fields:
        pytest.skip(f"{key} has no counts")
    entry = ENTRY_POINTS.get(key)
    failures = []
    for name, bound, default in fields:
        flag = "--" + name.replace("_", "-")
        for value in bad_values(bound, default):
            if entry is None:
                with pytest.raises(SystemExit) as exit_info:
                    parse_config(cls, [flag, value], prog="paintrnn test")
                code = exit_info.value.code
            else:
                code = entry([flag, value])
            err = capsys.readouterr().err
            named = flag in err or f"{name} must be" in err
            if code != 2 or "Traceback" in err or not named or "must be" not in err:
                failures.append(f"{flag} {value}: exit {code}, stderr {err.strip().splitlines()[-1:]}")
    assert not failures, f"{key}:\n" + "\n".join(failures)


@pytest.mark.parametrize("key", sorted(k for k in CONFIGS if k not in ENTRY_POINTS))
def test_defaults_and_zero_where_it_means_off_parse(key):
    cls, _ = CONFIGS[key]
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    for name, _, default in bounded_fields(cls):
        message = bound_error(name, hints[name], default, docs.get(name, ""), default)
        assert message is None, (
            f"{key}: the default {message}; if 0 is meant, its docstring says what 0 means (0: none)"
        )
    parse_config(cls, [])
    for name, (low, strict), _ in bounded_fields(cls):
        if low == 0 and not strict:  # 0 means off or a default: accepted
            assert getattr(parse_config(cls, ["--" + name.replace("_", "-"), "0"]), name) == 0


@pytest.mark.parametrize(
    "argv, flag",
    [(["train", "painter", "ddpg", "--batch-size", "-1"], "--batch-size"), (["bench", "envs", "--rounds", "0"],
     "--rounds")],
)  # fmt: skip
def test_the_paintrnn_command_exits_2_with_a_usage_line(argv, flag):
    out = subprocess.run([sys.executable, "-m", "paintrnn", *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("usage: paintrnn ") and f"error: {flag} must be" in out.stderr
