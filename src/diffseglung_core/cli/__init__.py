"""The ``diffseglung`` command line.

Each subcommand lives in its own module of this package. A module named
``foo_bar.py`` provides ``foo-bar``: it defines ``HELP`` (one line) and
``add_arguments(parser)`` and ``run(args) -> int``, and sets
``WHOLE_OR_NOTHING = True`` when an interrupted or failed run leaves no output
file behind (the messages then say so). Modules are discovered at start-up, so
adding a command never touches this file; only the module of the command
being run is imported (a short start-up).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import signal
import sys
import threading
import warnings
from typing import Optional, Sequence

from ..allocator import keep_freed_memory
from ..errors import Cancelled, DiffSegLungError


def _command_names() -> list[str]:
    """The subcommands, found without importing their modules."""
    return sorted(info.name.replace("_", "-") for info in pkgutil.iter_modules(__path__)
                  if not info.name.startswith("_"))


def _command_modules(names: Optional[Sequence[str]] = None):
    for name in names or _command_names():
        yield name, importlib.import_module(f"{__name__}.{name.replace('-', '_')}")


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``command`` alone (its module is the only one imported)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="diffseglung",
        description="Unsupervised lung-pathology segmentation in chest CT "
                    "(labels: 0 outside lung, 1 healthy, 2 GGO, 3 fibrosis, 4 emphysema, 5 consolidation).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules([command] if command else None):
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _whole_or_nothing=getattr(module, "WHOLE_OR_NOTHING", False))
    return parser


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGHUP) raised in the main thread, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signame = signal.Signals(signum).name
        self.exit_code = 128 + int(signum)


def _raise_stopped(signum, frame) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def _stop_signals_raise():
    """Turn SIGTERM and SIGHUP into :class:`Stopped` while the command runs (main thread only).

    Their default action kills the process at once, leaving temporary and
    half-written files; an exception unwinds through the writers' clean-up.
    """
    wanted = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, _raise_stopped) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _warnings_on_one_line(command: str):
    """Print each warning as one ``diffseglung COMMAND: warning: ...`` line on stderr."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        kind = "" if issubclass(category, UserWarning) else f" ({category.__name__})"
        print(f"diffseglung {command}: warning{kind}: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``diffseglung`` console script.

    Every way a command can end is one line on stderr and an exit status:
    0 done, 2 a problem with the input (a :class:`DiffSegLungError`), 3 out of
    memory, 130 Ctrl-C (SIGINT), 128 + the signal for SIGTERM and SIGHUP.
    Files are written whole or not at all (a temporary file, then a rename);
    commands that set ``WHOLE_OR_NOTHING`` also remove what they had written
    of an unfinished run.

    Run as a program (``argv`` None), the process keeps the memory of freed
    arrays for the next ones (:func:`~diffseglung_core.allocator.keep_freed_memory`):
    it ends with its command.
    """
    if argv is None:
        keep_freed_memory()
    argv = list(sys.argv[1:] if argv is None else argv)
    # the command's own module only: the others (and what they import) are not needed
    parser = build_parser(argv[0] if argv and argv[0] in _command_names() else None)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    command = args.command
    left = "; no partial output left" if args._whole_or_nothing else ""
    try:
        with _stop_signals_raise(), _warnings_on_one_line(command):
            return int(args._run(args) or 0)
    except Cancelled:
        print(f"diffseglung {command}: cancelled{left}", file=sys.stderr)
        return 130
    except Stopped as stop:
        print(f"diffseglung {command}: stopped by {stop.signame}{left}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print(f"diffseglung {command}: interrupted (Ctrl-C, SIGINT){left}", file=sys.stderr)
        return 130
    except DiffSegLungError as err:
        print(f"diffseglung {command}: error: {err}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"diffseglung {command}: error: out of memory (the scan needs more than this machine "
              f"has free){left}", file=sys.stderr)
        return 3
    except FileNotFoundError as err:
        print(f"diffseglung {command}: error: {err.filename or err}: no such file or folder",
              file=sys.stderr)
        return 2
    except RuntimeError as err:  # torch reports running out of memory as RuntimeError
        text = str(err).lower()
        if "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text:
            if "cuda" in text or "mps" in text or "hip" in text:
                what = "the GPU ran out of memory (try --device cpu)"
            else:
                what = "out of memory (the scan needs more than this machine has free)"
            print(f"diffseglung {command}: error: {what}{left}", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
