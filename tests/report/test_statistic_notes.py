"""Every check's statistic is explained in the report (a new check without a line fails here)."""

from sweeper.checks import registry
from sweeper.report.statistic_notes import STATISTIC, statistic_note


def test_every_check_has_its_statistic_explained():
    assert set(STATISTIC) == set(registry.MODULES)
    assert statistic_note("made-up") == "see the made-up check's documentation"
