"""The reviewer's records, pure: version numbers, reasons, the trail within MLflow's tag limit."""

from __future__ import annotations

import json

import pytest

from lusynth.registry import RegistryError
from lusynth.registry.review import ReviewEvent, append_trail, parse_version, review_event, reviewer_name


def test_version_numbers_are_checked() -> None:
    assert parse_version(" 3 ") == "3" and parse_version(7) == "7" and parse_version("007") == "7"
    for bad in ("0", "-1", "x1", "1.5", ""):
        with pytest.raises(RegistryError, match="version number"):
            parse_version(bad)


def test_a_decision_needs_a_reason_and_names_its_reviewer(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RegistryError, match="--reason"):
        review_event("approved", "3", reason="  ", by="a", at="t")
    monkeypatch.setenv("USER", "dr-who")
    assert reviewer_name() == "dr-who" and reviewer_name(" dr-no ") == "dr-no"


def test_trail_keeps_every_event_in_order_and_drops_the_oldest_past_the_tag_limit() -> None:
    t: str | None = None
    for i in range(3):
        t = append_trail(t, ReviewEvent("approved", str(i), "r", "2026-01-01T00:00:00+00:00", f"reason {i}"))
    assert [e["version"] for e in json.loads(t)["events"]] == ["0", "1", "2"]
    for _ in range(200):
        t = append_trail(t, ReviewEvent("rejected", "9", "r", "2026-01-01T00:00:00+00:00", "x" * 100))
    assert t is not None
    doc = json.loads(t)
    assert len(t) <= 4500 and doc["earlier_events"] + len(doc["events"]) == 203
    assert doc["events"][-1]["action"] == "rejected"
