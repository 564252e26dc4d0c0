"""The front door: the ``paintrnn`` command, the shipped checkpoints, the demo and its page in a real browser."""

from __future__ import annotations

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


def test_gif_and_sample_for_every_shipped_kind(tmp_path):
    threads = torch.get_num_threads()
    for kind in FAMILIES:  # by name
        out = tmp_path / f"{kind}.gif"
        assert main(["gif", kind, "--out", str(out), "--n", "2"]) == 0
        assert gif_frames(out) > 1
    assert torch.get_num_threads() == threads  # --threads 1 held only during the command
    for kind in ("draw", "painter", "texture"):
        png = tmp_path / f"{kind}.png"
        assert main(["sample", str(checkpoint_path(kind)), "--out", str(png), "--n", "4"]) == 0  # by path
        image = np.asarray(Image.open(png))
        assert image.ndim >= 2 and image.std() > 0  # not a blank picture
    with pytest.raises(ValueError, match="no sample grid"):
        main(["sample", "glimpse", "--out", str(tmp_path / "g.png")])


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


def test_bad_counts_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="must be >= 1"):
        main(["gif", "texture", "--out", str(tmp_path / "t.gif"), "--n", "0"])
    with pytest.raises(ValueError, match="must be >= 1"):
        main(["sample", "draw", "--out", str(tmp_path / "d.png"), "--n", "-3"])


def test_gif_of_a_foreign_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        main(["gif", str(bad)])
    with pytest.raises(ValueError, match="unknown model 'unicorn'"):
        main(["gif", "unicorn"])
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        main(["sample", str(tmp_path / "missing.pt")])


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
    from paintrnn.agents.draw_train import TrainConfig as DrawTrain
    from paintrnn.agents.glimpse_train import Config as GlimpseTrain
    from paintrnn.agents.painter_backprop import BackpropConfig
    from paintrnn.agents.texture_train import TrainConfig as TextureTrain

    from paintrnn.config import parse_config

    classes = {"draw": DrawTrain, "painter": BackpropConfig, "texture": TextureTrain, "glimpse": GlimpseTrain}
    assert set(TINY) == set(FAMILIES)
    for kind, (name, options) in TINY.items():
        assert name.split()[0] == kind
        cfg = parse_config(classes[kind], [*options.split(), str(tmp_path / kind), "--device", "cpu"])
        assert str(tmp_path / kind) in (getattr(cfg, "out", None), getattr(cfg, "run_dir", None))


def test_gif_of_a_whole_image_baseline_is_a_clear_error(tmp_path):
    from paintrnn.agents.glimpse_train import Config, build_model

    cfg = Config(model="mlp", hidden=16)
    save_checkpoint(tmp_path / "mlp.pt", kind="glimpse", config=cfg, model=build_model(cfg))
    with pytest.raises(ValueError, match="whole-image 'mlp' baseline"):
        main(["gif", str(tmp_path / "mlp.pt"), "--out", str(tmp_path / "x.gif")])
