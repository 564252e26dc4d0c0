"""``paintrnn paint`` / ``paintrnn render`` (paint_main / render_main), run in an empty folder, offline."""

import json

import numpy as np
import pytest
from paintrnn.agents.paint_cli import paint_main, render_main
from PIL import Image

FAST = ["--iters", "3", "--device", "cpu", "--backend", "eager", "--threads", "1", "--no-progress"]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    img = (rng.random((24, 36, 3)) * 255).astype(np.uint8)
    img[6:18, 10:26] = (250, 30, 30)
    Image.fromarray(img).save(tmp_path / "photo.jpg")
    return tmp_path


def test_paint_writes_the_four_files_and_render_rerenders(folder, capsys):
    assert paint_main(["photo.jpg", "--strokes", "40", "--size", "48", *FAST]) == 0
    out = capsys.readouterr().out
    assert "paintrnn paint: 40 strokes (agent+optimize, round), 48x32 px, PSNR" in out
    files = sorted(p.name for p in (folder / "painting").iterdir())
    assert files == ["painting.gif", "painting.png", "painting.svg", "strokes.json"]
    assert Image.open(folder / "painting" / "painting.png").size == (48, 32)
    assert len(json.loads((folder / "painting" / "strokes.json").read_text())["strokes"]) == 40
    assert render_main(["painting/strokes.json", "--size", "96", "--out", "big.png", "--threads", "1"]) == 0
    assert Image.open(folder / "big.png").size == (96, 64)
    assert "paintrnn render: 40 strokes -> big.png (96x64 px" in capsys.readouterr().out
    assert render_main(["painting/strokes.json", "--size", "20"]) == 0  # default name beside the strokes
    assert Image.open(folder / "painting" / "painting_20.png").size == (20, 13)


def test_paint_options_and_out_folder(folder):
    args = ["photo.jpg", "--strokes", "12", "--size", "24", "--brush", "marker", "--out", "deep/er", *FAST]
    assert paint_main(args) == 0
    data = json.loads((folder / "deep" / "er" / "strokes.json").read_text())
    assert data["brush"] == "marker" and data["width"] == 24
    assert all(s[8] == 1.0 for s in data["strokes"])  # opaque brush


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.png"], "no such image file: missing.png"),
        (["photo.jpg", "--strokes", "0"], "strokes must be an integer in [1,"),
        (["photo.jpg", "--brush", "crayon"], "unknown brush 'crayon'"),
        (["photo.jpg", "--method", "magic"], "unknown method 'magic'"),
        (["photo.jpg", "--method", "agent"], "needs the colour painter"),  # as if it were not installed
        (["photo.jpg", "--method", "agent+optimize"], "needs the colour painter"),
        (["notes.txt"], "cannot read notes.txt as an image"),
    ],
)
def test_paint_errors_are_one_line(folder, capsys, monkeypatch, argv, message):
    monkeypatch.setattr("paintrnn.painting.AGENT_MODEL", "no-such-model")  # the colour painter not installed
    (folder / "notes.txt").write_text("hello")
    assert paint_main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (folder / "painting").exists()


def test_render_errors_are_one_line(folder, capsys):
    assert render_main(["nope.json"]) == 2
    (folder / "bad.json").write_text('{"format": "something else"}')
    assert render_main(["bad.json"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "paintrnn render: error: no such strokes file: nope.json",
        "paintrnn render: error: bad.json is not a paintrnn strokes file (format 'paintrnn-strokes')",
    ]
