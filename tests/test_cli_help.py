"""Every option of every command line explains itself in --help, with its default, under a description
in plain text."""

from __future__ import annotations

import argparse
import re

import pytest

from yolov7lib import bench, cli, export, pipeline, train
from yolov7lib.data import check, synthetic
from yolov7lib.models import __main__ as models_main

COMMANDS = {"yolov7 train": train.main, "yolov7 val": cli.val, "yolov7 detect": cli.detect,
            "yolov7 bench": bench.main, "yolov7 export": export.main, "data.check": check.main,
            "data.synthetic": synthetic.main, "models": models_main.main, "pipeline": pipeline.main}


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_a_help_text(name, monkeypatch):
    def capture(parser, *args, **kwargs):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed) as parsed:
        COMMANDS[name](["--help"])
    parsers = [parsed.value.parser]
    for action in parsed.value.parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    for parser in parsers:
        assert parser.formatter_class.__name__ == "HelpFormatter", parser.prog
        text = " ".join(parser.format_help().split())
        assert "(default: None)" not in text and "(default: )" not in text, parser.prog  # says nothing
        assert "``" not in text and "::" not in text and not re.search(r":\w+:`", text), parser.prog  # no reST
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                assert action.help, f"{parser.prog} {'/'.join(action.option_strings) or action.dest} has no help"


def test_a_docstring_shows_as_plain_text():
    from yolov7lib.console import plain

    doc = """Train (:class:`~yolov7lib.train.Trainer`, :py:func:`yolov7lib.train.train`).

        Writes ``last.pt``; ``x`` and ``y``::

            yolov7 train"""
    assert plain(doc) == "Train (Trainer, yolov7lib.train.train).\n\nWrites last.pt; x and y:\n\n    yolov7 train"


def test_yolov7_help_lists_every_command_with_a_line(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in cli.COMMANDS)
    with pytest.raises(SystemExit):
        cli.main(["tran"])
    assert capsys.readouterr().err.startswith("error: no command 'tran'")
