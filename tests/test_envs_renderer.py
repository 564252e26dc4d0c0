"""The stroke envs' renderer policy (paintrnn.envs.renderer): eager at once, a background compile for big batches
that steps never wait for, an announced foreground compile, and the benchmark's defaults-first report."""

import threading
import time
import warnings

import gymnasium as gym
import numpy as np
import paintrnn.envs  # noqa: F401 - registers the ids
import pytest
import torch
from paintrnn.envs import renderer
from paintrnn.envs.renderer import StrokeRenderer

from paintrnn.render import render_strokes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_vec(n, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make_vec("paintrnn/Paint-v0", n, **kwargs)


@pytest.fixture
def fresh_compiles(monkeypatch):
    """An empty registry of background compiles (a compile is once per process) and a low threshold: 4 envs of
    16 x 16 px count as big, and compile after 3 eager steps."""
    monkeypatch.setattr(renderer, "_COMPILES", {})
    monkeypatch.setattr(renderer, "_ANNOUNCED", set())
    monkeypatch.setattr(renderer, "COMPILE_PIXELS", 4 * 16 * 16)
    monkeypatch.setattr(renderer, "COMPILE_AFTER_PIXELS", 3 * 4 * 16 * 16)


@pytest.fixture
def calls(monkeypatch):
    """Record the backend of every renderer call (and where), rendering eagerly: no real compile."""
    log = []
    gate = threading.Event()

    def fake(strokes, canvas, *, mode, backend):
        log.append((backend, threading.current_thread().name, torch.is_grad_enabled()))
        if threading.current_thread().name.startswith("paintrnn"):
            gate.wait(30)  # the "compile" lasts until the test opens the gate
        return render_strokes(strokes, canvas, mode=mode, backend="eager")

    monkeypatch.setattr(renderer, "render_strokes", fake)
    return log, gate


def test_auto_renders_eagerly_compiles_big_batches_in_the_background_and_switches_when_ready(
    fresh_compiles, calls, capfd
):
    log, gate = calls
    env = make_vec(4, height=16, width=16, max_steps=50, target=None, reward="none")
    sim = env.unwrapped.sim
    assert sim.config.render_backend == "auto" and sim.renderer.backend == "auto"
    assert not sim.renderer.settled  # no call yet: whether it will compile is still open
    env.reset(seed=0)
    for _ in range(6):  # the compile starts after 3 steps; the next ones do not wait for it
        start = time.perf_counter()
        env.step(env.action_space.sample())
        assert time.perf_counter() - start < 5
    assert not sim.renderer.compiled and sim.renderer.compile is not None and not sim.renderer.settled
    main = [c for c in log if not c[1].startswith("paintrnn")]
    assert [c[0] for c in main] == ["eager"] * 6 and not any(c[2] for c in main)  # no gradients either
    gate.set()
    assert sim.renderer.wait_compiled(30) and sim.renderer.settled
    env.step(env.action_space.sample())
    assert log[-1][:2] == ("compiled", "MainThread")
    background = [c for c in log if c[1].startswith("paintrnn")]
    assert [(c[0], c[2]) for c in background] == [("compiled", False)]  # one warm-up call, under no_grad
    err = capfd.readouterr().err
    assert err.count("compiling the stroke renderer in the background for 4 canvas(es) of 1x16x16 px") == 1
    other = make_vec(4, height=16, width=16, max_steps=50, target=None, reward="none")  # the same call shape:
    other.reset(seed=0)
    for _ in range(4):
        other.step(other.action_space.sample())
    assert other.unwrapped.sim.renderer.compiled  # reuses this process's compile, without a second announcement
    assert "compiling" not in capfd.readouterr().err


@pytest.mark.parametrize("options", [{"render_backend": "eager"}, {"height": 8, "width": 8}, {"num_envs": 1}])
def test_eager_backend_and_small_batches_never_compile(fresh_compiles, calls, options):
    log, _ = calls
    n = options.pop("num_envs", 4)
    env = make_vec(n, **{"height": 16, "width": 16, "target": None, "reward": "none", **options})
    env.reset(seed=0)
    for _ in range(8):
        env.step(env.action_space.sample())
    assert env.unwrapped.sim.renderer.compile is None and {c[0] for c in log} == {"eager"}
    assert env.unwrapped.sim.renderer.settled


def test_compiled_backend_compiles_in_the_foreground_and_says_so_once(fresh_compiles, calls, capfd):
    log, gate = calls
    gate.set()
    env = make_vec(2, height=16, width=16, render_backend="compiled", target=None, reward="none")
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    assert [c[:2] for c in log] == [("compiled", "MainThread")] * 3
    assert capfd.readouterr().err.count("render_backend='compiled'; torch.compile: this step takes") == 1


def test_default_vector_env_first_step_is_eager_and_quick():
    env = make_vec(64)  # every default: 64 x 64 px, MNIST targets, render_backend="auto"
    env.reset(seed=0)
    start = time.perf_counter()
    env.step(env.action_space.sample())
    assert time.perf_counter() - start < 2.0
    assert env.unwrapped.sim.renderer.compile is None  # no compile before the env has proved busy


def test_renderer_rejects_unknown_backends():
    with pytest.raises(ValueError, match="render_backend"):
        StrokeRenderer("fast")
    with pytest.raises(ValueError, match="render_backend"):
        make_vec(2, render_backend="fast")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's own
def test_real_background_compile_switches_without_a_recompile_and_matches_eager(fresh_compiles):
    """torch.compile for real (seconds to a minute of CPU): after the background warm-up, the env's own compiled
    steps hit the compiled code (no new frame compiled on the main thread) and paint what eager paints."""
    from torch._dynamo.utils import counters

    options = {"height": 16, "width": 16, "max_steps": 50, "strokes_per_step": 2}
    auto, eager = make_vec(4, **options), make_vec(4, render_backend="eager", **options)
    auto.reset(seed=0), eager.reset(seed=0)
    auto.action_space.seed(0)
    steps = 0
    while not auto.unwrapped.sim.renderer.compiled:
        actions = auto.action_space.sample()
        a, b = auto.step(actions), eager.step(actions)
        assert np.array_equal(a[0]["canvas"], b[0]["canvas"])  # eager until then, bit for bit
        steps += 1
        if auto.unwrapped.sim.renderer.compile is not None:
            assert auto.unwrapped.sim.renderer.wait_compiled(600)
    assert steps >= 2 and auto.unwrapped.sim.renderer.compile.error is None  # 2 steps of 2 x 4 x 16 x 16 px
    frames = counters["frames"]["total"]
    for _ in range(5):
        actions = auto.action_space.sample()
        a, b = auto.step(actions), eager.step(actions)
        assert np.abs(a[0]["canvas"].astype(int) - b[0]["canvas"]).max() <= 1
        np.testing.assert_allclose(a[1], b[1], atol=1e-4)
    assert counters["frames"]["total"] == frames, "the main thread recompiled"


def test_benchmark_reports_the_defaults_row_first_with_first_step_seconds_and_both_targets():
    from paintrnn.envs.benchmark import BenchmarkConfig, format_table, run

    result = run(BenchmarkConfig(quick=True, size=16))  # 16 px: below the compile threshold, a quick smoke run
    first = result["rows"][0]
    assert (first["env"], first["setup"], first["num_envs"]) == ("paintrnn/Paint-v0", "native vector env", 64)
    assert first["options"] == {"height": 16, "width": 16} and first["render_backend"] == "auto"
    assert all(r["first_step_s"] > 0 and r["env_steps_per_s"] > 0 for r in result["rows"])
    names = [t["name"] for t in result["targets"]]
    assert sum("default arguments" in n for n in names) == 3 and sum("first step" in n for n in names) == 3
    assert {t["op"] for t in result["targets"]} == {">=", "<="}
    assert any(r["setup"] == "native vector env (eager)" for r in result["rows"])
    assert "vs sync64" in format_table(result)


def test_episode_export_renders_eagerly_never_stalling_on_a_compile(monkeypatch):
    """The greedy demo (256 candidates a step) and the re-rendering are big single calls: the renderer's own
    "auto" would stop them for a torch.compile of tens of seconds."""
    from paintrnn.envs import episode as episode_module

    backends = []

    def spy(*args, **kwargs):
        backends.append(kwargs.get("backend", "auto"))
        return render_strokes(*args, **kwargs)

    monkeypatch.setattr(episode_module, "render_strokes", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("paintrnn/Paint-v0", height=32, width=32, max_steps=2)
    played = episode_module.play_episode(env, episode_module.greedy_paint_policy(env, 0, candidates=64), seed=0)
    episode_module.rerender(played, 128, 128)
    assert backends == ["eager"] * 3
