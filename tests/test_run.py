"""The run skeleton (paintrnn.run): resume policy, compatibility check, folder lock, finite checkpoints, schedule."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from paintrnn.config import build_parser, parse_config
from paintrnn.run import RunConfig, RunLockedError, config_differences, lr_schedule, start_run
from paintrnn.training import CheckpointError, NonFiniteLossError, load_checkpoint, read_metrics


@dataclass(frozen=True)
class ToyConfig(RunConfig):
    """A toy trainer's config."""

    run_dir: str = "runs/toy"
    iters: int = 6
    """Optimiser steps."""
    lr: float = 0.1
    """Learning rate."""
    gifs: bool = False
    """Write GIFs (may change on resume)."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = RunConfig.RESUME_MAY_CHANGE | {"gifs"}
    DEPRECATED_FLAGS: ClassVar[dict[str, str]] = {**RunConfig.DEPRECATED_FLAGS, "--steps": "--iters"}


def toy_train(cfg: ToyConfig, stop_after: int | None = None) -> torch.nn.Module:
    """A tiny trainer on the skeleton: random regression, a checkpoint every ``checkpoint_every`` iterations."""
    with start_run(cfg, kind="toy") as run:
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
        run.resume(model, opt)
        for it in run.progress(range(run.start, cfg.iters), total=cfg.iters):
            opt.param_groups[0]["lr"] = lr_schedule(it / cfg.iters, cfg.lr, 0.1 * cfg.lr)
            x = torch.randn(8, 3, generator=run.generator)
            loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
            run.check_finite(loss, it)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (it + 1) % cfg.log_every == 0:
                run.log(it + 1, loss=loss.item())
            if (it + 1) % cfg.checkpoint_every == 0 or it + 1 == cfg.iters:
                run.save(it + 1, model, opt)
            if stop_after is not None and it + 1 == stop_after:
                raise KeyboardInterrupt  # a kill right after a checkpoint
        return model


def test_lr_schedule_endpoints_warmup_and_monotone_decay():
    assert lr_schedule(0.0, 1.0, 0.05) == 1.0
    assert math.isclose(lr_schedule(1.0, 1.0, 0.05), 0.05)
    assert math.isclose(lr_schedule(0.5, 1.0, 0.0), 0.5)
    assert math.isclose(lr_schedule(0.05, 2.0, 0.0, warmup_frac=0.1), 1.0)  # half-way up the warm-up
    assert math.isclose(lr_schedule(2.0, 1.0, 0.05), 0.05) and lr_schedule(-1.0, 1.0, 0.05) == 1.0  # clipped
    values = [lr_schedule(i / 50, 1.0, 0.1) for i in range(51)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_resume_after_kill_is_exact(tmp_path):
    full = toy_train(ToyConfig(run_dir=str(tmp_path / "a"), checkpoint_every=2, log_every=1, progress=False))
    cfg = ToyConfig(run_dir=str(tmp_path / "b"), checkpoint_every=2, log_every=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        toy_train(cfg, stop_after=4)
    resumed = toy_train(cfg)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    rows = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # lines past the checkpoint were dropped, then redone
    assert all("minutes" in r for r in rows)  # the one time key
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["run_config"]["iters"] == 6 and "elapsed_s" in ckpt["extra"]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["run_dir"] == str(tmp_path / "b")


def test_changed_settings_are_refused_with_the_list_unless_forced(tmp_path):
    cfg = ToyConfig(run_dir=str(tmp_path), checkpoint_every=2, progress=False)
    toy_train(dataclasses.replace(cfg, iters=4))
    with pytest.raises(CheckpointError, match=r"lr: 0\.1 -> 0\.2; iters: 4 -> 6|iters: 4 -> 6; lr: 0\.1 -> 0\.2"):
        toy_train(dataclasses.replace(cfg, lr=0.2))
    toy_train(dataclasses.replace(cfg, iters=4, gifs=True, threads=2, progress=False))  # allowed changes
    before = load_checkpoint(tmp_path / "checkpoint.pt")["step"]
    toy_train(dataclasses.replace(cfg, resume="force"))  # continues from step 4 to 6 despite the change
    assert before == 4 and load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 6


def test_moved_run_folder_resumes(tmp_path):
    cfg = ToyConfig(run_dir=str(tmp_path / "a"), checkpoint_every=2, progress=False)
    with pytest.raises(KeyboardInterrupt):
        toy_train(cfg, stop_after=2)
    os.rename(tmp_path / "a", tmp_path / "moved")
    with start_run(dataclasses.replace(cfg, run_dir=str(tmp_path / "moved")), kind="toy") as run:
        assert run.resume(torch.nn.Linear(3, 1)) is not None and run.start == 2


def test_resume_must_and_never(tmp_path):
    with pytest.raises(CheckpointError, match="--resume must: there is no checkpoint"):
        toy_train(ToyConfig(run_dir=str(tmp_path), resume="must", progress=False))
    toy_train(ToyConfig(run_dir=str(tmp_path), iters=2, progress=False))
    with start_run(ToyConfig(run_dir=str(tmp_path), resume="never", progress=False), kind="toy") as run:
        assert run.resume(torch.nn.Linear(3, 1)) is None and run.start == 0
    with start_run(ToyConfig(run_dir=str(tmp_path), iters=2), kind="other") as run:  # another kind of model
        with pytest.raises(CheckpointError, match="holds a 'toy' model"):
            run.resume(torch.nn.Linear(3, 1))


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    toy_train(ToyConfig(run_dir=str(tmp_path), iters=2, progress=False))
    good = load_checkpoint(tmp_path / "checkpoint.pt")
    with start_run(ToyConfig(run_dir=str(tmp_path), iters=4, resume="force"), kind="toy") as run:
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.Adam(model.parameters())
        run.resume(model, opt)
        with torch.no_grad():
            model.weight[0, 1] = float("inf")
        with pytest.raises(NonFiniteLossError, match="weight 'weight' is not finite at step 3"):
            run.save(3, model, opt)
        with torch.no_grad():
            model.weight.zero_()
        critic = torch.nn.Linear(2, 2)
        with torch.no_grad():
            critic.bias.fill_(float("nan"))
        with pytest.raises(NonFiniteLossError, match="critic weight 'bias'"):
            run.save(3, model, opt, modules={"critic": critic})
        opt.state[model.weight]["exp_avg"] = torch.full_like(model.weight, float("nan"))
        with pytest.raises(NonFiniteLossError, match="optimiser state is not finite"):
            run.save(3, model, opt)
    kept = load_checkpoint(tmp_path / "checkpoint.pt")
    assert kept["step"] == good["step"] == 2
    assert torch.equal(kept["model"]["weight"], good["model"]["weight"])
    assert not list(tmp_path.glob(".checkpoint.pt.*"))  # no temporary file left behind


def test_nan_loss_stops_training(tmp_path):
    with pytest.raises(NonFiniteLossError, match="loss became"):
        toy_train(ToyConfig(run_dir=str(tmp_path), lr=1e30, iters=40, progress=False))


HOLD = """
import sys, time
from paintrnn.run import RunConfig, start_run
with start_run(RunConfig(run_dir=sys.argv[1]), kind="toy"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_process_in_one_run_folder_is_refused_and_a_dead_lock_is_stale(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"in use by pid {proc.pid}"):
            with start_run(RunConfig(run_dir=str(tmp_path)), kind="toy"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)  # killed while holding the lock: the OS releases it
        proc.wait()
    deadline = time.time() + 10
    while True:
        try:
            with start_run(RunConfig(run_dir=str(tmp_path)), kind="toy") as run:
                assert run.is_main
            break
        except RunLockedError:  # pragma: no cover - the kernel releases the lock at process exit
            assert time.time() < deadline
            time.sleep(0.1)


def test_deprecated_flags_are_renamed_with_a_message(capsys):
    cfg = parse_config(ToyConfig, ["--out", "x", "--steps=9", "--no-resume", "--ckpt-every", "3"])
    assert (cfg.run_dir, cfg.iters, cfg.resume, cfg.checkpoint_every) == ("x", 9, "never", 3)
    err = capsys.readouterr().err
    for old, new in [("--out", "--run-dir"), ("--steps", "--iters"), ("--no-resume", "--resume never")]:
        assert f"{old} is deprecated, use {new}" in err


def test_invalid_values_are_usage_errors_not_tracebacks(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_config(ToyConfig, ["--log-every", "0"])
    assert exc.value.code == 2
    assert "--log-every must be >= 1, got 0" in capsys.readouterr().err


def test_base_options_come_first_in_help():
    flags = [a.option_strings[0] for a in build_parser(ToyConfig)._actions if a.option_strings][1:]
    base = ["--" + f.name.replace("_", "-") for f in dataclasses.fields(RunConfig)]
    assert flags[: len(base)] == base


def test_config_differences_ignore_allowed_fields():
    cfg = ToyConfig(run_dir="a", gifs=True)
    saved = {**dataclasses.asdict(ToyConfig(run_dir="b")), "lr": 0.5}
    assert config_differences(cfg, saved) == ["lr: 0.5 -> 0.1"]


def test_stale_temporary_files_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "keep.txt").write_text("user file")
    with start_run(RunConfig(run_dir=str(tmp_path)), kind="toy"):
        pass
    assert not list(tmp_path.glob(".*.tmp")) and (tmp_path / "keep.txt").is_file()


def test_torn_last_metrics_line_does_not_block_resume(tmp_path):
    cfg = ToyConfig(run_dir=str(tmp_path), checkpoint_every=2, log_every=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        toy_train(cfg, stop_after=4)
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 5, "lo')  # killed in the middle of a line
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]
    toy_train(cfg)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_paused_time_is_not_training_time(tmp_path):
    with start_run(RunConfig(run_dir=str(tmp_path)), kind="toy") as run:
        run.resume()
        with run.paused():
            before = run.elapsed
            time.sleep(0.2)
            assert run.elapsed == before  # frozen while paused
            with run.paused():  # nested pauses are one pause
                time.sleep(0.05)
        assert run.elapsed < before + 0.1
        row = run.log(1, loss=1.0)
        assert row["minutes"] * 60 < before + 0.1
        bar = run.progress(range(3), total=3)
        bar.set_postfix(loss=1.0)  # a real tqdm bar
        assert list(bar) == [0, 1, 2]
