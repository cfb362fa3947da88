"""The ``diffseglung`` command line.

Each subcommand lives in its own module of this package. A module named
``foo_bar.py`` provides ``foo-bar``: it defines ``HELP`` (one line) and
``add_arguments(parser)`` and ``run(args) -> int``. Modules are discovered at
start-up, so adding a command never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Optional, Sequence

from ..errors import Cancelled, DiffSegLungError


def _command_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield info.name.replace("_", "-"), importlib.import_module(f"{__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="diffseglung",
        description="Unsupervised lung-pathology segmentation in chest CT "
                    "(labels: 0 outside lung, 1 healthy, 2 GGO, 3 fibrosis, 4 emphysema, 5 consolidation).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``diffseglung`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except Cancelled:
        print("diffseglung: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("diffseglung: interrupted", file=sys.stderr)
        return 130
    except DiffSegLungError as err:
        print(f"diffseglung {args.command}: error: {err}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"diffseglung {args.command}: error: out of memory; try a smaller --chunk-size, "
              "a coarser --stride or the CPU", file=sys.stderr)
        return 3
    except FileNotFoundError as err:
        print(f"diffseglung {args.command}: error: {err.filename or err}: no such file or folder",
              file=sys.stderr)
        return 2
    except RuntimeError as err:
        if "out of memory" in str(err).lower():
            print(f"diffseglung {args.command}: error: the device ran out of memory; try a smaller "
                  "--batch-size or --device cpu", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
