"""The gate decides on bounds, not on point estimates."""

from __future__ import annotations

import pytest

from lusynth.privacy.gate import FAIL, INSUFFICIENT, PASS, Check, decide


def _check(lo: float, hi: float, lo_adj: float | None = None, p: float | None = None) -> Check:
    return Check("x", (lo + hi) / 2, 0.5, lo, hi, lo if lo_adj is None else lo_adj, "patients", 10, 40, p_value=p, fail_alpha=0.01)


def test_outcomes() -> None:
    assert _check(0.1, 0.4).outcome == PASS
    assert _check(0.6, 0.9).outcome == FAIL
    assert _check(0.6, 0.9, lo_adj=0.45).outcome == INSUFFICIENT  # the adjusted bound decides a FAIL
    assert _check(0.6, 0.9, p=0.2).outcome == INSUFFICIENT  # an exact test that does not reject blocks a FAIL
    assert _check(0.6, 0.9, p=0.001).outcome == FAIL
    assert _check(0.3, 0.7).outcome == INSUFFICIENT


def test_decide_combines_checks_and_says_what_is_needed() -> None:
    assert decide([_check(0.1, 0.4), _check(0.2, 0.3)])["decision"] == PASS
    assert decide([_check(0.1, 0.4), _check(0.6, 0.9)])["decision"] == FAIL
    out = decide([_check(0.1, 0.4), _check(0.3, 0.7)])
    assert out["decision"] == INSUFFICIENT and "40 patients (now 10)" in out["reasons"][0]
    assert [c["outcome"] for c in out["checks"]] == [PASS, INSUFFICIENT]
    with pytest.raises(ValueError, match="no checks"):
        decide([])
