"""One simulator, two Gymnasium faces: a batched core and the single / vector facades written once.

Every environment in :mod:`paintrnn.envs` is a :class:`BatchedEnv`: the state of ``N`` sub-environments
held as torch tensors on one device, stepped all at once (one renderer call for all canvases). Two thin
facades turn any ``BatchedEnv`` into a Gymnasium citizen:

* :class:`SingleEnv` (``gym.Env``) is a batch of one: Python ``float`` rewards, ``bool`` flags, its own
  ``np_random``. ``gym.make(id)`` builds it.
* :class:`NativeVectorEnv` (``gym.vector.VectorEnv``) is a batch of ``N`` with one generator per sub-env,
  seeded as :class:`gymnasium.vector.SyncVectorEnv` seeds its envs (``seed + i``), so both give the same
  observations and rewards. Autoreset modes ``NEXT_STEP`` (default), ``SAME_STEP`` (``final_obs`` /
  ``final_info`` in ``info``, as in Gymnasium 1.x) and ``DISABLED``. ``gym.make_vec(id, num_envs=N)``
  builds it through the id's ``vector_entry_point``; ``max_episode_steps=K`` truncates its episodes at ``K``
  steps as the ``TimeLimit`` of the sync mode does.

Both facades take keyword arguments the way Python functions do: an unknown one raises ``TypeError`` with
Python's own text (``PaintEnv.__init__() got an unexpected keyword argument 'frameskip'``, which clients such
as TorchRL's ``GymEnv`` recognise), followed by the valid ones. ``reset()`` rejects unknown ``options`` keys
(``ValueError``), and a ``reset()`` that raised leaves the env needing a successful one: ``step`` raises
``gymnasium.error.ResetNeeded`` until then.

## Writing a new environment

Subclass :class:`BatchedEnv`, set ``single_observation_space``, ``single_action_space`` (a ``Box`` or a
``MultiDiscrete``), optionally ``action_fields`` (names used in error messages), and implement:

* ``reset_envs(mask, rngs) -> info``: reset the sub-envs where ``mask`` is True, drawing all randomness
  from ``rngs[i]`` (sub-env ``i``'s own generator; unmasked entries may be ``None``);
* ``step_envs(actions) -> (reward, terminated, truncated, info)``: advance every sub-env with validated
  ``actions`` (a tensor on ``device``). It must not draw randomness: a facade may step a sub-env whose
  episode has ended and then reset it, discarding the step (``NEXT_STEP`` autoreset);
* ``observe() -> dict of (N, ...) arrays`` (fresh arrays, never views of the state) and
  ``render_frames() -> (N, H, W, 3) uint8``.

Infos are dicts of NumPy arrays with a leading ``N`` axis; the facades turn them into Python scalars
(single env) or Gymnasium's ``{key, _key}`` vector layout. Then::

    class MyEnv(SingleEnv):
        simulator = MySim

    class MyVectorEnv(NativeVectorEnv):
        simulator = MySim
"""

from __future__ import annotations

import dataclasses
import difflib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from torch import Tensor

Info = dict[str, np.ndarray]
StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, Info]


