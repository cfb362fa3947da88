"""Command-line arguments built from the fields of an options dataclass.

The defaults, choices and help of each argument come from the dataclass
(:class:`~diffseglung_core.segment.options.SegmentOptions`, ...), so the
command line and the napari widgets cannot drift apart. A boolean field that
is on by default becomes ``--no-NAME``; a tuple field takes one or more values.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any, Sequence

from ..segment.options import option_choices


def _field(cls: type, name: str):
    for f in fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _dest(name: str, default: Any) -> str:
    return f"no_{name}" if default is True else name


def add_option_arguments(parser: argparse.ArgumentParser, cls: type, names: Sequence[str]) -> None:
    """Add one argument per field ``names`` of the dataclass ``cls``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    cls : type
        A dataclass whose fields have defaults and ``help`` / ``choices`` metadata.
    names : sequence of str
        The fields offered, in the order of the help.
    """
    for name in names:
        f = _field(cls, name)
        default = f.default if f.default is not MISSING else None
        text = f.metadata.get("help")
        flag = "--" + _dest(name, default).replace("_", "-")
        if isinstance(default, bool):
            if default:
                parser.add_argument(flag, action="store_true", help=f"skip {text}" if text else None)
            else:
                parser.add_argument(flag, action="store_true", help=text)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, type=kind, nargs="+", default=list(default), help=text)
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, type=kind, default=default, help=text,
                                choices=option_choices(cls, name))


def options_from_args(cls: type, args: argparse.Namespace, names: Sequence[str], **extra: Any):
    """The dataclass ``cls`` with the values of the arguments made by :func:`add_option_arguments`.

    Fields not in ``names`` keep their defaults, except those given in ``extra``.
    """
    values = dict(extra)
    for name in names:
        default = _field(cls, name).default
        if default is True:
            values[name] = not getattr(args, _dest(name, default))
        else:
            value = getattr(args, name)
            values[name] = tuple(value) if isinstance(default, tuple) else value
    return cls(**values)
