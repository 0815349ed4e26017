"""What every command line of the package shares: help text that shows each option's default under
a description kept as written (its docstring, as a terminal shows it), and one clear line for a user's
mistake.

Errors the user can fix derive from :class:`UserError`; :func:`run` prints them as ``error: <what is
wrong and how to fix it>`` and exits with status 2, with the traceback only under ``--verbose`` or
``YOLOV7_TRACEBACK=1``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any


def plain(text: str) -> str:
    """A docstring as a terminal shows it: dedented, Sphinx roles as their targets (the last part
    where ``~`` asks for it), double-backquoted literals bare and a literal block's ``::`` as ``:``."""
    text = re.sub(r"(?::\w+)+:`(~?)([^`]+)`", lambda m: m[2].rsplit(".", 1)[-1] if m[1] else m[2],
                  inspect.cleandoc(text))
    return re.sub(r"::$", ":", re.sub(r"``([^`]+)``", r"\1", text), flags=re.MULTILINE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help``: the description as written (docstrings with examples, in :func:`plain` text), every
    option with its default (unless it has none or an empty one, or its help already says it)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(plain(text), width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default == "" or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: ``42 s``, ``3 min 05 s``, ``1 h 07 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer no smaller than ``low``; argparse reports anything else in one
    line, ``argument --batch: must be at least 1, got 0``."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return integer


def fraction(text: str) -> float:
    """An argparse ``type``: a number in [0, 1], such as a score or IoU threshold."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value:g}")
    return value


IMG_MIN = 32  # the smallest image side: one cell of a P5 model's coarsest level


def stride_multiple(img_size: int, stride: int, what: str = "running") -> int:
    """``img_size`` rounded up to a multiple of a model's largest ``stride``, with a warning when it
    changes, as the official ``check_img_size`` does."""
    size = -(-img_size // stride) * stride
    if size != img_size:
        warnings.warn(f"--img {img_size} is not a multiple of the model's largest stride {stride}: {what} at {size}",
                      UserWarning, stacklevel=3)
    return size


class UserError(Exception):
    """A mistake in what was asked (an argument, a file, a dataset): its message says what is wrong
    and how to fix it."""


PACKAGE = os.path.dirname(os.path.abspath(__file__))
_python_format = warnings.formatwarning


def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             line: str | None = None) -> str:
    """A warning of this package as a user reads it, ``warning: <message>``; others as Python shows them."""
    if os.path.abspath(filename).startswith(PACKAGE + os.sep):
        return f"warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


def run(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> int:
    """Run a command line's ``main``: its exit status (0 unless it returns another int), or 2 with one
    ``error:`` line for a :class:`UserError` or a file system error, or 130 with one line for Ctrl-C
    (with what was kept, where the interrupted work says so); the package's warnings as one line each
    (:func:`one_line`). ``--verbose`` anywhere in ``argv``, or ``YOLOV7_TRACEBACK=1``, re-raises
    instead, and shows warnings with their source lines."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or os.environ.get("YOLOV7_TRACEBACK", "") not in ("", "0")
    args = [a for a in args if a != "--verbose"]
    formatwarning = warnings.formatwarning
    if not verbose:
        warnings.formatwarning = one_line
    try:
        result = main(args)
    except (UserError, OSError) as err:  # OSError: a path that is missing, not a folder, not writable, ...
        if verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        if verbose:
            raise
        print(f"interrupted: {err}" if str(err) else "interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning
    return result if isinstance(result, int) else 0
