"""The reviewer's step: a person, not the pipeline, moves ``@champion`` (``lusynth registry approve`` /
``reject``), and every decision stays on the versions as tags: who, when (UTC, ISO 8601), why, and
the champion it replaced.

Tags on a version (``lusynth.review.*``): ``status`` (``pending`` when the gate recommends it or
holds it as challenger, ``approved``, ``rejected``, ``superseded`` once another version is
approved, ``not-requested``), ``by``, ``at``, ``reason``, ``previous_champion`` (of the last
decision) and ``trail``: every decision on the version, oldest first, as JSON.

- approve: the version becomes ``champion`` (its ``candidate`` / ``challenger`` alias goes); the
  champion it replaces is marked ``superseded``. Refused for a version the privacy rule bars
  (a classifier whose synthetic data's audit failed or is missing; a generator whose audit did not
  pass): no reviewer can make it champion.
- reject: the version loses its gate aliases; if it was champion, the champion it replaced comes
  back (unless that one was rejected since), else the model has no champion until one is approved.

The I/O goes through an ``MlflowClient``; :func:`review_event` and :func:`append_trail` are pure.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lusynth.registry.client import TAG, RegistryError, VersionSummary, current_champion, list_versions
from lusynth.registry.gate import CANDIDATE, CHALLENGER, CHAMPION, INELIGIBLE, RegistryNames

__all__ = [
    "REVIEW_TAG",
    "ReviewEvent",
    "append_trail",
    "approve",
    "parse_version",
    "registry_json",
    "reject",
    "review_event",
    "reviewer_name",
]

REVIEW_TAG = TAG + "review."
_TRAIL_MAX_CHARS = 4500  # MLflow keeps 5000 characters of a model version tag's value


@dataclass(frozen=True)
class ReviewEvent:
    """One decision about a version: approved | rejected | superseded | restored."""

    action: str
    version: str
    by: str
    at: str  # UTC, ISO 8601
    reason: str
    previous_champion: str | None = None


def reviewer_name(explicit: str | None = None) -> str:
    """Who decides: ``explicit`` (``--reviewer``), else ``$USER``, else the login name."""
    if explicit and explicit.strip():
        return explicit.strip()
    for var in ("USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def utc_now() -> str:
    """The time of a decision: UTC, ISO 8601, seconds."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def parse_version(text: str | int) -> str:
    """A version number as MLflow spells it; :class:`RegistryError` naming the input otherwise."""
    s = str(text).strip()
    if not s.isdigit() or int(s) < 1:
        raise RegistryError(f"version {text!r}: give a version number such as 3 (`lusynth registry show` lists them)")
    return str(int(s))


def review_event(action: str, version: str, *, reason: str, by: str, at: str, previous_champion: str | None = None) -> ReviewEvent:
    """A checked decision (pure): a reason is required, in words."""
    if not reason or not reason.strip():
        raise RegistryError(f"{action} v{version}: give the reason for the decision (--reason TEXT); it is kept with the version")
    return ReviewEvent(action, version, by, at, reason.strip(), previous_champion)


def append_trail(trail_json: str | None, event: ReviewEvent) -> str:
    """The trail tag's new value (pure): earlier events plus ``event``; the oldest give way (counted in
    ``earlier_events``) when the value would pass MLflow's tag limit."""
    try:
        doc = json.loads(trail_json) if trail_json else {}
    except json.JSONDecodeError:
        doc = {}
    events = [*doc.get("events", []), {k: v for k, v in asdict(event).items() if v is not None}]
    earlier = int(doc.get("earlier_events", 0))
    while True:
        value = json.dumps({"earlier_events": earlier, "events": events} if earlier else {"events": events}, ensure_ascii=False)
        if len(value) <= _TRAIL_MAX_CHARS or len(events) == 1:
            return value[:_TRAIL_MAX_CHARS]
        events, earlier = events[1:], earlier + 1


