"""Calibration cases: their truths are computed (closed form, reference study) and land where the cases say."""

from __future__ import annotations

import pytest

from sweeper.calibrate.cases import CASES, cases_for


@pytest.mark.parametrize("case", [c for c in CASES if c.check in ("lsr", "svag")], ids=lambda c: f"{c.check}-{c.name}")
def test_closed_form_truth_puts_each_case_where_its_name_says(case):
    truth, ratio, why = case.truth()
    assert truth == case.name, (ratio, why)
    assert "closed form" in why


def test_quickstart_sized_lsr_holds_to_a_quarter_percent():
    """The issue's reference figure: the quickstart path (η0 = 0.05, κ ≤ 8) holds to 0.25% in closed form."""
    _, ratio, why = next(c for c in cases_for("lsr") if c.name == "holds").truth()
    assert ratio * 0.05 == pytest.approx(0.0025, abs=0.0003), why


def test_unknown_check_names_the_calibrated_ones():
    with pytest.raises(KeyError, match=r"calibrated checks: .*lsr"):
        cases_for("intrinsic-lr")


@pytest.mark.slow
def test_reference_truth_of_the_sqrt_rule_holds_case_holds():
    """The square-root cases have no closed form: their truth comes from a 16-seed reference study (~7 CPU s)."""
    truth, ratio, why = next(c for c in cases_for("sqrt-rule") if c.name == "holds").truth()
    assert truth == "holds" and 0 < ratio < 1, why
    assert why.startswith("16-seed reference study")
