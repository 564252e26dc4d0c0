"""Recurrent drawing agents (installed as ``paintrnn.agents``)."""

if __name__ != "paintrnn.agents":  # pragma: no cover - guard against `import agents` from the repo root
    raise ImportError(
        f"this folder is the package 'paintrnn.agents' and must not be imported as {__name__!r}; "
        "install paintrnn (pip install -e .) and use `import paintrnn.agents`."
    )
