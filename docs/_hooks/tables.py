"""MkDocs hook: generated tables, so options and benchmark numbers are never typed by hand.

A page asks for a table with an HTML comment; :func:`on_page_markdown` replaces it before rendering:

* ``<!-- options: paintrnn.envs.paint:PaintConfig -->``: one row per field of a config dataclass (keyword
  argument, type, default, the docstring under the field from :func:`paintrnn.config.field_docs`).
  ``<!-- flags: MODULE:CLASS -->`` names the fields as command-line flags instead; a subclass of
  :class:`paintrnn.run.RunConfig` always gets flags, and its table leaves out the shared run options it
  inherits unchanged (they are listed once, by ``<!-- flags: paintrnn.run:RunConfig -->``).
* ``<!-- results: draw -->``: the ``targets`` of ``docs/results/draw.json`` (name, value, op, target, met).
* ``<!-- rows: NAME [KEY] [if EXPR] ... -->``: rows of ``docs/results/NAME.json`` (the list or dict under
  KEY, default ``rows``; rows for which the Python expression EXPR over ``r`` is true; ``NAME1,NAME2`` joins
  several files, each row's file name in its key ``_results``). Each further line is
  a column ``header | spec | format``: ``spec`` is a key of the row or a Python expression over ``r`` (the
  row), ``rows`` (all rows) and ``find(**fields)`` (the first row with those values); ``format`` is a
  Python format spec (``.2f``, ``.1%``, ``,.0f``), default: numbers to 4 significant digits.

A marker that cannot be rendered stops the build with an error naming the page.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import operator
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from mkdocs.exceptions import PluginError

MARKER = re.compile(r"<!--\s*(options|flags|results|rows):\s*(.*?)\s*-->", re.DOTALL)
OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
RUN_OPTIONS_PAGE = "cli.md"
"""The page that lists the shared run options (``<!-- flags: paintrnn.run:RunConfig -->``)."""


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"])
    src = page.file.src_uri

    def replace(match: re.Match) -> str:
        kind, arg = match.group(1), match.group(2)
        try:
            if kind in ("options", "flags"):
                return options_table(arg, flags=kind == "flags", page_uri=src)
            if kind == "results":
                return targets_table(load_results(docs_dir, arg))
            return rows_table(docs_dir, arg)
        except Exception as exc:  # any failure names the page and the marker
            raise PluginError(f"{src}: cannot render <!-- {kind}: {arg.splitlines()[0]} -->: {exc}") from exc

    return MARKER.sub(replace, markdown)


# ---- config dataclasses ----------------------------------------------------------------------------------


def import_object(path: str) -> Any:
    """``"package.module:Name"`` -> the object."""
    module, sep, name = path.strip().partition(":")
    if not sep or not name:
        raise ValueError(f"expected MODULE:CLASS, got {path!r}")
    return getattr(importlib.import_module(module), name)


def type_name(tp: Any) -> str:
    """A type hint as a reader writes it: ``int | None``, ``'auto' | 'must'``, ``tuple[float, float]``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    if tp is type(None):
        return "None"
    if tp is Ellipsis:
        return "..."
    return getattr(tp, "__name__", str(tp))


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def code(text: str) -> str:
    """``text`` as an inline code span inside a table cell (Python-Markdown keeps pipes in code spans)."""
    text = text.replace("\n", " ")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def run_config_class() -> type | None:
    try:
        return importlib.import_module("paintrnn.run").RunConfig
    except (ImportError, AttributeError):
        return None


def flag_name(name: str, tp: Any) -> str:
    flag = "--" + name.replace("_", "-")
    return f"{flag}, --no-{flag[2:]}" if tp is bool else flag


def relative_link(page_uri: str, target: str) -> str:
    depth = page_uri.count("/")
    return "../" * depth + target