def check_keywords(where: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise ``TypeError`` for keyword arguments ``given`` to ``where`` (``"PaintEnv.__init__"``) that are not
    ``valid``, with Python's own wording first (``... got an unexpected keyword argument 'x'``), then the valid
    ones (and the closest match, for a typo)."""
    valid = list(valid)
    unknown = [key for key in given if key not in valid]
    if not unknown:
        return
    first, rest = unknown[0], unknown[1:]
    message = f"{where}() got an unexpected keyword argument {first!r}"
    if rest:
        message += f" (and {', '.join(repr(k) for k in rest)})"
    close = difflib.get_close_matches(first, valid, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    raise TypeError(f"{message}; valid keyword arguments: {', '.join(valid)}")


class BatchedEnv(ABC):
    """``num_envs`` sub-environments stepped together, their state as tensors on ``device``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}
    single_observation_space: spaces.Dict
    single_action_space: spaces.Box | spaces.MultiDiscrete
    action_fields: tuple[str, ...] = ()
    """Names of the action components, for error messages (may be empty)."""
    config_class: ClassVar[type | None] = None
    """The dataclass of the simulator's keyword options (None: only ``device``)."""

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The keyword options the simulator takes besides ``num_envs`` and ``render_mode``: ``device`` and the
        fields of :attr:`config_class`."""
        names = tuple(f.name for f in dataclasses.fields(cls.config_class)) if cls.config_class else ()
        return names if "device" in names else ("device", *names)

    @classmethod
    def make_config(cls, options: dict[str, Any]) -> Any:
        """:attr:`config_class` built from the keyword ``options`` of ``__init__``; an unknown keyword is a
        ``TypeError`` naming the closest valid one."""
        check_keywords(f"{cls.__name__}.__init__", options, ("num_envs", "render_mode", *cls.option_names()))
        return cls.config_class(**options)

    def __init__(self, num_envs: int, device: str | torch.device = "cpu", render_mode: str | None = None) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.render_mode = render_mode

    @abstractmethod
    def reset_envs(self, mask: np.ndarray, rngs: Sequence[np.random.Generator | None]) -> Info:
        """Reset the sub-envs where ``mask`` ``(N,)`` is True; return their info (rows of others are ignored)."""

    @abstractmethod
    def step_envs(self, actions: Tensor) -> StepResult:
        """Advance all sub-envs with ``actions (N, ...)``: reward float64, terminated, truncated bool ``(N,)``, info."""

    @abstractmethod
    def observe(self) -> dict[str, np.ndarray]:
        """Current observation of every sub-env, ``{key: (N, ...)}`` arrays owned by the caller."""

    @abstractmethod
    def render_frames(self) -> np.ndarray:
        """RGB frames ``(N, H, W, 3)`` uint8 of every sub-env."""

    def _field(self, index: int) -> str:
        name = self.action_fields[index] if index < len(self.action_fields) else None
        return f"action component {index}" + (f" ({name!r})" if name else "")

    def check_actions(self, actions: Any, batched: bool = True) -> Tensor:
        """Validate actions against ``single_action_space``; return a tensor ``(N, ...)`` on ``device``.

        Box actions must be floating point, finite and within float32's range (they become float32; values
        outside the box are clipped later by the environment); MultiDiscrete actions must be integers inside
        ``[0, nvec)``. Anything else raises a ``ValueError`` naming the problem and the action component.
        ``batched=False`` checks one action and adds the batch axis.
        """
        space = self.single_action_space
        shape = (self.num_envs, *space.shape) if batched else tuple(space.shape)
        if isinstance(actions, Tensor):
            t = actions.detach()
        else:
            arr = np.asarray(actions)
            if arr.dtype == object or arr.dtype.kind in "USV":
                raise ValueError(f"actions must be a numeric array, got dtype {arr.dtype}")
            t = torch.from_numpy(np.ascontiguousarray(arr))
        what = "actions" if batched else "action"
        if tuple(t.shape) != shape:
            raise ValueError(f"{what} must have shape {shape} for {space}, got shape {tuple(t.shape)}")
        if not batched:
            t = t[None]
        if isinstance(space, spaces.Box):
            if not t.is_floating_point():
                raise ValueError(f"{what} for a Box space must be floating point (float32), got dtype {t.dtype}")
            bad = ~torch.isfinite(t).reshape(t.shape[0], -1).all(0)
            if bool(bad.any()):
                raise ValueError(f"{what}: NaN or inf in {self._field(int(bad.nonzero()[0]))}")
            t32 = t.to(device=self.device, dtype=torch.float32)
            if t.dtype == torch.float64:  # finite float64 values beyond float32's range would become inf
                over = ~torch.isfinite(t32).reshape(t.shape[0], -1).all(0)
                if bool(over.any()):
                    i = int(over.nonzero()[0])
                    value = float(t.reshape(t.shape[0], -1)[:, i].abs().max())
                    raise ValueError(
                        f"{what}: {self._field(i)} holds a value of magnitude {value:.3g}, outside float32's range "
                        f"(|x| <= {float(torch.finfo(torch.float32).max):.4g}); actions are float32"
                    )
            return t32
        if isinstance(space, spaces.MultiDiscrete):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise ValueError(f"{what} for a MultiDiscrete space must be integers (int64), got dtype {t.dtype}")
            t = t.to(torch.int64)
            nvec = torch.as_tensor(space.nvec, dtype=torch.int64, device=t.device)
            bad = ((t < 0) | (t >= nvec)).reshape(t.shape[0], -1).any(0)
            if bool(bad.any()):
                i = int(bad.nonzero()[0])
                raise ValueError(f"{what} out of range in {self._field(i)}: must lie in [0, {int(nvec.flatten()[i])})")
            return t.to(self.device)
        raise TypeError(f"unsupported action space {space}")  # pragma: no cover - a subclass error


def _scalar(value: np.ndarray) -> Any:
    """One sub-env's info entry: NumPy scalars become Python scalars, arrays stay arrays."""
    return value.item() if value.ndim == 0 else value