def trail(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """The decisions recorded on a version, oldest first."""
    try:
        return list(json.loads(tags.get(REVIEW_TAG + "trail") or "{}").get("events", []))
    except json.JSONDecodeError:
        return []


def _version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        raise RegistryError(f"model {name!r}: not in the registry at {client.tracking_uri}; "
                            "`lusynth registry show` lists the models") from None
    try:
        return client.get_model_version(name, version)
    except MlflowException:
        raise RegistryError(f"{name} version {version}: no such version; `lusynth registry show {name}` lists them") from None


def _record(client: Any, name: str, version: str, status: str, event: ReviewEvent, tags: Mapping[str, str]) -> None:
    values = {"status": status, "by": event.by, "at": event.at, "reason": event.reason,
              "previous_champion": event.previous_champion or "none", "trail": append_trail(tags.get(REVIEW_TAG + "trail"), event)}
    for k, v in values.items():
        client.set_model_version_tag(name, version, REVIEW_TAG + k, v)


def _drop_aliases(client: Any, name: str, version: str, aliases: Sequence[str]) -> None:
    from mlflow.exceptions import MlflowException

    for a in aliases:
        try:
            if str(client.get_model_version_by_alias(name, a).version) == version:
                client.delete_registered_model_alias(name, a)
        except MlflowException:  # no such alias
            pass


def _barred(tags: Mapping[str, str]) -> str | None:
    """Why the privacy rule bars a version from champion, or None."""
    audit = tags.get(TAG + "privacy_audit", "")
    if tags.get(TAG + "kind") == "generator":
        return None if audit == "passed" else f"its privacy audit is {audit or 'missing'} (a generator needs a passed audit)"
    if tags.get(TAG + "gate.decision") == INELIGIBLE or audit in ("failed", "missing"):
        return f"it was trained on synthetic data whose privacy audit {'failed' if audit == 'failed' else 'is missing'}"
    return None


def approve(client: Any, name: str, version: str | int, *, reason: str, reviewer: str | None = None,
            at: str | None = None) -> ReviewEvent:
    """Make ``name`` version ``version`` the champion, recording who, when, why and the champion it replaces."""
    version = parse_version(version)
    mv = _version(client, name, version)
    tags = dict(mv.tags)
    barred = _barred(tags)
    if barred:
        raise RegistryError(f"{name} v{version} cannot be champion: {barred}")
    champ = current_champion(client, name)
    prev = str(champ.version) if champ is not None else None
    if prev == version:
        raise RegistryError(f"{name} v{version} is already champion (approved by {tags.get(REVIEW_TAG + 'by', '?')} "
                            f"at {tags.get(REVIEW_TAG + 'at', '?')})")
    event = review_event("approved", version, reason=reason, by=reviewer_name(reviewer), at=at or utc_now(), previous_champion=prev)
    client.set_registered_model_alias(name, CHAMPION, version)
    _drop_aliases(client, name, version, (CANDIDATE, CHALLENGER))
    _record(client, name, version, "approved", event, tags)
    if champ is not None:
        gone = ReviewEvent("superseded", str(champ.version), event.by, event.at, f"replaced by v{version}: {event.reason}", prev)
        _record(client, name, str(champ.version), "superseded", gone, dict(champ.tags))
    return event


def reject(client: Any, name: str, version: str | int, *, reason: str, reviewer: str | None = None,
           at: str | None = None) -> ReviewEvent:
    """Reject ``name`` version ``version``: it loses its gate aliases; a rejected champion gives way to
    the champion it replaced (when that one was not rejected since), else to none."""
    from mlflow.exceptions import MlflowException

    version = parse_version(version)
    mv = _version(client, name, version)
    tags = dict(mv.tags)
    champ = current_champion(client, name)
    was_champion = champ is not None and str(champ.version) == version
    event = review_event("rejected", version, reason=reason, by=reviewer_name(reviewer), at=at or utc_now(),
                         previous_champion=str(champ.version) if champ is not None else None)
    _drop_aliases(client, name, version, (CHAMPION, CANDIDATE, CHALLENGER))
    _record(client, name, version, "rejected", event, tags)
    if was_champion:
        back = tags.get(REVIEW_TAG + "previous_champion", "none")
        try:
            old = client.get_model_version(name, back) if back.isdigit() else None
        except MlflowException:
            old = None
        if old is not None and old.tags.get(REVIEW_TAG + "status") != "rejected":
            client.set_registered_model_alias(name, CHAMPION, back)
            restored = ReviewEvent("restored", back, event.by, event.at, f"v{version} rejected: {event.reason}", version)
            _record(client, name, back, "approved", restored, dict(old.tags))
    return event


def registry_json(client: Any, name: str | None = None, *, names: RegistryNames = RegistryNames()) -> dict[str, Any]:
    """What ``lusynth registry show --json`` prints: per model its aliases, and per version its
    aliases, source run, logged model, gate decision, privacy audit, review status, holdout metrics
    (the logged model's, with CI bounds) and the review trail."""
    versions = list_versions(client, name, names=names)
    models: dict[str, dict[str, Any]] = {}
    for v in versions:
        m = models.setdefault(v.name, {"name": v.name, "aliases": {}, "versions": []})
        for a in v.aliases:
            m["aliases"][a] = v.version
        m["versions"].append(_version_json(client, v))
    return {"tracking_uri": client.tracking_uri, "models": list(models.values())}


def _version_json(client: Any, v: VersionSummary) -> dict[str, Any]:
    t = v.tags
    metrics: dict[str, float] = {}
    if v.model_id:
        from mlflow.exceptions import MlflowException

        try:
            metrics = {m.key: m.value for m in (client.get_logged_model(v.model_id).metrics or [])}
        except MlflowException:  # a logged model deleted since
            pass
    return {
        "version": v.version, "aliases": v.aliases, "created": dt.datetime.fromtimestamp(v.created / 1000, dt.UTC).isoformat(),
        "source_run_id": v.run_id, "model_id": v.model_id, "kind": t.get(TAG + "kind"),
        "arm": t.get(TAG + "arm"), "label": t.get(TAG + "label"), "fraction": t.get(TAG + "fraction"),
        "gate": {"decision": v.decision, "reason": v.reason},
        "privacy_audit": t.get(TAG + "privacy_audit"),
        "review": {"status": t.get(REVIEW_TAG + "status", "not-requested"), "by": t.get(REVIEW_TAG + "by"), "at": t.get(REVIEW_TAG + "at"),
                   "reason": t.get(REVIEW_TAG + "reason"), "previous_champion": t.get(REVIEW_TAG + "previous_champion"),
                   "trail": trail(t)},
        "metrics": dict(sorted(metrics.items())),
        "onnx_sha256": t.get(TAG + "onnx_sha256"),
    }