def options_table(path: str, flags: bool, page_uri: str = "index.md") -> str:
    """A markdown table of the fields of the config dataclass at ``path`` (``module:Class``)."""
    from paintrnn.config import field_docs

    cls = import_object(path)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{path} is not a dataclass")
    base = run_config_class()
    is_run = base is not None and issubclass(cls, base)
    flags = flags or is_run
    inherited: set[str] = set()
    if is_run and cls is not base:
        base_defaults = {f.name: field_default(f) for f in dataclasses.fields(base)}
        inherited = {
            f.name
            for f in dataclasses.fields(cls)
            if f.name in base_defaults and field_default(f) == base_defaults[f.name]
        }
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    head = "| flag | type | default | description |" if flags else "| argument | type | default | description |"
    lines = [head, "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if not f.init or f.name in inherited:
            continue
        default = field_default(f)
        shown = "required" if default is dataclasses.MISSING else code(repr(default))
        name = flag_name(f.name, hints[f.name]) if flags else f.name
        lines.append(f"| {code(name)} | {code(type_name(hints[f.name]))} | {shown} | {cell(docs.get(f.name, ''))} |")
    notes = []
    if inherited:
        link = relative_link(page_uri, RUN_OPTIONS_PAGE) + "#run-options"
        notes.append(f"Plus the [run options]({link}) every trainer shares.")
    renames = dict(getattr(cls, "DEPRECATED_FLAGS", {}) or {})
    if is_run and cls is not base:
        renames = {k: v for k, v in renames.items() if base.DEPRECATED_FLAGS.get(k) != v}  # type: ignore[union-attr]
    if flags and renames:
        pairs = ", ".join(f"`{old}` (now `{new}`)" for old, new in renames.items())
        notes.append(f"Old flags still accepted, with a deprecation warning: {pairs}.")
    return "\n".join(lines) + ("\n\n" + " ".join(notes) if notes else "") + "\n"


# ---- benchmark results ------------------------------------------------------------------------------------


def load_results(docs_dir: Path, name: str) -> dict:
    path = docs_dir / "results" / f"{name.strip()}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results file {path}")
    return json.loads(path.read_text())


def number(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format(value, spec or ".4g")
    if isinstance(value, list | tuple):
        return ", ".join(number(v, spec) for v in value)
    return format(str(value), spec)


def targets_table(data: dict) -> str:
    """The ``targets`` of a results file: name, value, op, target, met."""
    targets = data.get("targets")
    if not targets:
        raise ValueError("the results file has no targets")
    lines = ["| target | value | op | goal | met |", "|---|---|---|---|---|"]
    for t in targets:
        met = OPS[t["op"]](t["value"], t["target"])
        note = f" ({t['note']})" if t.get("note") else ""
        lines.append(
            f"| {cell(t['name'] + note)} | {number(t['value'])} | {cell(t['op'])} | {number(t['target'])} | "
            f"{'met' if met else '**missed**'} |"
        )
    return "\n".join(lines) + "\n"


def rows_table(docs_dir: Path, spec: str) -> str:
    """Rows of a results file as a table; see the module docstring for the marker's layout."""
    first, *columns = [line.strip() for line in spec.strip().splitlines() if line.strip()]
    head, _, condition = first.partition(" if ")
    names, *key = head.split()
    all_rows = []
    for name in names.split(","):
        picked = load_results(docs_dir, name)[key[0] if key else "rows"]
        all_rows += [{**r, "_results": name} for r in ([picked] if isinstance(picked, dict) else picked)]

    def find(**fields: Any) -> dict:
        for r in all_rows:
            if all(r.get(k) == v for k, v in fields.items()):
                return r
        raise KeyError(f"no row with {fields}")

    def value(r: dict, expr: str) -> Any:
        if expr.isidentifier():
            return r.get(expr)
        return eval(expr, {"__builtins__": __builtins__}, {"r": r, "rows": all_rows, "find": find})  # noqa: S307

    rows = [r for r in all_rows if value(r, condition)] if condition else all_rows
    if not rows:
        raise ValueError("no rows selected")
    cols = []
    for c in columns:
        parts = [p.strip() for p in c.split(" | ")]
        if len(parts) not in (2, 3):
            raise ValueError(f"a column is 'header | key or expression [| format]', got {c!r}")
        cols.append((parts[0], parts[1], parts[2] if len(parts) == 3 else ""))
    if not cols:
        raise ValueError("no columns given")
    lines = ["| " + " | ".join(h for h, _, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(cell(number(value(r, e), f)) for _, e, f in cols) + " |")
    return "\n".join(lines) + "\n"
