"""What the command lines share: durations as a person reads them, numbers checked as argparse reads
them, and the package's warnings in one line."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pytest

from yolov7lib import console
from yolov7lib.console import at_least, duration, fraction, one_line, run


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (-1, "0 s"), (42.4, "42 s"), (59.6, "1 min 00 s"),
                                               (185, "3 min 05 s"), (3599, "59 min 59 s"), (4020, "1 h 07 min")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_numbers_as_argparse_reads_them():
    assert at_least(0)("0") == 0 and at_least(32)("640") == 640 and fraction("0") == 0.0 and fraction("1") == 1.0
    for parse, text, says in [(at_least(1), "0", "must be at least 1, got 0"), (at_least(1), "x", "'x' is not an"),
                              (fraction, "1.01", "must lie in [0, 1], got 1.01"), (fraction, "", "'' is not a")]:
        with pytest.raises(argparse.ArgumentTypeError, match=says.replace("[", r"\[").replace("]", r"\]")):
            parse(text)


def test_run_shows_the_package_s_warnings_in_one_line():
    """Under :func:`run` a warning raised in the package is ``warning: <message>``; any other keeps
    Python's form (file, line, source), and so does every warning under ``--verbose``."""
    python = warnings.formatwarning
    assert one_line("--img 100 ...", UserWarning, console.__file__, 7) == "warning: --img 100 ...\n"
    assert one_line("x", UserWarning, "/elsewhere/y.py", 3, "z = 1") == python("x", UserWarning, "/elsewhere/y.py", 3,
                                                                                "z = 1")
    seen = []
    assert run(lambda argv: seen.append(warnings.formatwarning), []) == 0
    assert run(lambda argv: seen.append(warnings.formatwarning), ["--verbose"]) == 0
    assert seen == [one_line, python] and warnings.formatwarning is python


def test_a_file_system_error_is_one_line(capsys):
    """A path that is not a folder (or not writable, or missing): ``error: <what the system said>``."""
    def main(argv):
        Path("/dev/null/run").mkdir()

    assert run(main, []) == 2
    assert capsys.readouterr().err == "error: [Errno 20] Not a directory: '/dev/null/run'\n"
    with pytest.raises(NotADirectoryError):
        run(main, ["--verbose"])