class SingleEnv(gym.Env):
    """A :class:`BatchedEnv` with one sub-environment, as a ``gymnasium.Env``. Subclasses set ``simulator``.

    Keyword arguments go to the simulator (an unknown one raises ``TypeError``). ``reset`` takes no
    ``options`` (unknown keys raise ``ValueError``). ``step`` before a successful ``reset``, or after the
    episode ended, raises ``gymnasium.error.ResetNeeded``.
    """

    simulator: ClassVar[type[BatchedEnv]]
    reset_options: ClassVar[tuple[str, ...]] = ()
    """The keys ``reset(options=...)`` understands."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "simulator" in cls.__dict__:
            cls.metadata = dict(cls.simulator.metadata)  # gym.make reads render modes from the class

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        check_keywords(f"{type(self).__name__}.__init__", options, ("render_mode", *self.simulator.option_names()))
        self.sim = self.simulator(num_envs=1, render_mode=render_mode, **options)
        self.observation_space = self.sim.single_observation_space
        self.action_space = self.sim.single_action_space
        self.render_mode = render_mode
        self._needs_reset = "reset() has not been called yet"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        self._needs_reset = "the last reset() raised an error"  # until this one succeeds
        check_reset_options(type(self).__name__, options, self.reset_options)
        super().reset(seed=seed)
        info = self.sim.reset_envs(np.ones(1, dtype=bool), [self.np_random])
        self._needs_reset = ""
        return self._obs(), {k: _scalar(v[0]) for k, v in info.items()}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if self._needs_reset:
            raise ResetNeeded(f"cannot call step(): {self._needs_reset}; call reset() first")
        actions = self.sim.check_actions(action, batched=False)
        reward, terminated, truncated, info = self.sim.step_envs(actions)
        if terminated[0] or truncated[0]:
            self._needs_reset = "the episode has ended (terminated or truncated)"
        info = {k: _scalar(v[0]) for k, v in info.items()}
        return self._obs(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.sim.render_frames()[0]

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.sim.observe().items()}


def check_reset_options(owner: str, options: dict[str, Any] | None, known: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the keys of ``options`` that ``owner.reset()`` does not know, and the known ones."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise ValueError(f"{owner}.reset(): options must be a dict or None, got {type(options).__name__}")
    unknown = sorted(str(key) for key in options if key not in known)
    if unknown:
        raise ValueError(
            f"{owner}.reset(): unknown option(s) {unknown}; known reset options: {list(known) if known else 'none'}"
        )


def _merge(infos: dict[str, Any], part: Info, mask: np.ndarray) -> dict[str, Any]:
    """Add the rows ``mask`` of ``part`` to vector ``infos`` in Gymnasium's ``{key, _key}`` layout."""
    if not mask.any():
        return infos
    for key, value in part.items():
        if key not in infos:
            infos[key] = np.zeros_like(value)
            infos[f"_{key}"] = np.zeros(len(mask), dtype=bool)
        infos[key][mask] = value[mask]
        infos[f"_{key}"] = infos[f"_{key}"] | mask
    return infos


def parse_autoreset_mode(mode: str | AutoresetMode) -> AutoresetMode:
    """An :class:`AutoresetMode` from itself, its value (``"NextStep"``) or snake case (``"next_step"``)."""
    if isinstance(mode, AutoresetMode):
        return mode
    key = str(mode).replace("_", "").lower()
    for m in AutoresetMode:
        if key in (m.value.lower(), m.name.replace("_", "").lower()):
            return m
    raise ValueError(f"autoreset_mode must be 'next_step', 'same_step' or 'disabled', got {mode!r}")


