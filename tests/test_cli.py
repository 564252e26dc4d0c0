"""The front door: the ``paintrnn`` command, the shipped checkpoints, the demo and its page in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from paintrnn.agents.cli import BENCH, TRAIN, build_parser, main
from paintrnn.agents.demo import FAMILIES, load_any
from PIL import Image

import paintrnn
from paintrnn.hub import checkpoint_path
from paintrnn.training import CheckpointError, export_weights, load_checkpoint, save_checkpoint


def gif_frames(path: Path) -> int:
    with Image.open(path) as im:
        return im.n_frames


def option_blocks(help_text: str) -> list[str]:
    """The help entries of the options (one block per flag), without ``-h``."""
    body = help_text.split("options:", 1)[1]
    return [b for b in re.split(r"\n  (?=-)", body)[1:] if not b.startswith("-h")]


@pytest.mark.parametrize("command", ["demo", "gif", "sample"])
def test_own_subcommand_help_lists_every_default(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    blocks = option_blocks(capsys.readouterr().out)
    parser = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    flags = [a.option_strings[0] for a in parser._actions if a.option_strings and a.option_strings[0] != "-h"]
    assert len(blocks) == len(flags) >= 3
    for block in blocks:
        assert "(default:" in block, block


@pytest.mark.parametrize("group,name", [("train", n) for n in TRAIN] + [("bench", n) for n in BENCH])
def test_delegated_help_works(group, name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([group, name, *(["backprop"] if name == "painter" and group == "train" else []), "--help"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "usage:" in out and "--" in out


def test_group_listing_and_unknown_names(capsys):
    assert main(["train", "--help"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in TRAIN)
    assert main(["train"]) == 2
    assert main(["bench", "nonsense"]) == 2
    assert "unknown name 'nonsense'" in capsys.readouterr().err


def test_python_dash_m_paintrnn_help():
    out = subprocess.run([sys.executable, "-m", "paintrnn", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for command in ("demo", "train", "gif", "sample", "bench"):
        assert command in out.stdout


def test_export_weights_strips_state_and_round_trips_float16(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(), torch.nn.Linear(256, 4))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 64)).sum().backward()
    opt.step()
    src = tmp_path / "full.pt"
    save_checkpoint(src, kind="toy", config={"width": 256}, model=model, optimizer=opt, step=7,
                    extra={"note": "x", "noise": torch.zeros(3)})  # fmt: skip
    export_weights(src, tmp_path / "f32.pt", half=False)
    payload = export_weights(src, tmp_path / "f16.pt", half=True)
    assert payload["half_keys"] and all(payload["model"][k].dtype == torch.float16 for k in payload["half_keys"])
    raw = torch.load(tmp_path / "f16.pt", weights_only=True)
    assert "optimizer" not in raw and "rng" not in raw and raw["extra"] == {"note": "x"}
    assert (tmp_path / "f16.pt").stat().st_size < 0.75 * (tmp_path / "f32.pt").stat().st_size
    for name in ("f32.pt", "f16.pt"):
        ckpt = load_checkpoint(tmp_path / name, kind="toy")
        assert ckpt["step"] == 7 and ckpt["config"] == {"width": 256}
        copy = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(), torch.nn.Linear(256, 4))
        copy.load_state_dict(ckpt["model"])
        assert all(p.dtype == torch.float32 for p in copy.parameters())
        x = torch.randn(32, 64)
        tol = 0 if name == "f32.pt" else 2e-3
        torch.testing.assert_close(copy(x), model(x), atol=tol, rtol=tol)
    # automatic choice: float16 only above the size threshold
    assert not export_weights(src, tmp_path / "auto.pt")["half_keys"]
    assert export_weights(src, tmp_path / "auto.pt", half_above_mb=1e-4)["half_keys"]


def test_export_weights_takes_the_weight_average_when_there_is_one(tmp_path):
    model = torch.nn.Linear(3, 2)
    average = {k: v + 1 for k, v in model.state_dict().items()}
    src = tmp_path / "full.pt"
    save_checkpoint(src, kind="toy", config={}, model=model, extra={"ema": average, "ema_decay": 0.999})
    payload = export_weights(src, tmp_path / "out.pt", half=False)
    for name, v in average.items():
        torch.testing.assert_close(payload["model"][name], v, rtol=0, atol=0)
    assert payload["extra"] == {"ema_decay": 0.999}  # the average is the weights, not a second copy


def test_export_weights_refuses_float16_overflow(tmp_path):
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(1e6)
    save_checkpoint(tmp_path / "big.pt", kind="toy", config={}, model=model)
    with pytest.raises(ValueError, match="overflows float16"):
        export_weights(tmp_path / "big.pt", tmp_path / "out.pt", half=True)


def test_shipped_checkpoints_are_small_and_load():
    assert set(FAMILIES) <= set(paintrnn.available_models())  # the demo shows shipped models
    paths = [checkpoint_path(kind) for kind in FAMILIES]
    assert sum(p.stat().st_size for p in paths) < 10e6
    for kind, path in zip(FAMILIES, paths):
        raw = torch.load(path, weights_only=True)
        assert "optimizer" not in raw and "rng" not in raw
        for loaded in (load_any(path), load_any(kind)):
            assert loaded.kind == loaded.family == kind and not loaded.model.training
            assert loaded.config == raw["config"]
            assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in loaded.model.parameters())
    with pytest.raises(ValueError, match="unknown model 'unicorn'"):
        load_any("unicorn")


def test_gif_and_sample_for_every_shipped_kind(tmp_path, capsys):
    threads = torch.get_num_threads()
    for kind in FAMILIES:  # by name
        out = tmp_path / f"{kind}.gif"
        assert main(["gif", kind, "--out", str(out), "--n", "2"]) == 0
        assert gif_frames(out) > 1
    assert torch.get_num_threads() == threads  # --threads 1 held only during the command
    for kind in ("draw", "painter", "doodler", "texture"):
        png = tmp_path / f"{kind}.png"
        assert main(["sample", str(checkpoint_path(kind)), "--out", str(png), "--n", "4"]) == 0  # by path
        image = np.asarray(Image.open(png))
        assert image.ndim >= 2 and image.std() > 0  # not a blank picture
    assert main(["sample", "glimpse", "--out", str(tmp_path / "g.png")]) == 1  # a classifier: one clear line
    assert "no sample grid for models of kind 'glimpse'" in capsys.readouterr().err


def test_gif_into_a_folder_writes_the_full_set_for_draw(tmp_path):
    assert main(["gif", "draw", "--out", str(tmp_path), "--n", "4"]) == 0
    assert gif_frames(tmp_path / "draw_samples.gif") > 1 and gif_frames(tmp_path / "draw_reconstructions.gif") > 1
    assert main(["gif", str(checkpoint_path("glimpse")), "--out", str(tmp_path / "sub"), "--n", "1"]) == 0
    assert gif_frames(tmp_path / "sub" / "glimpse.gif") > 1


def test_gif_and_sample_of_a_run_folder(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "texture"
    run.mkdir(parents=True)
    shutil.copy(checkpoint_path("texture"), run / "checkpoint.pt")
    monkeypatch.chdir(tmp_path)
    assert main(["gif", str(run), "--n", "1"]) == 0
    assert gif_frames(tmp_path / "texture.gif") > 1  # named after the kind
    assert main(["sample", "runs/texture", "--n", "1"]) == 0
    assert (tmp_path / "texture_samples.png").is_file()


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """``paintrnn ARGV`` in this process: its exit status (argparse's usage errors included) and its stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_bad_counts_are_usage_errors(tmp_path, capsys):
    for argv in (["gif", "texture", "--out", str(tmp_path / "t.gif"), "--n", "0"],
                 ["sample", "draw", "--out", str(tmp_path / "d.png"), "--n", "-3"],
                 ["demo", "--threads", "-1"]):  # fmt: skip
        code, err = cli(argv, capsys)
        assert code == 2 and "usage: paintrnn" in err and "must be >= " in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_gif_of_a_foreign_file_is_a_clear_error(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for argv, message in (
        (["gif", str(bad)], f"paintrnn gif: error: {bad} is not a paintrnn checkpoint"),
        (["gif", "unicorn"], "paintrnn gif: error: unknown model 'unicorn'"),
        (["sample", str(tmp_path / "missing.pt")], "paintrnn sample: error: no checkpoint at"),
    ):
        code, err = cli(argv, capsys)
        assert code == 1 and err.startswith(message) and err.count("\n") == 1 and "--debug" in err
    with pytest.raises(CheckpointError):  # --debug: the exception itself, with its traceback
        main(["--debug", "gif", str(bad)])
    monkeypatch.setenv("PAINTRNN_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        main(["sample", str(tmp_path / "missing.pt")])


def test_user_mistakes_are_one_line_on_stderr(tmp_path, capsys):
    """The issue's list: nonexistent or non-checkpoint files, unwritable outputs, bad counts, unknown textures."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    afile = tmp_path / "a_file"
    afile.write_text("x")
    cases = [
        (["sample", "nothere.pt"], 1, "no checkpoint at nothere.pt"),
        (["gif", str(readme)], 1, "is not a paintrnn checkpoint"),
        (["sample", "draw", "--out", str(afile / "x.png")], 1, "is a file, not a folder"),
        (["gif", "draw", "--out", str(afile / "gifs")], 1, "is a file, not a folder"),
        (["demo", "--out", str(afile / "demo")], 1, "a_file"),
        (["train", "draw", "--run-dir", str(afile / "run"), "--epochs", "1"], 1, "a_file"),
        (["train", "texture", "--texture", "marble", "--iters", "1", "--run-dir", str(tmp_path / "t")], 1,
         "unknown texture 'marble'"),
        (["train", "texture", "--iters", "0"], 2, "--iters must be >= 1, got 0"),
        (["train", "draw", "--batch-size", "0"], 2, "--batch-size must be >= 1, got 0"),
        (["sample", "draw", "--n", "0"], 2, "--n must be >= 1, got 0"),
    ]  # fmt: skip
    for argv, status, message in cases:
        code, err = cli(argv, capsys)
        assert code == status and message in err and "Traceback" not in err, (argv, code, err)
        assert err.count("\n") == 1 if status == 1 else err.strip().splitlines()[-1].startswith("paintrnn ")


def test_the_console_command_prints_no_traceback_unless_debugging(tmp_path):
    command = [sys.executable, "-m", "paintrnn", "sample", str(tmp_path / "nothere.pt")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    env = {**os.environ, "PAINTRNN_DEBUG": "1"}
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 1 and "Traceback" in out.stderr and "FileNotFoundError: no checkpoint at" in out.stderr


@pytest.mark.parametrize("kind, n", [("draw", 10), ("painter", 8), ("texture", 16)])
def test_sample_writes_a_roughly_square_grid(tmp_path, kind, n):
    png = tmp_path / f"{kind}.png"
    assert main(["sample", kind, "--n", str(n), "--out", str(png)]) == 0
    width, height = Image.open(png).size
    assert 0.5 <= width / height <= 2, (width, height)  # not one long row
    assert max(width, height) <= 600


def test_help_texts_name_paintrnn_commands_not_scripts(capsys):
    """A wheel has no scripts/ folder: what `paintrnn ... --help` prints names `paintrnn` commands."""
    for argv in (["--help"], ["train", "--help"], ["bench", "--help"], ["train", "painter"],
                 *[["train", name, "--help"] for name in TRAIN if name != "painter"],
                 *[["train", "painter", mode, "--help"] for mode in ("backprop", "ppo", "ddpg", "gan")]):  # fmt: skip
        try:
            main(argv)
        except SystemExit:
            pass
        text = capsys.readouterr().out
        assert text and "scripts/" not in text and "train_painter.py" not in text, (argv, text)
        if argv[0] == "train" and argv[-1] == "--help":
            assert text.startswith(f"usage: paintrnn train {' '.join(argv[1:-1])}"), text[:80]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "paintrnn-demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    return out


def test_demo_writes_the_gifs_and_page(demo_dir):
    for kind in FAMILIES:
        path = demo_dir / f"{kind}.gif"
        assert gif_frames(path) > 1
        with Image.open(path) as im:
            first = np.asarray(im.convert("L"))
            im.seek(im.n_frames - 1)
            last = np.asarray(im.convert("L"))
        assert not np.array_equal(first, last), f"{kind}.gif does not move"
    page = (demo_dir / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(f"{kind}.gif" for kind in FAMILIES)
    assert "http://" not in page and "https://" not in page  # self-contained: works offline


def test_demo_page_renders_in_headless_chromium(demo_dir, tmp_path):
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000", "--dump-dom", (demo_dir / "index.html").resolve().as_uri(),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    match = re.search(r'data-loaded="([^"]*)"', out.stdout)
    assert match, "the page's load script did not run: " + out.stdout[:500]
    assert match.group(1) == f"{len(FAMILIES)}/{len(FAMILIES)}", f"images loaded: {match.group(1)}"


def test_tiny_training_recipes_parse_into_valid_configs(tmp_path):
    """``paintrnn demo --train``'s recipes are valid options of each trainer (the runs take minutes: not run here)."""
    from paintrnn.agents.demo import TINY
    from paintrnn.agents.doodle_train import DoodleConfig
    from paintrnn.agents.draw_train import TrainConfig as DrawTrain
    from paintrnn.agents.glimpse_train import Config as GlimpseTrain
    from paintrnn.agents.painter_backprop import BackpropConfig
    from paintrnn.agents.texture_train import TrainConfig as TextureTrain

    from paintrnn.config import parse_config

    classes = {"draw": DrawTrain, "painter": BackpropConfig, "doodler": DoodleConfig, "texture": TextureTrain,
               "glimpse": GlimpseTrain}  # fmt: skip
    assert set(TINY) == set(FAMILIES)
    for kind, (name, options) in TINY.items():
        assert name.split()[0] == {"doodler": "doodle"}.get(kind, kind)
        cfg = parse_config(classes[kind], [*options.split(), str(tmp_path / kind), "--device", "cpu"])
        assert str(tmp_path / kind) in (getattr(cfg, "out", None), getattr(cfg, "run_dir", None))


def test_gif_of_a_whole_image_baseline_is_a_clear_error(tmp_path, capsys):
    from paintrnn.agents.glimpse_train import Config, build_model

    cfg = Config(model="mlp", hidden=16)
    save_checkpoint(tmp_path / "mlp.pt", kind="glimpse", config=cfg, model=build_model(cfg))
    assert main(["gif", str(tmp_path / "mlp.pt"), "--out", str(tmp_path / "x.gif")]) == 1
    assert "whole-image 'mlp' baseline" in capsys.readouterr().err


def _flags(options: dict) -> list[str]:
    """``{"num_envs": 4, "progress": True}`` -> ``["--num-envs", "4", "--progress"]``."""
    argv = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        argv += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return argv


def _tiny_runs() -> dict[str, tuple[list[str], str]]:
    """Each trainer's ``paintrnn train`` options for a run of seconds, and the metric its progress bar shows."""
    from paintrnn.agents.painter_ddpg import DDPGConfig
    from paintrnn.agents.painter_ppo import PPOConfig

    ppo = {**PPOConfig.quick(), "num_envs": 4, "canvas_size": 16, "eval_size": 8, "iters": 2, "log_every": 1}
    return {
        "draw": (["draw", "--preset", "tiny", "--data-source", "sample", "--train-images", "40", "--test-images", "20",
                  "--batch-size", "20", "--epochs", "1", "--iwae-k", "2", "--log-every", "1"], "loss="),
        "texture": (["texture", "--texture", "grass", "--crop", "8", "--batch-size", "2", "--iters", "3",
                     "--log-every", "1", "--sample-size", "8", "--hidden", "6", "--head-hidden", "6",
                     "--components", "3"], "train_bits_per_pixel="),
        "glimpse": (["glimpse", "--data-source", "sample", "--epochs", "1", "--train-limit", "64", "--test-limit",
                     "32", "--hidden", "16", "--glimpses", "2", "--no-gif"], "loss="),
        "painter-backprop": (["painter", "backprop", "--data-source", "sample", "--iters", "2", "--canvas-size", "16",
                              "--hidden", "16", "--width", "4", "--batch-size", "4", "--eval-size", "4",
                              "--log-every", "1"], "loss="),
        "painter-ppo": (["painter", "ppo", *_flags(ppo)], "policy_loss="),
        "painter-ddpg": (["painter", "ddpg", *_flags({**DDPGConfig.quick(), "num_envs": 4, "batch_size": 4,
                                                       "eval_size": 8, "iters": 2, "log_every": 1})], "critic_loss="),
        "painter-gan": (["painter", "gan", *_flags({**ppo, "disc_width": 8})], "disc_loss="),
    }  # fmt: skip


SUMMARY = re.compile(r"^[\w-]+: (\S+=.*) \| run (\S+) \| \d+\.\d min$")
"""The one summary line a trainer ends with: its final metrics, the run folder, the training time."""


@pytest.mark.parametrize("name", list(_tiny_runs()))
def test_every_trainer_shows_its_loss_and_ends_with_one_summary_line(name, tmp_path, capsys):
    argv, shown = _tiny_runs()[name]
    run_dir = tmp_path / name
    assert main(["train", *argv, "--progress", "--threads", "1", "--run-dir", str(run_dir)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    summaries = [line for line in lines if SUMMARY.match(line)]
    assert len(summaries) == 1 and summaries[0] == lines[-1], captured.out
    metrics, folder = SUMMARY.match(lines[-1]).groups()
    assert folder == str(run_dir) and re.search(r"(loss|bits_per_pixel|error_pct|nelbo|mse_\d+|return)=", metrics)
    bar = captured.err.replace("\r", "\n")
    assert re.search(rf"\b{shown}[-\d.e]+", bar), bar[-2000:]  # the progress bar's postfix shows the loss


def test_draw_final_evaluation_is_scaled_to_the_run_stated_and_timed(tmp_path, capsys):
    """A short run's final IWAE bound is scaled to its training (said on stderr and in eval.json), with a progress
    bar and its ETA; ``--final-eval paper`` keeps the paper's evaluation on every test digit."""
    import json

    from paintrnn.agents.draw_train import SCALED_EVAL_MIN_IMAGES, TrainConfig, iwae_plan

    base = ["train", "draw", "--preset", "tiny", "--data-source", "sample", "--train-images", "40", "--test-images",
            "300", "--batch-size", "20", "--epochs", "1", "--threads", "1"]  # fmt: skip
    assert main([*base, "--progress", "--run-dir", str(tmp_path / "scaled")]) == 0
    err = capsys.readouterr().err.replace("\r", "\n")
    report = json.loads((tmp_path / "scaled" / "eval.json").read_text())
    assert report["iwae_images"] == SCALED_EVAL_MIN_IMAGES < report["test_images"] == 300
    assert "scaled to the run's 40 training images" in report["final_eval"] and "--final-eval paper" in err
    assert f"draw final evaluation: -ELBO on 300 test digits, IWAE k=50 on {SCALED_EVAL_MIN_IMAGES} of 300" in err
    assert re.search(r"eval \+ iwae k=50: .*\[\d\d:\d\d<\d\d:\d\d", err), err[-1500:]  # elapsed<ETA
    assert main([*base, "--final-eval", "paper", "--no-progress", "--run-dir", str(tmp_path / "paper")]) == 0
    report = json.loads((tmp_path / "paper" / "eval.json").read_text())
    assert report["iwae_images"] == 300 and "all 300 test digits (--final-eval paper)" in report["final_eval"]
    assert iwae_plan(TrainConfig(), 12 * 60000, 10000)[0] == 10000  # a run of ~12 epochs: the paper's evaluation
    assert iwae_plan(TrainConfig(iwae_images=1000), 40, 10000)[0] == 1000  # as the CPU rows of draw.json


@pytest.mark.parametrize("script", sorted(Path(__file__).parents[1].glob("scripts/train_*.py")), ids=lambda p: p.stem)
def test_training_scripts_are_the_cli_with_one_line_errors(script, monkeypatch, capsys, tmp_path):
    """``python scripts/train_X.py`` is ``paintrnn train X``: the same usage line, and a user's mistake is one
    line on stderr with exit status 1 (an explicit data folder without MNIST, or a bad count), not a traceback."""
    import runpy

    name = script.stem.removeprefix("train_")
    mode = ["backprop"] if name == "painter" else []
    bad = ["--data-dir", str(tmp_path)] if name in ("draw", "glimpse", "reading", "doodle") else ["--iters", "0"]
    if name == "texture":
        bad = ["--texture", str(tmp_path / "missing.png")]
    monkeypatch.setattr(sys, "argv", [str(script), *mode, *bad, "--run-dir", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    err = capsys.readouterr().err
    assert exit_info.value.code in (1, 2), err
    assert err.strip().splitlines()[-1].startswith(f"paintrnn train {name}"), err
    assert "Traceback" not in err


def test_the_console_scripts_run_through_the_paintrnn_command(tmp_path, monkeypatch, capsys):
    """``paintrnn-train-*`` and ``paintrnn-benchmark-*`` report a mistake in one line, as ``paintrnn`` does."""
    import importlib

    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        if name.startswith(("paintrnn-train-", "paintrnn-benchmark-")):
            module, attr = target.split(":")
            assert module == "paintrnn.agents.cli", (name, target)
            kind = "train" if name.startswith("paintrnn-train-") else "bench"
            entry = getattr(importlib.import_module(module), attr)
            assert entry.__doc__ == f"``paintrnn {kind} {name.split('-')[-1]}``", (name, target)
    from paintrnn.agents.cli import train_reading

    monkeypatch.setattr(sys, "argv", ["paintrnn-train-reading", "--data-dir", str(tmp_path), "--data-source", "full",
                                      "--run-dir", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    assert train_reading() == 1
    err = capsys.readouterr().err
    assert err.startswith("paintrnn train reading: error:") and err.count("\n") == 1 and "Traceback" not in err
