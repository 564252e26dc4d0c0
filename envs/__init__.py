"""Gymnasium canvas environments (installed as ``paintrnn.envs``)."""

if __name__ != "paintrnn.envs":  # pragma: no cover - guard against `import envs` from the repo root
    raise ImportError(
        f"this folder is the package 'paintrnn.envs' and must not be imported as {__name__!r}; "
        "install paintrnn (pip install -e .) and use `import paintrnn.envs`."
    )

from gymnasium.envs.registration import register, registry

_ENVS = (  # (id, module, class prefix): entry points are <prefix>Env and <prefix>VectorEnv
    ("paintrnn/Paint-v0", "paintrnn.envs.paint", "Paint"),
    ("paintrnn/PaintGrid-v0", "paintrnn.envs.paint_grid", "PaintGrid"),
    ("paintrnn/Draw-v0", "paintrnn.envs.draw_env", "Draw"),
    ("paintrnn/Glimpse-v0", "paintrnn.envs.glimpse", "Glimpse"),
    ("paintrnn/Read-v0", "paintrnn.envs.read", "Read"),
)
ENV_IDS = tuple(env_id for env_id, _, _ in _ENVS)
"""Every environment id registered by ``import paintrnn.envs``."""
CANVAS_ENV_IDS = ENV_IDS[:3]
"""The painting environments (a canvas, a target, stroke or patch actions); Glimpse-v0 reads instead."""


def _register() -> None:
    for env_id, module, prefix in _ENVS:
        if env_id not in registry:
            register(env_id, f"{module}:{prefix}Env", vector_entry_point=f"{module}:{prefix}VectorEnv")


_register()
