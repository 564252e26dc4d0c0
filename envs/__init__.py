"""Gymnasium canvas environments (installed as ``paintrnn.envs``)."""

if __name__ != "paintrnn.envs":  # pragma: no cover - guard against `import envs` from the repo root
    raise ImportError(
        f"this folder is the package 'paintrnn.envs' and must not be imported as {__name__!r}; "
        "install paintrnn (pip install -e .) and use `import paintrnn.envs`."
    )
