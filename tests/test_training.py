import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest
import torch

from paintrnn import training
from paintrnn.config import config_from_dict, parse_config
from paintrnn.training import (
    EMA,
    CheckpointError,
    MetricsLogger,
    NonFiniteLossError,
    check_finite,
    load_checkpoint,
    plot_metrics,
    read_metrics,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)


@dataclass(frozen=True)
class Cfg:
    lr: float = 1e-3
    """Learning rate."""
    steps: int = 10
    """Number of steps."""
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    sizes: tuple[int, int] = (3, 4)
    """Two sizes."""
    fast: bool = False
    """Go fast."""
    out: str | None = None
    """Output folder."""


def test_parse_config_types_defaults_and_help(capsys):
    cfg = parse_config(Cfg, ["--lr", "0.5", "--mode", "b", "--sizes", "5", "6", "--fast", "--out", "x"])
    assert cfg == Cfg(lr=0.5, mode="b", sizes=(5, 6), fast=True, out="x")
    assert parse_config(Cfg, []) == Cfg()
    with pytest.raises(SystemExit):
        parse_config(Cfg, ["--mode", "c"])
    with pytest.raises(SystemExit):
        parse_config(Cfg, ["--help"])
    text = capsys.readouterr().out
    assert "Learning rate. (default: 0.001)" in text and "--no-fast" in text
    assert config_from_dict(Cfg, {"sizes": [1, 2]}).sizes == (1, 2)
    with pytest.raises(ValueError, match="unknown"):
        config_from_dict(Cfg, {"nope": 1})


def test_checkpoint_roundtrip_restores_weights_config_and_rng(tmp_path):
    gen = seed_everything(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "c.pt", kind="toy", config=Cfg(), model=model, optimizer=opt, step=7, generator=gen)
    after = (torch.rand(3), np.random.rand(), torch.rand(2, generator=gen))
    ckpt = load_checkpoint(tmp_path / "c.pt", kind="toy")
    set_rng_state(ckpt["rng"], gen)
    again = (torch.rand(3), np.random.rand(), torch.rand(2, generator=gen))
    assert torch.equal(after[0], again[0]) and after[1] == again[1] and torch.equal(after[2], again[2])
    assert ckpt["step"] == 7 and config_from_dict(Cfg, ckpt["config"]) == Cfg()
    fresh = torch.nn.Linear(3, 2)
    fresh.load_state_dict(ckpt["model"])
    assert torch.equal(fresh.weight, model.weight)
    with pytest.raises(CheckpointError, match="expected 'other'"):
        load_checkpoint(tmp_path / "c.pt", kind="other")


def test_corrupt_missing_and_foreign_checkpoints(tmp_path):
    model = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "c.pt", kind="toy", config=Cfg(), model=model)
    blob = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_atomic_save_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "c.pt", kind="toy", config=Cfg(), model=model, step=1)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("paintrnn.training.os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.pt", kind="toy", config=Cfg(), model=model, step=2)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_metrics_resume_drops_rows_that_will_be_redone(tmp_path):
    log = MetricsLogger(tmp_path / "m.jsonl")
    for s in range(1, 6):
        log.log(s, loss=torch.tensor(1.0 / s), lr=0.1)
    MetricsLogger(tmp_path / "m.jsonl", resume_step=3).log(4, loss=9.0)
    rows = read_metrics(tmp_path / "m.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[-1]["loss"] == 9.0
    plot_metrics(tmp_path / "m.jsonl", tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 1000
    json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])


def test_check_finite():
    check_finite(torch.tensor(1.0), 0)
    with pytest.raises(NonFiniteLossError, match="step 3"):
        check_finite(torch.tensor(float("nan")), 3)


def test_resolve_device_errors_without_cuda():
    from paintrnn.training import resolve_device

    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_two_process_gloo_all_reduce(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        "import torch\nfrom paintrnn.training import setup_distributed, all_reduce_mean, cleanup_distributed\n"
        "info = setup_distributed('cpu')\n"
        "v = all_reduce_mean(torch.tensor([float(info.rank)]))\n"
        "import pathlib, sys\n"
        "out = f'RESULT {info.rank} {info.world_size} {v.item()}'\n"
        "pathlib.Path(sys.argv[1], f'rank{info.rank}.txt').write_text(out)\n"
        "cleanup_distributed()\n"
    )  # one file per rank: the two processes' stdout lines can interleave
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", script, tmp_path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = sorted(p.read_text() for p in tmp_path.glob("rank*.txt"))
    assert results == ["RESULT 0 2 0.5", "RESULT 1 2 0.5"]


def test_keep_freed_memory_takes_effect_on_glibc_linux():
    code = "from paintrnn.training import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert out.stdout.strip() == str(expected)  # a process-wide setting: checked in a child process


def test_ema_follows_the_averaging_rule_and_leaves_the_model_alone():
    model = torch.nn.Linear(3, 2)
    start = [p.detach().clone() for p in model.parameters()]
    ema = EMA(model, decay=0.9)
    assert all(not p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model, step=0)  # early: d = min(0.9, 1 / 10) = 0.1, the average follows closely
    for a, p0 in zip(ema.model.parameters(), start):
        torch.testing.assert_close(a, 0.1 * p0 + 0.9 * (p0 + 1))
    before = [a.clone() for a in ema.model.parameters()]
    wrapped = torch.nn.Module()
    wrapped.module = model  # a DDP-like wrapper is unwrapped
    ema.update(wrapped, step=1000)  # late: d = decay
    for a, b, p in zip(ema.model.parameters(), before, model.parameters()):
        torch.testing.assert_close(a, 0.9 * b + 0.1 * p.detach())
        assert p.requires_grad
    fresh = EMA(torch.nn.Linear(3, 2), decay=0.9)
    fresh.load_state_dict(ema.state_dict())
    for a, b in zip(fresh.model.parameters(), ema.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_synced_clock_reads_the_time_only_after_the_device_has_caught_up(monkeypatch):
    # CUDA queues work: a clock read before synchronising would charge queued training steps to the evaluation
    # that follows them, which draw_train keeps out of the training time.
    events = []
    monkeypatch.setattr(training.torch.cuda, "synchronize", lambda device=None: events.append(("sync", device)))
    monkeypatch.setattr(training.time, "perf_counter", lambda: events.append("clock") or 7.0)
    assert training.synced_clock(torch.device("cuda", 1)) == 7.0
    assert events == [("sync", torch.device("cuda", 1)), "clock"]
    events.clear()
    assert training.synced_clock(torch.device("cpu")) == 7.0
    assert events == ["clock"]  # nothing to wait for on the CPU


def test_bit_flipped_checkpoint_is_refused_by_its_checksum(tmp_path):
    import zipfile

    from paintrnn.training import save_checkpoint

    model = torch.nn.Linear(64, 64)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, kind="toy", config={"a": 1}, model=model)
    assert load_checkpoint(path)["checksum"].startswith("sha256:")
    with zipfile.ZipFile(path) as zf:  # torch stores tensor bytes uncompressed: find the weight's record
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw = bytearray(path.read_bytes())
    raw[offset + 100] ^= 0x40  # one flipped bit inside the weight matrix
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt: its tensors do not match the checksum"):
        load_checkpoint(path)


def test_code_carrying_file_is_refused_without_advising_unsafe_loading(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "paintrnn-checkpoint-v1", "model": Evil()}, path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "refused" in str(exc.value) and "weights_only" not in str(exc.value)
    assert "\n" not in str(exc.value)
