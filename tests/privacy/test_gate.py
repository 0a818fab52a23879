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
    # a bound over the limit that the exact test cannot back: the reason says so, not "the interval contains the limit"
    why = decide([_check(0.6, 0.9, p=0.2)])["reasons"][0]
    assert "does not reject" in why and "contains the limit" not in why and "p = 0.2" in why


def test_the_model_card_documents_the_limits_it_is_given() -> None:
    from lusynth.privacy.params import AuditParams
    from lusynth.registry.cards import audit_limits

    text = "\n".join(audit_limits(AuditParams(max_copy_rate=0.03, max_mia_auc=0.7, ci=0.9)))
    assert "near-copy rate <= 0.03" in text and "AUC (distance, reference, discriminator) <= 0.7" in text
    assert "at 0.9 confidence" in text and "insufficient evidence" in text


@pytest.mark.parametrize(("field", "value"), [("max_mia_auc", 0.4), ("max_copy_rate", 1.5), ("features", "pixels,colour"), ("copy_margin", 0)])
def test_bad_audit_parameters_name_the_field(field: str, value: object) -> None:
    from lusynth.errors import InputError
    from lusynth.params import stage_params

    with pytest.raises(InputError, match=f"audit.{field}="):
        stage_params("audit", "demo", {field: value})
