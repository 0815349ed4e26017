"""What the command lines share: durations as a person reads them."""

from __future__ import annotations

import pytest

from yolov7lib.console import duration


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (-1, "0 s"), (42.4, "42 s"), (59.6, "1 min 00 s"),
                                               (185, "3 min 05 s"), (3599, "59 min 59 s"), (4020, "1 h 07 min")])
def test_duration(seconds, text):
    assert duration(seconds) == text
