"""plan_upload is pure: given the local files and what the prefix holds, the plan is exactly known."""

from __future__ import annotations

from pathlib import Path

from lusynth.storage.manifest import MANIFEST_NAME, manifest_digest
from lusynth.storage.plan import LocalFile, UploadPlan, plan_upload, reuse_candidates

A, B, OLD = "a" * 64, "b" * 64, "0" * 64


def _file(rel: str, size: int, sha256: str | None = None) -> LocalFile:
    return LocalFile(rel, Path("/nonexistent/run") / rel, size, sha256)  # never opened: the plan reads nothing


def _manifest(*entries: tuple[str, int, str]) -> dict:
    return {"schema": 1, "files": [{"path": p, "size": s, "sha256": h} for p, s, h in entries]}


def test_first_upload_sends_everything_and_deletes_nothing() -> None:
    files = [_file("ckpt/last.pt", 10), _file("embedding.pt", 3)]
    plan = plan_upload(files, None, [], prefix="runs/g/")
    assert plan == UploadPlan(prefix="runs/g/", files=tuple(files), put=tuple(files), reuse={}, delete=())
    assert plan.manifest_key == f"runs/g/{MANIFEST_NAME}"
    assert (plan.total_bytes, plan.bytes_to_put) == (13, 13)


def test_reupload_reuses_only_identical_files_and_deletes_what_is_gone() -> None:
    unchanged = _file("ckpt/step_10.pt", 5, A)  # same path, size and SHA-256 as the manifest
    rewritten = _file("ckpt/last.pt", 7, B)  # same size, new bytes
    grown = _file("log.txt", 9)  # a new size: never hashed, so its sha256 is unknown
    new = _file("samples/1.png", 2)
    remote = _manifest(("ckpt/step_10.pt", 5, A), ("ckpt/last.pt", 7, OLD), ("log.txt", 4, OLD), ("ckpt/step_5.pt", 5, OLD))
    keys = ["p/ckpt/last.pt", "p/ckpt/step_10.pt", "p/ckpt/step_5.pt", "p/foreign/leftover", "p/log.txt", f"p/{MANIFEST_NAME}"]
    plan = plan_upload([rewritten, unchanged, grown, new], remote, keys, prefix="p/", reuse_unchanged=True)
    assert plan.put == (rewritten, grown, new)
    assert plan.reuse == {"ckpt/step_10.pt": A}
    assert plan.delete == ("p/ckpt/step_5.pt", "p/foreign/leftover")  # the manifest's key is never stale
    assert (plan.total_bytes, plan.bytes_to_put) == (23, 18)


def test_without_reuse_unchanged_every_file_is_sent() -> None:
    files = [_file("a.bin", 5, A)]
    plan = plan_upload(files, _manifest(("a.bin", 5, A)), ["p/a.bin"], prefix="p/", reuse_unchanged=False)
    assert plan.put == tuple(files) and plan.reuse == {} and plan.delete == ()


def test_an_unhashed_file_is_sent_even_when_its_size_matches() -> None:
    plan = plan_upload([_file("a.bin", 5)], _manifest(("a.bin", 5, A)), [], prefix="p/", reuse_unchanged=True)
    assert [f.rel for f in plan.put] == ["a.bin"] and plan.reuse == {}


def test_the_new_manifest_lists_every_file_in_order_with_reused_and_sent_digests() -> None:
    files = [_file("a.bin", 5, A), _file("b.bin", 3)]
    plan = plan_upload(files, _manifest(("a.bin", 5, A)), [], prefix="p/", reuse_unchanged=True)
    manifest = plan.manifest({"b.bin": B})
    entries = [{"path": "a.bin", "size": 5, "sha256": A}, {"path": "b.bin", "size": 3, "sha256": B}]
    assert manifest == {"schema": 1, "kind": "lusynth.s3-dir", "files": entries, "total_bytes": 8, "digest": manifest_digest(entries)}


def test_reuse_candidates_are_the_files_whose_path_and_size_match() -> None:
    files = [_file("a.bin", 5), _file("b.bin", 6), _file("c.bin", 1)]
    remote = _manifest(("a.bin", 5, A), ("b.bin", 7, B))
    assert [f.rel for f in reuse_candidates(files, remote)] == ["a.bin"]
    assert reuse_candidates(files, None) == []
