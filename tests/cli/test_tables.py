"""Terminal tables print every value as text: brackets in a value (a check's path label, a path in an error) are
not Rich markup."""

from __future__ import annotations

import pytest

from cli.tables import print_rows


@pytest.mark.parametrize("text", ["[sgd B0=8 lr0=0.05 wd=0 l=1] holds up to κ = 2",  # an lsr summary
                                  "FileNotFoundError: [/data/cifar] is missing",  # a closing-tag look-alike
                                  "[bold]not bold[/bold]"])
def test_brackets_in_values_are_printed_as_written(capsys, text):
    print_rows([{"summary": text}], title="study [x]: 1 verdicts")
    out = capsys.readouterr().out
    assert text in out and "study [x]: 1 verdicts" in out
