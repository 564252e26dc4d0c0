"""Command lines from typed, frozen dataclasses.

A training configuration is a frozen dataclass whose fields each carry a docstring (a string literal on
the line after the field, as in CleanRL's ``Args``). :func:`parse_config` turns it into an argparse
command line whose ``--help`` lists every option with its type, default and docstring::

    @dataclass(frozen=True)
    class Config:
        lr: float = 3e-4
        \"\"\"Adam learning rate.\"\"\"

    cfg = parse_config(Config, ["--lr", "1e-3"])
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under each field of a dataclass (and its dataclass bases)."""
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
    in ``cls.DEPRECATED_FLAGS`` are accepted with a deprecation message. An invalid value (the config's
    ``__post_init__`` raising ``ValueError``) is reported as a usage error, not a traceback."""
    argv = renamed_flags(cls, sys.argv[1:] if argv is None else argv)
    parser = build_parser(cls, description, prog)
    ns = parser.parse_args(argv)
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(ns).items()}
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