class NativeVectorEnv(gym.vector.VectorEnv):
    """A :class:`BatchedEnv` with ``num_envs`` sub-environments, as a ``gymnasium.vector.VectorEnv``.

    ``autoreset_mode``: ``"next_step"`` (default), ``"same_step"`` or ``"disabled"`` (or an
    :class:`~gymnasium.vector.AutoresetMode`). ``max_episode_steps``: truncate every episode after this many
    steps (``truncated=True``), as the ``TimeLimit`` wrapper of ``gym.make_vec(..., vectorization_mode="sync")``
    does (``gym.make_vec`` passes its ``max_episode_steps`` here). Actions may be NumPy arrays or torch tensors
    (on any device); observations and rewards are NumPy arrays. ``reset(options=...)`` knows ``reset_mask``.
    """

    simulator: ClassVar[type[BatchedEnv]]
    reset_options: ClassVar[tuple[str, ...]] = ("reset_mask",)
    """The keys ``reset(options=...)`` understands."""

    def __init__(
        self,
        num_envs: int,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        **options: Any,
    ) -> None:
        check_keywords(
            f"{type(self).__name__}.__init__",
            options,
            ("num_envs", "autoreset_mode", "render_mode", "max_episode_steps", *self.simulator.option_names()),
        )
        k = max_episode_steps
        if k is not None and (not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1):
            raise ValueError(f"max_episode_steps must be a positive int or None, got {k!r}")
        self.max_episode_steps = None if k is None else int(k)
        self.autoreset_mode = parse_autoreset_mode(autoreset_mode)
        self.sim = self.simulator(num_envs=num_envs, render_mode=render_mode, **options)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.metadata = {**self.sim.metadata, "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = self.sim.single_observation_space
        self.single_action_space = self.sim.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._seeds: list[int | None] = [None] * num_envs
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._elapsed = np.zeros(num_envs, dtype=np.int64)  # steps of the current episodes (for max_episode_steps)
        self._needs_reset = "before reset()"

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:  # type: ignore[override]
        """One generator per sub-environment (created with random seeds if never seeded)."""
        return tuple(self._rng(i) for i in range(self.num_envs))

    @property
    def np_random_seed(self) -> tuple[int | None, ...]:  # type: ignore[override]
        self.np_random  # noqa: B018 - make sure every generator exists
        return tuple(self._seeds)

    def _rng(self, i: int) -> np.random.Generator:
        if self._rngs[i] is None:
            self._rngs[i], self._seeds[i] = seeding.np_random()
        return self._rngs[i]  # type: ignore[return-value]

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset all sub-envs, or those in ``options["reset_mask"]``; ``seed`` int gives ``seed + i``.

        If it raises, every sub-env needs resetting: ``step`` raises ``ResetNeeded`` until a full ``reset()``
        succeeds.
        """
        started = not self._needs_reset
        self._needs_reset = "after a reset() that raised an error"  # until this one succeeds
        check_reset_options(type(self).__name__, options, self.reset_options)
        n = self.num_envs
        seeds = [None] * n if seed is None else [seed + i for i in range(n)] if isinstance(seed, int) else list(seed)
        if len(seeds) != n:
            raise ValueError(f"a list of seeds must have num_envs={n} entries, got {len(seeds)}")
        mask = np.ones(n, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = options["reset_mask"]
            if not isinstance(mask, np.ndarray) or mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(f"options['reset_mask'] must be a bool NumPy array of shape ({n},), got {mask!r}")
            if not mask.any():
                raise ValueError("options['reset_mask'] must contain at least one True value")
            if not started and not mask.all():
                raise ResetNeeded("reset all sub-environments (without reset_mask) before a partial reset")
        for i in np.flatnonzero(mask):
            if seeds[i] is not None:
                self._rngs[i], self._seeds[i] = seeding.np_random(seeds[i])
        rngs = [self._rng(i) if mask[i] else None for i in range(n)]
        info = _merge({}, self.sim.reset_envs(mask, rngs), mask)
        self._autoreset[mask] = False
        self._elapsed[mask] = 0
        self._needs_reset = ""
        return self.sim.observe(), info

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._needs_reset:
            raise ResetNeeded(f"cannot call step() {self._needs_reset}; call reset() first")
        if self.autoreset_mode == AutoresetMode.DISABLED and self._autoreset.any():
            raise ResetNeeded(
                f"sub-envs {np.flatnonzero(self._autoreset).tolist()} have ended and autoreset is disabled: "
                "reset them with reset(options={'reset_mask': ...}) first"
            )
        actions = self.sim.check_actions(actions)
        reward, terminated, truncated, step_info = self.sim.step_envs(actions)
        self._elapsed += 1
        if self.max_episode_steps is not None:
            truncated = truncated | (self._elapsed >= self.max_episode_steps)
        infos: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._autoreset.any():
            mask = self._autoreset
            reset_info = self.sim.reset_envs(mask, [self._rng(i) if m else None for i, m in enumerate(mask)])
            reward[mask], terminated[mask], truncated[mask] = 0.0, False, False
            self._elapsed[mask] = 0
            _merge(infos, step_info, ~mask)
            _merge(infos, reset_info, mask)
        elif self.autoreset_mode == AutoresetMode.SAME_STEP and (terminated | truncated).any():
            mask = terminated | truncated
            final_obs = self.sim.observe()
            infos["final_obs"] = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(mask):
                infos["final_obs"][i] = {k: v[i] for k, v in final_obs.items()}
            infos["_final_obs"] = mask.copy()
            infos["final_info"] = _merge({}, step_info, mask)
            infos["_final_info"] = mask.copy()
            reset_info = self.sim.reset_envs(mask, [self._rng(i) if m else None for i, m in enumerate(mask)])
            self._elapsed[mask] = 0
            _merge(infos, step_info, ~mask)
            _merge(infos, reset_info, mask)
        else:
            _merge(infos, step_info, np.ones(self.num_envs, dtype=bool))
        self._autoreset = terminated | truncated
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            self._autoreset[:] = False
        return self.sim.observe(), reward, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array":
            return None
        return tuple(self.sim.render_frames())
