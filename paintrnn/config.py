"""Command lines from typed, frozen dataclasses.

A training configuration is a frozen dataclass whose fields each carry a docstring (a string literal on
the line after the field, as in CleanRL's ``Args``). :func:`parse_config` turns it into an argparse
command line whose ``--help`` lists every option with its type, default and docstring::

    @dataclass(frozen=True)
    class Config:
        lr: float = 3e-4
        \"\"\"Adam learning rate.\"\"\"

    cfg = parse_config(Config, ["--lr", "1e-3"])

Numbers are checked at parse time by one convention (:func:`lower_bound`): every integer field is a count
that must be >= 1 (``--iters``, ``--batch-size``, ``--steps`` ...), or >= 0 when its docstring says what 0
means (``(0: off)``, ``(0 = torch's default)``: the ``--help`` text then tells it too) or its default is 0;
seeds are any integer; the float fields of :data:`POSITIVE_FLOATS` (and every ``*_lr``) must be > 0. A value
out of bounds is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")

ZERO_MEANING = re.compile(r"(?<![\w.])(?<!> )(?<!>= )0(?: ?[=:]| (?:keeps|means|is|to|turns|disables)\b)")
"""What a docstring says to let an integer field be 0: ``0: skip``, ``0 = torch's default``, ``0 keeps ...``."""
POSITIVE_FLOATS = frozenset(
    {"lr", "grad_clip", "max_grad_norm", "sharpness", "std", "seconds", "compile_timeout_s", "hill_factor",
     "time_limit_min"}
)  # fmt: skip
"""Float config fields that must be > 0 (rates, clips, scales, time budgets), besides every ``*_lr``."""


def lower_bound(name: str, tp: Any, doc: str = "", default: Any = None) -> tuple[float, bool] | None:
    """The lower bound of a config field named ``name`` of type ``tp`` (``int | None`` counts as ``int``) with the
    docstring ``doc`` and the ``default``: ``(bound, strict)``, or None when unbounded. The one rule for every
    config: an ``int`` is a count, >= 1, or >= 0 when ``doc`` says what 0 means (:data:`ZERO_MEANING`) or the
    default is 0; a seed (``seed``, ``*_seed``) is any integer; a ``float`` in :data:`POSITIVE_FLOATS` or named
    ``*_lr`` is > 0; anything else is unbounded."""
    tp, _ = _unwrap_optional(tp)
    if tp is int and not (name == "seed" or name.endswith("_seed")):
        return (0, False) if ZERO_MEANING.search(doc) or (default == 0 and default is not False) else (1, False)
    if tp is float and (name in POSITIVE_FLOATS or name.endswith("_lr")):
        return (0.0, True)
    return None


def bound_error(name: str, tp: Any, value: Any, doc: str = "", default: Any = None) -> str | None:
    """The message for ``value`` of the field ``name`` breaking :func:`lower_bound`, or None when it keeps it."""
    bound = lower_bound(name, tp, doc, default)
    if bound is None or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, strict = bound
    if value > low if strict else value >= low:
        return None
    flag = "--" + name.replace("_", "-")
    return f"{flag} must be {'>' if strict else '>='} {low:g}, got {value}"


def bounded(tp: type, name: str, doc: str = "", default: Any = None):
    """An argparse ``type`` that parses ``tp`` and enforces :func:`lower_bound` of the option ``name`` with the
    help text ``doc`` and ``default`` (a usage error, exit 2, when broken):
    ``add_argument("--n", type=bounded(int, "n"))``."""

    def parse(text: str):
        value = tp(text)
        message = bound_error(name, tp, value, doc, default)
        if message is not None:
            raise argparse.ArgumentTypeError(message)
        return value

    parse.__name__ = tp.__name__  # argparse names the type in "invalid int value" messages
    return parse


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under each field of a dataclass (and its dataclass bases)."""
    return dict(_field_docs(cls))


@functools.cache
def _field_docs(cls: type) -> dict[str, str]:  # reading and parsing the source once per class
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _none_or(convert):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _add_field(parser: argparse.ArgumentParser, f: dataclasses.Field, tp: Any, doc: str) -> None:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    tp, optional = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    help_text = f"{doc} (default: {default!r})".replace("%", "%%")  # argparse expands % in help
    kwargs: dict[str, Any] = {"default": default, "help": help_text}
    flag = "--" + f.name.replace("_", "-")
    if tp is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    if origin is Literal:
        choices = typing.get_args(tp)
        kwargs.update(type=_none_or(type(choices[0])) if optional else type(choices[0]), choices=choices)
    elif origin in (tuple, list):
        (elem, *rest) = typing.get_args(tp) or (str,)
        kwargs.update(type=elem, nargs="+" if (origin is list or (rest and rest[0] is Ellipsis)) else len(rest) + 1)
    elif tp in (int, float, str):
        kwargs["type"] = _none_or(tp) if optional else tp
    else:
        raise TypeError(f"config field {f.name!r} has unsupported type {tp!r}")
    parser.add_argument(flag, dest=f.name, **kwargs)


def build_parser(cls: type, description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one option per field of the dataclass ``cls``."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or inspect.getdoc(cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.init:
            _add_field(parser, f, hints[f.name], docs.get(f.name, ""))
    return parser


def renamed_flags(cls: type, argv: Sequence[str]) -> list[str]:
    """``argv`` with the old flags of ``cls.DEPRECATED_FLAGS`` (``{"--out": "--run-dir"}``) replaced by their
    new names, each announced once on stderr (``--out=X`` forms too)."""
    renames: dict[str, str] = getattr(cls, "DEPRECATED_FLAGS", {})
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if flag in renames:
            print(f"warning: {flag} is deprecated, use {renames[flag]}", file=sys.stderr)
            new = renames[flag].split()  # a flag, or a flag and its value ("--no-resume": "--resume never")
            out.extend(new[:-1] + [new[-1] + eq + value])
            continue
        out.append(arg)
    return out


def parse_config(
    cls: type[T], argv: Sequence[str] | None = None, description: str | None = None, prog: str | None = None
) -> T:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into an instance of the dataclass ``cls``; old flags listed
    in ``cls.DEPRECATED_FLAGS`` are accepted with a deprecation message. An invalid value (a number out of the
    bounds of :func:`lower_bound`, or the config's ``__post_init__`` raising ``ValueError``) is reported as a
    usage error (exit 2), not a traceback."""
    argv = renamed_flags(cls, sys.argv[1:] if argv is None else argv)
    parser = build_parser(cls, description, prog)
    ns = parser.parse_args(argv)
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(ns).items()}
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.init and values.get(f.name) != f.default:  # a default is valid by definition
            message = bound_error(f.name, hints[f.name], values.get(f.name), docs.get(f.name, ""), f.default)
            if message is not None:
                parser.error(message)
    try:
        return cls(**values)
    except ValueError as exc:
        parser.error(str(exc))


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Rebuild a config saved with ``dataclasses.asdict`` (unknown keys are an error, missing ones default)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields in saved config: {sorted(unknown)}")
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})
